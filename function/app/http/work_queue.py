"""Blocking work off the event loop, with a bounded wait: overload gets 429, not slowness for all.

A fixed pool of ``workers`` threads runs the CPU-bound part of each request
(decode, inference, drawing, encoding); at most ``max_waiting`` more requests
wait for a thread. Past that, ``run`` raises ``QueueFull`` at once. A slot is freed
when its work finishes, not when the client goes away, so abandoned requests
still count until their thread is done with them. Works under any asyncio loop
(uvicorn's, Mangum's, a test client's): the pool itself is loop-independent.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from app.core.cpus import usable_cpus
from app.core.settings import Settings

T = TypeVar("T")


class QueueFull(Exception):
    """Every worker is busy and the wait queue is full."""


class WorkQueue:
    """``workers`` threads plus ``max_waiting`` queue places; see the module docstring."""

    def __init__(self, workers: int, max_waiting: int) -> None:
        if workers < 1 or max_waiting < 0:
            raise ValueError(f"need workers >= 1 and max_waiting >= 0, got {workers} and {max_waiting}")
        self.workers, self.capacity = workers, workers + max_waiting
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="predict")
        self._lock = threading.Lock()
        self._admitted = 0

    @classmethod
    def from_settings(cls, settings: Settings) -> WorkQueue:
        """MAX_CONCURRENCY workers (default: the CPUs this process may use) and MAX_QUEUE waiting places."""
        return cls(workers=settings.MAX_CONCURRENCY or usable_cpus(), max_waiting=settings.MAX_QUEUE)

    @property
    def admitted(self) -> int:
        """Requests running or waiting now."""
        return self._admitted

    async def run(self, work: Callable[[], T]) -> T:
        """``work()`` on a worker thread; ``QueueFull`` if no place is free."""
        self._admit()
        try:
            future = self._executor.submit(work)
        except BaseException:
            self._release()
            raise
        future.add_done_callback(self._release)
        return await asyncio.wrap_future(future)

    def close(self) -> None:
        """Stops the threads once their current work is done; work still waiting is cancelled."""
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _admit(self) -> None:
        with self._lock:
            if self._admitted >= self.capacity:
                raise QueueFull(f"all {self.workers} workers are busy and {self.capacity - self.workers} requests wait")
            self._admitted += 1

    def _release(self, _: Future[Any] | None = None) -> None:
        with self._lock:
            self._admitted -= 1
