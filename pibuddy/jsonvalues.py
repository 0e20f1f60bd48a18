"""Checks on values decoded from JSON, shared by every parser of a peer's messages."""

from __future__ import annotations

from typing import TypeGuard


def is_int(value: object) -> TypeGuard[int]:
    """A JSON integer: an `int` that is not a `bool` (`json.loads` turns `true` into True, an int)."""
    return isinstance(value, int) and not isinstance(value, bool)
