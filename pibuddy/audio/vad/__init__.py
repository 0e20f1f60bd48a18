"""Voice activity detection engines, the webrtcvad pre-gate, and end-of-utterance segmentation."""

from pibuddy.audio.vad.base import VadEngine, get_vad_engine
from pibuddy.audio.vad.detector import VoiceDetector
from pibuddy.audio.vad.segmenter import EndOfUtterance, EndReason
from pibuddy.config import VadBackend

__all__ = ["EndOfUtterance", "EndReason", "VadBackend", "VadEngine", "VoiceDetector", "get_vad_engine"]
