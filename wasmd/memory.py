"""Giving freed memory back to the system.

glibc keeps freed small blocks in its arenas (one per thread that allocated), so memory a
thousand idle connections let go of stays resident unless ``malloc_trim`` returns it. A
no-op where the C library has no ``malloc_trim`` (musl, macOS).
"""

from __future__ import annotations

import ctypes
import ctypes.util

_libc_name = ctypes.util.find_library("c")
_malloc_trim = getattr(ctypes.CDLL(_libc_name), "malloc_trim", None) if _libc_name else None


def release_free_memory() -> None:
    if _malloc_trim is not None:
        _malloc_trim(0)
