"""The local brain: speech -> text -> intent -> PiBuddy's tools -> spoken reply, all on the Pi.

It answers wakes when the xiaozhi server is unreachable or not configured (`router.BrainRouter` decides),
and `pibuddy say "..."` runs text through it. Intents come from hassil and the home-assistant-intents
templates, matched against the devices PiBuddy's drivers know (`vocabulary`); actions are calls of the
existing tools (`actions`); English speech is recognised by pocketsphinx against a grammar of exactly those
commands (`grammar`), other languages by vosk; replies are spoken by espeak-ng or piper (`voice`).
"""

from pibuddy.brain.brain import LocalBrain, Outcome, Reply

__all__ = ["LocalBrain", "Outcome", "Reply"]
