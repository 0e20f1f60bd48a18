"""Hand the C heap's free pages back to the OS (glibc's `malloc_trim`).

Start-up allocates and frees a lot (pydantic schemas, imports, onnxruntime's graph optimiser); glibc keeps
those freed pages mapped, about 10 MB of RSS an idle appliance never uses again (bench/RESULTS.md,
2026-12-07). Elsewhere (musl, macOS) there is no `malloc_trim` and this does nothing.
"""

from __future__ import annotations

import ctypes
import logging

_LOGGER = logging.getLogger(__name__)


def release_free_heap() -> bool:
    """Return freed heap pages to the OS; False where the C library has no `malloc_trim`."""
    try:
        trim = ctypes.CDLL(None).malloc_trim  # the process's own symbols, the C library's among them
    except (OSError, AttributeError):
        trim = None
    if trim is None:
        _LOGGER.debug("no malloc_trim in this C library; the heap stays as it is")
        return False
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    trim(0)
    return True
