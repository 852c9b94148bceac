"""Full-size work split into bands of rows, run on the CPUs this process may use.

The work around the model (upsampling the probabilities, drawing the overlay, the
PNG's filter and deflate) is row-local: each band of rows is computed on its own.
Pillow's ``resize``, ``point`` and ``paste`` and ISA-L's deflate release the GIL
while they run (Pillow: ``ImagingSectionEnter`` around its loops; python-isal: its
``compress`` drops the GIL for the call), so bands in threads use every core. With one
usable CPU (Lambda gives one vCPU below 1,769 MB:
https://docs.aws.amazon.com/lambda/latest/dg/configuration-function-common.html#configuration-memory-console)
the bands run in the caller's thread, in order, with no pool at all.

The pool is one per process, shared by every request, and the caller works its own
bands beside it: two requests drawing at once share the pool's threads instead of each
starting its own. A band never submits bands of its own, so the pool cannot deadlock.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, TypeVar

from app.core.resources.cpus import process_cpus

Result = TypeVar("Result")
# A band's pixels at most: ~2 MB of a float or RGB band (Pillow keeps RGB in 4 bytes), cache-sized, and enough
# bands that the caller need not wait long for a pool thread that starts late. In one process, right after the
# model, 1080p's upsample took 5.4 ms in 2 bands of 540 rows against 5.9 in 6 of 180; but served, after an idle
# pause (two uvicorns side by side, requests alternating 0.2 s apart, 2026-12-07), 2 bands lost 0.5-2 ms to the
# pool thread waking late, and bands of 512 Kpx (4 at 1080p) did as well as or better than 256 Kpx and 1 Mpx.
# The PNG's bands are its own (``app.core.output.png.STRIPE_BYTES``): deflate wants less.
BAND_PIXELS = 1 << 19


def rows_per_band(width: int) -> int:
    """The rows of a ``width``-pixel-wide band of ``BAND_PIXELS``, at least 1."""
    return max(1, BAND_PIXELS // max(width, 1))


_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def row_bands(height: int, workers: int, max_rows: int) -> list[tuple[int, int]]:
    """``(top, bottom)`` bands covering ``height`` rows: a multiple of ``workers`` bands of equal height (the last
    may be shorter), none over ``max_rows``, so every worker gets the same share."""
    if height <= 0:
        return []
    count = workers * math.ceil(height / (workers * max_rows))
    rows = math.ceil(height / count)
    return [(top, min(top + rows, height)) for top in range(0, height, rows)]


def map_bands(work: Callable[[int, int], Result], height: int, max_rows: int) -> Iterator[Result]:
    """``work(top, bottom)`` for every band of ``height`` rows, results in band order, on the usable CPUs.

    The caller's thread works the bands too, beside ``process_cpus() - 1`` of the pool's threads, each taking
    the next band as it finishes one (``SharedBands``): the caller is on a core already, while a pool thread
    woken from idle starts 0.2-0.6 ms later (``python -m bench.changes``), so small work is mostly the caller's.
    The 1080p PNG overlay: 111.1 against 116.1 ms with the pool's threads alone (the same run).
    Each result is handed on, in order, as soon as it and those before it are done, and not held after: a
    consumer joining them (the PNG's deflate) never holds them all. The first band's exception is raised once
    every band taken has finished; no band starts after it, or after the consumer stops (closes the generator).
    """
    workers = process_cpus()
    bands = row_bands(height, workers, max_rows)
    if workers == 1 or len(bands) <= 1:
        return (work(top, bottom) for top, bottom in bands)
    return SharedBands(work, bands).results(_shared_pool(workers), helpers=min(workers, len(bands)) - 1)


class SharedBands(Generic[Result]):
    """Bands taken in order from one queue by whichever thread is free: the caller's and the pool's."""

    def __init__(self, work: Callable[[int, int], Result], bands: list[tuple[int, int]]) -> None:
        self._work, self._count = work, len(bands)
        self._queue = iter(enumerate(bands))
        self._changed = threading.Condition()  # guards everything below; notified when a band ends
        self._done: dict[int, Result] = {}
        self._errors: list[BaseException] = []
        self._stopped = False

    def results(self, pool: ThreadPoolExecutor, helpers: int) -> Iterator[Result]:
        helping = [pool.submit(self._take_all) for _ in range(helpers)]
        try:
            for index in range(self._count):
                yield self._result(index)
        finally:
            with self._changed:
                self._stopped = True
            for helper in helping:
                if not helper.cancel():  # one still queued behind other work on the pool never starts
                    helper.result()  # one that started: every band it took has finished
            # An exception's traceback holds this frame, and so these: let the image and the pieces go now,
            # not at the next full garbage collection (a band's likely failure is a MemoryError)
            self._done.clear()
            self._errors.clear()
            del self._work
    def _result(self, index: int) -> Result:
        """Band ``index``'s result, working other bands meanwhile; the first band's exception instead."""
        while True:
            with self._changed:
                if self._errors:
                    raise self._errors[0]
                if index in self._done:
                    return self._done.pop(index)
            if not self._take_one():
                with self._changed:
                    self._changed.wait_for(lambda: index in self._done or bool(self._errors))

    def _take_all(self) -> None:
        while self._take_one():
            pass

    def _take_one(self) -> bool:
        """Works the next band; False when none is left to take (or the bands stopped)."""
        with self._changed:
            taken = None if self._stopped or self._errors else next(self._queue, None)
        if taken is None:
            return False
        index, (top, bottom) = taken
        try:
            result = self._work(top, bottom)
        except BaseException as error:
            with self._changed:
                self._errors.append(error)
                self._changed.notify_all()
            return False
        with self._changed:
            self._done[index] = result
            self._changed.notify_all()
        return True


def run_bands(work: Callable[[int, int], None], height: int, max_rows: int) -> None:
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
