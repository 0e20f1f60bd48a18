"""Opus through opuslib-next (libopus from apt, or the drop-in opuslib-next-bundled): the codec only.

Uplink: 16 kHz mono 60 ms, APPLICATION_AUDIO, complexity 0 and DTX on like the firmware (docs/protocol.md §11).
Downlink: decoded at the rate and frame duration the server hello gives; a packet longer than that
frame duration, or corrupt, is a `CodecError` for the caller to drop.
"""

from __future__ import annotations

import ctypes
from typing import Final

import opuslib_next
import opuslib_next.api.decoder

from pibuddy.audio.errors import CodecError

UPLINK_RATE: Final = 16000
FRAME_MS: Final = 60
MAX_PACKET_BYTES: Final = 1275 * 3  # libopus's own upper bound for one 60 ms packet (3 x 20 ms frames)
_opus_decode = opuslib_next.api.decoder.libopus_decode  # the raw ctypes function, argtypes already set


class OpusEncoder:
    """Exactly one frame of int16 PCM in, one Opus packet out."""

    def __init__(self, *, sample_rate: int = UPLINK_RATE, frame_ms: int = FRAME_MS, complexity: int = 0,
                 dtx: bool = True) -> None:
        self.frame_samples = sample_rate * frame_ms // 1000
        self._encoder = opuslib_next.Encoder(sample_rate, 1, opuslib_next.APPLICATION_AUDIO)
        self._encoder.complexity = complexity
        self._encoder.dtx = dtx

    def encode(self, pcm: bytes) -> bytes:
        if len(pcm) != self.frame_samples * 2:
            raise CodecError(f"Opus frame must be {self.frame_samples} samples, got {len(pcm) // 2}")
        return bytes(self._encoder.encode(pcm, self.frame_samples))

    def reset(self) -> None:
        self._encoder.reset_state()


class OpusDecoder:
    """Opus packets in, int16 PCM at `sample_rate` out; `conceal()` fills a lost frame.

    Decodes through opuslib-next's ctypes binding of `opus_decode` into one preallocated buffer: its
    `Decoder.decode` builds a Python list of samples per frame, which bench/packet_path.py measured as
    half the decode cost.
    """

    def __init__(self, *, sample_rate: int = 24000, frame_ms: int = FRAME_MS) -> None:
        self.sample_rate = sample_rate
        self.frame_ms = frame_ms
        self.frame_samples = sample_rate * frame_ms // 1000
        self._decoder = opuslib_next.Decoder(sample_rate, 1)
        self._pcm = (ctypes.c_int16 * self.frame_samples)()
        self._pcm_pointer = ctypes.cast(self._pcm, opuslib_next.api.c_int16_pointer)

    def decode(self, packet: bytes) -> bytes:
        if not packet or len(packet) > MAX_PACKET_BYTES:
            raise CodecError(f"Opus packet of {len(packet)} bytes rejected")
        return self._run(packet)

    def conceal(self) -> bytes:
        """One frame of packet-loss concealment (libopus extrapolates from what it last decoded)."""
        try:
            return self._run(None)
        except CodecError:
            return bytes(self.frame_samples * 2)

    def _run(self, packet: bytes | None) -> bytes:
        samples = _opus_decode(self._decoder.decoder_state, packet, len(packet or b""), self._pcm_pointer,
                               self.frame_samples, 0)
        if samples < 0:
            raise CodecError(f"Opus packet rejected: {opuslib_next.OpusError(samples)}")
        return ctypes.string_at(self._pcm, samples * 2)

    def reset(self) -> None:
        self._decoder.reset_state()
