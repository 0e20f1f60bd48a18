"""Errors of the audio package, under the PiBuddyError root."""

from __future__ import annotations

from pibuddy.errors import PiBuddyError


class AudioError(PiBuddyError):
    """Base of every audio error."""


class EngineUnavailable(AudioError):
    """A wake word or VAD engine cannot be built: package, model file or model word missing."""


class CodecError(AudioError):
    """An Opus packet or PCM frame was rejected (corrupt, oversized, wrong length). The caller drops it."""
