"""Handing freed memory back to the operating system between requests."""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from functools import lru_cache


def trim_heap() -> None:
    """Hand the C heap's free pages back to the OS (glibc ``malloc_trim(0)``; a no-op elsewhere).

    glibc keeps freed memory in its arenas, one per thread that allocated
    (https://man7.org/linux/man-pages/man3/malloc_trim.3.html): without this, a worker
    thread keeps the last request's buffers resident while another thread allocates anew.
    """
    malloc_trim = _malloc_trim()
    if malloc_trim is not None:
        malloc_trim(0)


@lru_cache(maxsize=1)
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim`` from the C library the interpreter is linked with; None on musl/macOS."""
    return getattr(ctypes.CDLL(None), "malloc_trim", None)
