"""Local speech recognition behind one interface: pocketsphinx (English, grammar-constrained) and vosk."""

from pibuddy.brain.asr.base import AsrEngine, Recognition, get_asr_engine

__all__ = ["AsrEngine", "Recognition", "get_asr_engine"]
