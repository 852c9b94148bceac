"""app.http.work_queue: work on threads, a bounded wait, QueueFull beyond it, slots freed when work ends."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import pytest

from app.http.work_queue import QueueFull, WorkQueue

T = TypeVar("T")


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Runs on a private loop; unlike asyncio.run, leaves the thread's current loop alone
    (setting it to None would orphan a loop another test's Mangum created, to be
    garbage-collected later with a ResourceWarning that fails an unrelated test)."""
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coroutine)
    finally:
        loop.close()


def test_runs_work_on_a_worker_thread_and_returns_its_result() -> None:
    queue = WorkQueue(workers=2, max_waiting=0)
    loop_thread = threading.get_ident()
    result, ran_on = run(queue.run(lambda: (42, threading.get_ident())))
    assert result == 42 and ran_on != loop_thread
    assert queue.admitted == 0


def test_exceptions_reach_the_caller_and_free_the_slot() -> None:
    queue = WorkQueue(workers=1, max_waiting=0)

    def fail() -> None:
        raise ValueError("bad image")

    with pytest.raises(ValueError, match="bad image"):
        run(queue.run(fail))
    assert queue.admitted == 0


async def until(condition: Callable[[], bool], deadline_s: float = 10.0) -> None:
    """Yields to the loop until ``condition()`` holds; fails (not hangs) after ``deadline_s``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + deadline_s
    while not condition():
        assert loop.time() < deadline, "the condition did not hold in time"
        await asyncio.sleep(0.005)


@pytest.mark.parametrize(("workers", "max_waiting"), [(1, 0), (1, 2), (2, 1)])
def test_beyond_workers_plus_queue_requests_are_refused_at_once(workers: int, max_waiting: int) -> None:
    # GIVEN every worker and queue place taken by work that waits for a release
    queue, release = WorkQueue(workers=workers, max_waiting=max_waiting), threading.Event()
    capacity = workers + max_waiting

    async def scenario() -> tuple[list[int], int]:
        held = [asyncio.ensure_future(queue.run(lambda i=i: release.wait(10) and i)) for i in range(capacity)]
        await until(lambda: queue.admitted == capacity)
        # WHEN one more arrives THEN it is refused without waiting
        with pytest.raises(QueueFull, match=f"all {workers} workers are busy"):
            await queue.run(lambda: -1)
        admitted_when_full = queue.admitted
        release.set()
        return list(await asyncio.gather(*held)), admitted_when_full

    results, admitted_when_full = run(scenario())
    # THEN the admitted ones all finish, and every slot is free again
    assert results == list(range(capacity))
    assert admitted_when_full == capacity
    assert queue.admitted == 0


def test_a_slot_stays_taken_until_abandoned_work_really_ends() -> None:
    queue, started, release = WorkQueue(workers=1, max_waiting=0), threading.Event(), threading.Event()

    def slow() -> None:
        started.set()
        release.wait(5)

    async def scenario() -> None:
        running = asyncio.ensure_future(queue.run(slow))
        await asyncio.to_thread(started.wait, 5)
        running.cancel()  # the client went away; the thread cannot be stopped
        await asyncio.sleep(0)
        assert queue.admitted == 1
        release.set()
        await until(lambda: queue.admitted == 0)

    run(scenario())
    assert queue.admitted == 0


@pytest.mark.parametrize(("workers", "max_waiting"), [(0, 1), (1, -1)])
def test_refuses_a_pool_that_cannot_work(workers: int, max_waiting: int) -> None:
    with pytest.raises(ValueError, match="need workers >= 1"):
        WorkQueue(workers=workers, max_waiting=max_waiting)
