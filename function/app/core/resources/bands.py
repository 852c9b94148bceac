"""Full-size work split into bands of rows, run on the CPUs this process may use.

The work around the model (upsampling the probabilities, drawing the overlay, the
PNG's filter and deflate) is row-local: each band of rows is computed on its own.
Pillow's ``resize``, ``point`` and ``paste`` and ISA-L's deflate release the GIL
while they run (Pillow: ``ImagingSectionEnter`` around its loops; python-isal: its
``compress`` drops the GIL for the call), so bands in threads use every core. With one
usable CPU (Lambda gives one vCPU below 1,769 MB:
https://docs.aws.amazon.com/lambda/latest/dg/configuration-function-common.html#configuration-memory-console)
the bands run in the caller's thread, in order, with no pool at all.

The pool is one per process, shared by every request: two requests' bands queue
behind each other instead of oversubscribing the cores. A band never submits bands
of its own, so the pool cannot deadlock.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from app.core.resources.cpus import process_cpus

Result = TypeVar("Result")
MAX_BAND_ROWS = 256  # a band's working set: ~3 MB of a 4000-pixel-wide RGB image, cache-sized

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def row_bands(height: int, workers: int, max_rows: int = MAX_BAND_ROWS) -> list[tuple[int, int]]:
    """``(top, bottom)`` bands covering ``height`` rows: a multiple of ``workers`` bands of equal height (the last
    may be shorter), none over ``max_rows``, so every worker gets the same share."""
    if height <= 0:
        return []
    count = workers * math.ceil(height / (workers * max_rows))
    rows = math.ceil(height / count)
    return [(top, min(top + rows, height)) for top in range(0, height, rows)]


def map_bands(work: Callable[[int, int], Result], height: int, max_rows: int = MAX_BAND_ROWS) -> Iterator[Result]:
    """``work(top, bottom)`` for every band of ``height`` rows, results in band order, on the usable CPUs.

    The results are yielded as they are needed, in order (a consumer may join them as they come); every band
    is submitted at once, so an exception in one is raised when its result is reached.
    """
    workers = process_cpus()
    bands = row_bands(height, workers, max_rows)
    if workers == 1 or len(bands) <= 1:
        return (work(top, bottom) for top, bottom in bands)
    return _shared_pool(workers).map(lambda band: work(*band), bands)


def run_bands(work: Callable[[int, int], None], height: int, max_rows: int = MAX_BAND_ROWS) -> None:
    """``work(top, bottom)`` for every band, for what it writes (disjoint rows of one array or image); returns
    when every band is done, raising the first band's exception."""
    for _ in map_bands(work, height, max_rows):
        pass


def beside(work: Callable[[], Result]) -> Callable[[], Result]:
    """``work`` started now on the shared pool, beside what the caller does next (the full-size decode beside the
    model); call what this returns for its result (or its exception). With one usable CPU nothing runs beside:
    ``work`` runs when its result is asked for, in the caller's thread."""
    workers = process_cpus()
    if workers == 1:
        return work
    return _shared_pool(workers).submit(work).result


def _shared_pool(workers: int) -> ThreadPoolExecutor:
    """The process's pool, made on first use (an entry that never draws never starts its threads)."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="bands")
        return _pool


def _forget_pool() -> None:
    """A forked child has none of its parent's threads: it makes its own pool when it needs one."""
    global _pool, _pool_lock
    _pool, _pool_lock = None, threading.Lock()


os.register_at_fork(after_in_child=_forget_pool)
