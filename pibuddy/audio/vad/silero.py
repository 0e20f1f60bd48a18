"""Silero VAD's ONNX model run with onnxruntime and numpy only (the silero-vad package itself needs torch).

The model file comes from config, else from inside the silero-vad wheel, which setup.sh installs with
`--no-deps` so that torch is never pulled in; the package is located without importing it.

onnxruntime and the session (about 45 MB of RSS together) load at the first `load()` or `probability()`, not
when the engine is built: only turns that end on silence (the local brain, manual listening) run the VAD, and
a default appliance whose xiaozhi server segments speech (auto listening) never needs them.
"""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Final

import numpy as np

from pibuddy.audio.errors import EngineUnavailable
from pibuddy.audio.frames import SAMPLE_RATE
from pibuddy.audio.vad.base import VadEngine

if TYPE_CHECKING:
    import onnxruntime

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
        if importlib.util.find_spec("onnxruntime") is None:
            raise EngineUnavailable("VAD backend silero needs the onnxruntime package (./setup.sh)")
        self._path = path
        self._session: onnxruntime.InferenceSession | None = None
        self._loading = threading.Lock()
        self._rate = np.array(SAMPLE_RATE, dtype=np.int64)
        self.reset()

    @property
    def loaded(self) -> bool:
        return self._session is not None

    def load(self) -> None:
        """Import onnxruntime and build the session, once; safe from a worker thread."""
        self._ready_session()

    def _ready_session(self) -> onnxruntime.InferenceSession:
        with self._loading:
            if self._session is not None:
                return self._session
            import onnxruntime  # noqa: PLC0415

            options = onnxruntime.SessionOptions()
            options.inter_op_num_threads = 1  # one 32 ms window is too small to split; keep the other core free
            options.intra_op_num_threads = 1
            try:
                self._session = onnxruntime.InferenceSession(str(self._path), sess_options=options,
                                                             providers=["CPUExecutionProvider"])
            except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types, not exported stably
                raise EngineUnavailable(f"onnxruntime cannot load {self._path}: {exc}") from None
            return self._session

    def reset(self) -> None:
        self._state = np.zeros(_STATE_SHAPE, dtype=np.float32)
        self._context = np.zeros((1, _CONTEXT), dtype=np.float32)

    def probability(self, chunk: bytes) -> float:
        samples = np.frombuffer(chunk, dtype=np.int16).astype(np.float32) / 32768.0
        window = np.concatenate([self._context, samples[None, :]], axis=1)
        session = self._session or self._ready_session()
        output, self._state = session.run(None, {"input": window, "state": self._state, "sr": self._rate})
        self._context = window[:, -_CONTEXT:]
        return float(output[0][0])
