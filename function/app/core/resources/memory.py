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


def keeps_freed(pixels: int) -> bool:
    """Whether a request of ``pixels`` is small enough for the memory it frees to stay for the next one
    (``KEEP_FREED_UP_TO_PIXELS``); a larger one gives it back: the heap (``trim_heap_after``) and the model's
    working memory (``app.core.inference.segmenter``)."""
    return pixels <= KEEP_FREED_UP_TO_PIXELS


def trim_heap_after(pixels: int) -> None:
    """``trim_heap`` after a request of ``pixels``, unless it was small enough for its freed memory to stay
    for the next (``keeps_freed``)."""
    if not keeps_freed(pixels):
        trim_heap()


@lru_cache(maxsize=1)
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim`` from the C library the interpreter is linked with; None on musl/macOS."""
    return getattr(ctypes.CDLL(None), "malloc_trim", None)


M_ARENA_MAX = -8  # glibc mallopt parameters (malloc.h)
M_MMAP_THRESHOLD = -3
M_TRIM_THRESHOLD = -1
MALLOC_ARENAS = 1  # every thread shares one: the event loop, the workers, the bands' pool
# Allocations of this size or more are mapped on their own and unmapped when freed. 8 MiB keeps a 1080p
# request's buffers in the heap (its largest, the RGBX image, is 8.29 MB) and maps every part of a large one.
MMAP_THRESHOLD_BYTES = 8 << 20
# Free memory at the heap's top beyond this is handed back at once, by free() itself. Twice the mmap threshold,
# as glibc's dynamic rule sets it; left at its 128 kB default, a 1080p request's freed buffers were handed back
# and faulted in again by the next: +8 ms a 1080p PNG overlay (101 -> 109 ms, medians of 3 alternating processes).
TRIM_THRESHOLD_BYTES = 2 * MMAP_THRESHOLD_BYTES


def configure_malloc() -> None:
    """Sets glibc's malloc for a long-lived server of varied requests (a no-op off glibc): ``MALLOC_ARENAS``
    arenas, a fixed mmap threshold, ``MMAP_THRESHOLD_BYTES``, and the trim threshold that goes with it.

    Arenas: glibc gives each thread that allocates under contention an arena of its own, up to 8 per core
    (https://man7.org/linux/man-pages/man3/mallopt.3.html, M_ARENA_MAX). Requests run on whichever
    worker thread is free, so a large image leaves its freed holes in one arena while the next one
    grows another: the idle server grew with its history (bench.history, 3 passes of 40 MP images of
    every format: +17.6% over the post-warm-up RSS with glibc's default, +3.8% with 1 arena, 0% with 2).
    Since the work around the model runs in row bands on a pool of its own (``app.core.resources.bands``),
    two arenas held +24.3% and +27.2%, one +3.4% and +3.3% (bench.history, 2026-12-07), the 1080p work
    around the model before / after the history 39.2 / 38.8 ms with two, 37.9 / 44.2 and 39.4 / 39.6 with one.

    Threshold: glibc's moves up to the size of each mapped block freed, to 32 MiB (M_MMAP_THRESHOLD, "dynamic
    mmap threshold"), so after one request that freed a large block (a 40 MP WebP's decode) the buffers of every
    later large request came from the heap instead, where they fragment: a 40 MP JPEG, PNG or LZW TIFF then
    peaked ~1 B/px higher (5.70 -> 6.67 B/px for the TIFF, in one server; 2026-12-08). Fixed at 8 MiB, the
    three stayed at 5.3-5.4 B/px before and after the WebP. A fixed threshold of 128 kB had made every 1080p
    buffer a fresh mapping (+20-40 ms outside the model; docs/benchmarks.md, "idle RSS after any history").
    Fixing it also fixes the trim threshold at glibc's default (the dynamic rule moved it too), hence
    ``TRIM_THRESHOLD_BYTES``. The 1080p PNG overlay then took 94.4 ms against 95.1 with glibc's dynamic thresholds
    (medians of 5 alternating processes; two runs of 3 gave 94.1 / 95.6 and 95.6 / 91.6: no difference to see).
    """
    mallopt = getattr(ctypes.CDLL(None), "mallopt", None)
    if mallopt is not None:
        mallopt(M_ARENA_MAX, MALLOC_ARENAS)
        mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
        mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)
