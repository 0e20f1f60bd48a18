"""The local brain: speech -> text -> intent -> PiBuddy's tools -> spoken reply, all on the Pi.

It answers wakes when the xiaozhi server is unreachable or not configured (`router.BrainRouter` decides),
and `pibuddy say "..."` runs text through it. Intents come from hassil and the home-assistant-intents
templates, matched against the devices PiBuddy's drivers know (`vocabulary`); actions are calls of the
existing tools (`actions`); English speech is recognised by pocketsphinx against a grammar of exactly those
commands (`grammar`), other languages by vosk; replies are spoken by espeak-ng or piper (`voice`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pibuddy.brain.brain import LocalBrain, Outcome, Reply


def __getattr__(name: str) -> Any:
    """`pibuddy.brain.LocalBrain` and friends, imported on first use: hassil and the intent templates cost
    ~18 MB, which a process without the local brain (the gateway alone, brain.mode upstream) never pays,
    although `pibuddy.brain.router` lives in this package."""
    if name in __all__:
        from pibuddy.brain import brain  # noqa: PLC0415

        return getattr(brain, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = ["LocalBrain", "Outcome", "Reply"]
