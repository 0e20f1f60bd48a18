"""JSON from the network with a nesting cap, checked before parsing.

Python's parser recurses per level: a body of 100 000 `[` raises RecursionError deep inside it. PiBuddy's
HTTP bodies (OTA requests, management API commands) are a few levels deep; anything past `MAX_DEPTH` is
refused as malformed before the parser sees it.
"""

from __future__ import annotations

import json
import re
from typing import Any, Final

MAX_DEPTH: Final = 32
_STRING: Final = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKETS: Final = re.compile(r"[\[\]{}]")


class JsonTooDeep(ValueError):
    """The document nests deeper than allowed."""


def nesting_depth(text: str) -> int:
    """The deepest nesting of arrays and objects in `text` (strings skipped; malformed text still counts)."""
    depth = deepest = 0
    for bracket in _BRACKETS.findall(_STRING.sub("", text)):
        depth += 1 if bracket in "[{" else -1
        deepest = max(deepest, depth)
    return deepest


def loads_limited(data: bytes | str, *, max_depth: int = MAX_DEPTH) -> Any:
    """`json.loads`, refusing documents nested deeper than `max_depth` with `JsonTooDeep`.

    Raises ValueError (json.JSONDecodeError, UnicodeDecodeError or JsonTooDeep) for anything malformed.
    """
    text = data.decode("utf-8") if isinstance(data, bytes) else data
    if nesting_depth(text) > max_depth:
        raise JsonTooDeep(f"JSON nested deeper than {max_depth} levels")
    return json.loads(text)
