"""Wake word engines behind one interface, plus the refractory period and the self-trigger guard."""

from pibuddy.audio.wakeword.base import Detection, WakeWordEngine, get_wakeword_engine
from pibuddy.audio.wakeword.gate import WakeGate
from pibuddy.config import WakeWordBackend

__all__ = ["Detection", "WakeGate", "WakeWordBackend", "WakeWordEngine", "get_wakeword_engine"]
