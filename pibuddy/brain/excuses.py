"""Why the local brain cannot do what was asked, in one sentence fit to be spoken: no driver set up, a driver
that cannot be reached or refused its token, a device name it does not know (with the closest it does).

The detail (which host, which error) goes to the log where the failure happened; the user hears the short form.
"""

from __future__ import annotations

import difflib
from typing import Final

from pibuddy.brain.responses import phrase
from pibuddy.brain.vocabulary import Vocabulary
from pibuddy.errors import AuthFailed, TokenInvalid

_CLOSE_ENOUGH: Final = 0.6  # difflib ratio: "toster" -> "toaster", not "lamp" -> "light"


def why_not(vocabulary: Vocabulary, *, drivers: int, language: str) -> str | None:
    """The reason a command found nothing to act on, when it is not simply "not understood": a driver that
    could not list its devices (the first one), or no drivers at all (the local brain only controls devices).
    None: the caller's own sentence."""
    for gone in vocabulary.unavailable:
        refused = isinstance(gone.error, AuthFailed | TokenInvalid)
        return phrase(language, "token_refused" if refused else "unreachable", what=gone.source)
    if drivers == 0:
        return phrase(language, "no_driver")
    return None


def closest_name(spoken: str, vocabulary: Vocabulary) -> str | None:
    """The known device name nearest to `spoken`, if one is near enough to suggest."""
    names = sorted({name for thing in vocabulary.things for name in thing.names})
    folded = {name.casefold(): name for name in names}
    found = difflib.get_close_matches(spoken.casefold(), list(folded), n=1, cutoff=_CLOSE_ENOUGH)
    return folded[found[0]] if found else None
