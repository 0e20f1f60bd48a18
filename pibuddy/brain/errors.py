"""Errors of the local brain."""

from __future__ import annotations

from pibuddy.errors import PiBuddyError


class BrainUnavailable(PiBuddyError):
    """A part of the local brain cannot run here: no intents for the language, no speech model, no voice."""
