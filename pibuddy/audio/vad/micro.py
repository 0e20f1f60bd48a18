"""pymicro-vad: no onnxruntime needed and immune to steady noise, but slower to react (about 240 ms)."""

from __future__ import annotations

from pymicro_vad import MicroVad

from pibuddy.audio.vad.base import VadEngine


class MicroVadEngine(VadEngine):
    chunk_samples = 160  # 10 ms

    def __init__(self) -> None:
        self._vad = MicroVad()

    def probability(self, chunk: bytes) -> float:
        return max(0.0, float(self._vad.process_10ms(chunk)))  # it returns -1 until it has enough audio

    def reset(self) -> None:
        self._vad.reset()
