"""Blocking work off the event loop, with a bounded wait: overload gets 429, not slowness for all.

A fixed pool of ``workers`` threads runs the CPU-bound part of each request
(decode, inference, drawing, encoding); at most ``max_waiting`` more requests
wait, for a thread or for memory. Past that, ``run`` raises ``QueueFull`` at once.

With a memory budget (``app.core.resources.budget``, MEMORY_BUDGET_MB), work given with its
estimate also waits until its share of the budget is free, in arrival order; an
estimate over the whole budget raises ``OverBudget`` (413) before it takes a place.

A place is freed when the work finishes, not when the client goes away, so abandoned
requests still count until their thread is done with them; a share when the work
finishes and, with ``run_holding``, the caller lets go too (once the answer is sent). A
request cancelled while it waits gives both back at once. Works under any asyncio loop
(uvicorn's, Mangum's, a test client's): the pool and the budget are loop-independent.

Once no request has run or waited for ``IDLE_TRIM_S``, the C heap is handed back to the system
(``app.core.resources.memory.trim_heap``): a busy server's next request reuses the last one's freed
buffers instead of faulting them back in (the pipeline trims only after large requests itself), and
an idle one does not keep them.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from threading import Timer
from typing import TypeVar

from app.core.resources.budget import Estimate, MemoryBudget, Share
from app.core.resources.cpus import process_cpus
from app.core.resources.memory import trim_heap
from app.core.settings import Settings

T = TypeVar("T")
# Seconds with nothing running or waiting before the heap is trimmed: longer than the gap between requests
# of a busy client, so only a server left idle pays the next request's page faults (bench.history waits it).
IDLE_TRIM_S = 2.0


class QueueFull(Exception):
    """Every worker and every place in the wait queue is taken."""


class WorkQueue:
    """``workers`` threads plus ``max_waiting`` queue places, and a memory budget if given; see the module docstring."""

    def __init__(self, workers: int, max_waiting: int, memory: MemoryBudget | None = None) -> None:
        if workers < 1 or max_waiting < 0:
            raise ValueError(f"need workers >= 1 and max_waiting >= 0, got {workers} and {max_waiting}")
        self.workers, self.capacity, self.memory = workers, workers + max_waiting, memory
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="predict")
        self._lock = threading.Lock()
        self._admitted = 0
        self._went_idle = 0  # how many times the queue has emptied: a trim waits for the latest
        self._trim: Timer | None = None  # the wait for the latest idle period's trim, cancelled by the next request

    @classmethod
    def from_settings(cls, settings: Settings) -> WorkQueue:
        """MAX_CONCURRENCY workers (default: the CPUs this process may use), MAX_QUEUE waiting places and
        MEMORY_BUDGET_MB less what the process holds now (build it once the model is loaded)."""
        workers = settings.MAX_CONCURRENCY or process_cpus()
        return cls(workers, settings.MAX_QUEUE, MemoryBudget.for_process(settings.MEMORY_BUDGET_MB, workers))

    @property
    def admitted(self) -> int:
        """Requests running or waiting now."""
        return self._admitted

    async def run(self, work: Callable[[], T], cost: Estimate | None = None) -> T:
        """``work()`` on a worker thread once ``cost`` fits the budget, its share returned when the work ends;
        ``OverBudget`` if it never can fit, ``QueueFull`` if no place is free."""
        result, share = await self.run_holding(work, cost)
        share.release()
        return result

    async def run_holding(self, work: Callable[[], T], cost: Estimate | None = None) -> tuple[T, Share]:
        """As ``run``, but the caller holds the share too, until ``share.release()``: the answer that carries the
        result keeps its memory until it is sent. Cancelled or failed, the caller's hold is let go here."""
        size = self._share_size(cost)
        self._admit()
        try:
            await self._reserve(size)
        except BaseException:
            self._free_place()
            raise
        share = Share(self.memory, size, holders=2)  # the work and the caller
        try:
            future = self._executor.submit(work)
        except BaseException:
            self._work_done(share)
            share.release()
            raise
        future.add_done_callback(lambda _: self._work_done(share))
        try:
            return await asyncio.wrap_future(future), share
        except BaseException:
            share.release()
            raise

    def close(self) -> None:
        """Stops the threads once their current work is done; work still waiting is cancelled."""
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _share_size(self, cost: Estimate | None) -> int:
        """The bytes ``cost`` reserves (none without a budget or an estimate); ``OverBudget`` if it never fits."""
        if self.memory is None or cost is None:
            return 0
        self.memory.check(cost)
        return cost.bytes

    async def _reserve(self, size: int) -> None:
        """Waits for ``size`` bytes of the budget; cancelled, it gives back whatever it was granted."""
        if self.memory is None or not size:
            return
        grant = self.memory.reserve(size)
        try:
            await asyncio.wrap_future(grant)
        except BaseException:
            self.memory.withdraw(size, grant)
            raise

    def _admit(self) -> None:
        with self._lock:
            if self._admitted >= self.capacity:
                raise QueueFull(f"{self.capacity} requests are running or waiting already ({self.workers} workers, "
                                f"{self.capacity - self.workers} places in the queue)")
            self._admitted += 1
            trim, self._trim = self._trim, None
        if trim is not None:
            trim.cancel()  # no thread left sleeping per request: one waits at most

    def _work_done(self, share: Share) -> None:
        """The work let go of its share and its place (whether it finished, failed or was cancelled)."""
        share.release()
        self._free_place()

    def _free_place(self) -> None:
        with self._lock:
            self._admitted -= 1
            if self._admitted:
                return
            self._went_idle += 1
            idle_since = self._went_idle
            trim = self._trim = Timer(IDLE_TRIM_S, self._trim_if_still_idle, args=(idle_since,))
        trim.daemon = True
        trim.start()

    def _trim_if_still_idle(self, idle_since: int) -> None:
        """The heap trimmed, unless a request came (and maybe went) since the queue emptied ``idle_since``."""
        with self._lock:
            if self._admitted or self._went_idle != idle_since:
                return
        trim_heap()
