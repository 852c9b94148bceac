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


# A request of at most this many pixels leaves its freed buffers in the heap for the next one to reuse:
# trimming them after a 1080p request (2.07 MP) made the next one fault them back in, page by page, ~3-4 ms
# of its ~40 ms around the model at 1080p (python -m bench.changes: "heap trimmed after every request"). A larger
# request (a 12 MP photo's image and mask are 60 MB) is trimmed after. The HTTP server also trims once it has
# been idle for a while (``app.http.work_queue.IDLE_TRIM_S``), so an idle server keeps none of it.
KEEP_FREED_UP_TO_PIXELS = 4_000_000


def trim_heap_after(pixels: int) -> None:
    """``trim_heap`` after a request of ``pixels``, unless it was small enough for its freed memory to stay
    for the next (``KEEP_FREED_UP_TO_PIXELS``)."""
    if pixels > KEEP_FREED_UP_TO_PIXELS:
        trim_heap()


@lru_cache(maxsize=1)
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim`` from the C library the interpreter is linked with; None on musl/macOS."""
    return getattr(ctypes.CDLL(None), "malloc_trim", None)


M_ARENA_MAX = -8  # glibc mallopt parameter (malloc.h)
MALLOC_ARENAS = 1  # every thread shares one: the event loop, the workers, the bands' pool


def limit_malloc_arenas() -> None:
    """Caps glibc's malloc arenas at ``MALLOC_ARENAS`` (a no-op off glibc).

    glibc gives each thread that allocates under contention an arena of its own, up to 8 per core
    (https://man7.org/linux/man-pages/man3/mallopt.3.html, M_ARENA_MAX). Requests run on whichever
    worker thread is free, so a large image leaves its freed holes in one arena while the next one
    grows another: the idle server grew with its history (bench.history, 3 passes of 40 MP images of
    every format: +17.6% over the post-warm-up RSS with glibc's default, +3.8% with 1 arena, 0% with 2).
    Since the work around the model runs in row bands on a pool of its own (``app.core.resources.bands``),
    two arenas held +24.3% and +27.2%, one +3.4% and +3.3% (bench.history, 2026-12-07), the 1080p work
    around the model before / after the history 39.2 / 38.8 ms with two, 37.9 / 44.2 and 39.4 / 39.6 with one.
    Fixing the mmap threshold instead also held it (+3.3%) but made every 1080p buffer a fresh mmap.
    """
    mallopt = getattr(ctypes.CDLL(None), "mallopt", None)
    if mallopt is not None:
        mallopt(M_ARENA_MAX, MALLOC_ARENAS)
