"""Silero VAD's ONNX model run with onnxruntime and numpy only (the silero-vad package itself needs torch).

The model file comes from config, else from inside the silero-vad wheel, which setup.sh installs with
`--no-deps` so that torch is never pulled in; the package is located without importing it.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Final

import numpy as np
import onnxruntime

from pibuddy.audio.errors import EngineUnavailable
from pibuddy.audio.frames import SAMPLE_RATE
from pibuddy.audio.vad.base import VadEngine

_WINDOW: Final = 512  # 32 ms: what the 16 kHz model takes
_CONTEXT: Final = 64  # samples of the previous window the model sees before each new one
_STATE_SHAPE: Final = (2, 1, 128)


def bundled_model_path() -> Path | None:
    """silero_vad.onnx inside an installed silero-vad package, if any."""
    spec = importlib.util.find_spec("silero_vad")
    for location in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(location) / "data" / "silero_vad.onnx"
        if candidate.is_file():
            return candidate
    return None


class SileroVad(VadEngine):
    chunk_samples = _WINDOW

    def __init__(self, model_path: Path | None = None) -> None:
        path = model_path or bundled_model_path()
        if path is None or not path.is_file():
            raise EngineUnavailable(f"no silero_vad.onnx (got {path}); install it with "
                                    "`pip install --no-deps silero-vad` or set vad.silero.model_path")
        options = onnxruntime.SessionOptions()
        options.inter_op_num_threads = 1  # one 32 ms window is too small to split; keep the other core free
        options.intra_op_num_threads = 1
        try:
            self._session = onnxruntime.InferenceSession(str(path), sess_options=options,
                                                         providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types, not exported stably
            raise EngineUnavailable(f"onnxruntime cannot load {path}: {exc}") from None
        self._rate = np.array(SAMPLE_RATE, dtype=np.int64)
        self.reset()

    def reset(self) -> None:
        self._state = np.zeros(_STATE_SHAPE, dtype=np.float32)
        self._context = np.zeros((1, _CONTEXT), dtype=np.float32)

    def probability(self, chunk: bytes) -> float:
        samples = np.frombuffer(chunk, dtype=np.int16).astype(np.float32) / 32768.0
        window = np.concatenate([self._context, samples[None, :]], axis=1)
        output, self._state = self._session.run(None, {"input": window, "state": self._state, "sr": self._rate})
        self._context = window[:, -_CONTEXT:]
        return float(output[0][0])
