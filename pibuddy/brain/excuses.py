"""Why the local brain cannot do what was asked, in one sentence fit to be spoken: no driver set up, a driver or
device that cannot be reached, refused the token, did not respond or has no login set up, a device name it does
not know (with the closest it does).

The detail (which host, which error, what to run) goes to the log where the failure happened (the tool
registry's "tool ... failed" line, the vocabulary's "cannot list the devices" line); the user hears the short
form: no addresses, commands or lists.
"""

from __future__ import annotations

import difflib
from typing import Final

from pibuddy.brain.responses import phrase
from pibuddy.brain.vocabulary import Thing, Vocabulary
from pibuddy.drivers.sentences import the
from pibuddy.errors import Cause, Failure
from pibuddy.tools.registry import ToolResult

_CLOSE_ENOUGH: Final = 0.6  # difflib ratio: "toster" -> "toaster", not "lamp" -> "light"


def why_not(vocabulary: Vocabulary, *, drivers: int, language: str) -> str | None:
    """The reason a command found nothing to act on, when it is not simply "not understood": a driver that
    could not list its devices (the first one), or no drivers at all (the local brain only controls devices).
    None: the caller's own sentence."""
    for gone in vocabulary.unavailable:
        cause = gone.error.cause or Cause(Failure.UNREACHABLE)
        what = phrase(language, cause.party) if cause.party is not None else gone.source
        return phrase(language, cause.failure, what=what)
    if drivers == 0:
        return phrase(language, "no_driver")
    return None


def why_failed(result: ToolResult, *, named: str | None, thing: Thing | None, language: str) -> str:
    """What to say when a tool call failed: its cause in one sentence, or, for any other failure, the tool's own
    text. The cause is the service that failed, else the device: as the command `named` it, else as the error
    names it, else the command's `thing`."""
    cause = result.cause
    if cause is None:
        return phrase(language, "failed", reason=result.text)
    if cause.party is not None:
        what = phrase(language, cause.party)
    elif (name := named or cause.device or (thing.name if thing is not None else None)) is not None:
        what = the(name) if language.startswith("en") else name
    else:
        what = phrase(language, "that_device")
    return phrase(language, cause.failure, what=what)


def closest_name(spoken: str, vocabulary: Vocabulary) -> str | None:
    """The known device name nearest to `spoken`, if one is near enough to suggest."""
    names = sorted({name for thing in vocabulary.things for name in thing.names})
    folded = {name.casefold(): name for name in names}
    found = difflib.get_close_matches(spoken.casefold(), list(folded), n=1, cutoff=_CLOSE_ENOUGH)
    return folded[found[0]] if found else None
