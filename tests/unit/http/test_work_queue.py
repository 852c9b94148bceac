"""app.http.work_queue: work on threads, a bounded wait, QueueFull beyond it, slots and memory shares freed when
work ends or a waiting request is cancelled."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import pytest

from app.core.decoding.imaging import Header
from app.core.resources.budget import Estimate, MemoryBudget, OverBudget
from app.core.resources.cpus import usable_cpus
from app.core.settings import Settings
from app.http import work_queue
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
    result, ran_on, name = run(queue.run(lambda: (42, threading.get_ident(), threading.current_thread().name)))
    assert result == 42 and ran_on != loop_thread and name.startswith("predict_")  # named in thread dumps
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
        full = rf"^{capacity} requests are running or waiting already \({workers} workers, {max_waiting} places in the "
        full += r"queue\)$"
        with pytest.raises(QueueFull, match=full):
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
    with pytest.raises(ValueError) as raised:
        WorkQueue(workers=workers, max_waiting=max_waiting)
    assert str(raised.value) == f"need workers >= 1 and max_waiting >= 0, got {workers} and {max_waiting}"


# --- with a memory budget ------------------------------------------------------------------------

MB = 1_000_000


def cost(megabytes: int) -> Estimate:
    return Estimate(Header("PNG", 1, 1), "PNG", megabytes * MB)


class Gate:
    """Work that signals it started and then holds its worker until opened (bounded: 10 s)."""

    def __init__(self) -> None:
        self.started, self.opened = threading.Event(), threading.Event()

    def __call__(self) -> str:
        self.started.set()
        self.opened.wait(10)
        return "held"


def test_one_estimate_over_the_whole_budget_is_refused_without_taking_a_place() -> None:
    queue = WorkQueue(workers=1, max_waiting=0, memory=MemoryBudget(100 * MB, budget_mb=600))
    with pytest.raises(OverBudget, match="needs about 101 MB to process, more than the 100 MB"):
        run(queue.run(lambda: 1, cost(101)))
    assert (queue.admitted, queue.memory.reserved) == (0, 0)
    assert run(queue.run(lambda: 2, cost(100))) == 2  # exactly the budget fits


def test_work_that_does_not_fit_waits_for_a_share_then_runs() -> None:
    # GIVEN two workers and 100 MB, 60 MB of it held by running work
    queue, gate, ran = WorkQueue(workers=2, max_waiting=1, memory=MemoryBudget(100 * MB)), Gate(), threading.Event()

    async def scenario() -> list[str]:
        first = asyncio.ensure_future(queue.run(gate, cost(60)))
        await asyncio.to_thread(gate.started.wait, 5)
        # WHEN 50 MB more is asked for THEN it waits, a worker free, until the 60 MB are released
        second = asyncio.ensure_future(queue.run(lambda: (ran.set(), "second")[1], cost(50)))
        await until(lambda: queue.memory.waiting == 1)
        assert (queue.admitted, queue.memory.reserved, ran.is_set()) == (2, 60 * MB, False)
        gate.opened.set()
        return list(await asyncio.gather(first, second))

    assert run(scenario()) == ["held", "second"]
    assert (queue.admitted, queue.memory.reserved, queue.memory.waiting) == (0, 0, 0)


def test_waiting_for_memory_takes_a_queue_place() -> None:
    queue, gate = WorkQueue(workers=1, max_waiting=1, memory=MemoryBudget(100 * MB)), Gate()

    async def scenario() -> None:
        first = asyncio.ensure_future(queue.run(gate, cost(60)))
        second = asyncio.ensure_future(queue.run(lambda: "second", cost(50)))
        await until(lambda: queue.memory.waiting == 1)
        with pytest.raises(QueueFull, match=r"2 requests are running or waiting already \(1 workers, 1 places"):
            await queue.run(lambda: "third", cost(1))
        gate.opened.set()
        assert await asyncio.gather(first, second) == ["held", "second"]

    run(scenario())
    assert (queue.admitted, queue.memory.reserved) == (0, 0)


def test_a_request_cancelled_while_waiting_gives_back_its_place_and_lets_the_next_in() -> None:
    queue, gate = WorkQueue(workers=2, max_waiting=2, memory=MemoryBudget(100 * MB)), Gate()

    async def scenario() -> None:
        first = asyncio.ensure_future(queue.run(gate, cost(60)))
        big = asyncio.ensure_future(queue.run(lambda: "big", cost(90)))
        small = asyncio.ensure_future(queue.run(lambda: "small", cost(30)))  # fits, but waits behind big
        await until(lambda: queue.memory.waiting == 2)
        big.cancel()  # the client went away while it waited
        # THEN the next in line gets its share at once, and big holds neither place nor memory
        assert await small == "small"
        assert (queue.admitted, queue.memory.reserved, queue.memory.waiting) == (1, 60 * MB, 0)
        gate.opened.set()
        assert await first == "held"
        with pytest.raises(asyncio.CancelledError):
            await big

    run(scenario())
    assert (queue.admitted, queue.memory.reserved) == (0, 0)


def test_a_share_is_returned_when_the_work_fails() -> None:
    queue = WorkQueue(workers=1, max_waiting=0, memory=MemoryBudget(100 * MB))

    def fail() -> None:
        raise ValueError("bad image")

    with pytest.raises(ValueError, match="bad image"):
        run(queue.run(fail, cost(70)))
    assert (queue.admitted, queue.memory.reserved) == (0, 0)


def test_an_abandoned_request_keeps_its_share_until_its_work_ends() -> None:
    queue, gate = WorkQueue(workers=1, max_waiting=0, memory=MemoryBudget(100 * MB)), Gate()

    async def scenario() -> None:
        running = asyncio.ensure_future(queue.run(gate, cost(70)))
        await asyncio.to_thread(gate.started.wait, 5)
        running.cancel()  # the client went away; the decoder's memory is still in use
        await asyncio.sleep(0)
        assert queue.memory.reserved == 70 * MB
        gate.opened.set()
        await until(lambda: queue.memory.reserved == 0)

    run(scenario())
    assert queue.admitted == 0


def test_run_holding_keeps_the_share_until_the_caller_lets_go() -> None:
    # GIVEN a result whose answer is still being sent (the caller holds its share)
    queue = WorkQueue(workers=2, max_waiting=1, memory=MemoryBudget(100 * MB))

    async def scenario() -> None:
        result, share = await queue.run_holding(lambda: "first", cost(60))
        assert (result, queue.admitted, queue.memory.reserved) == ("first", 0, 60 * MB)  # the work let go
        # WHEN another request needs 50 MB THEN it waits until the answer is sent
        second = asyncio.ensure_future(queue.run(lambda: "second", cost(50)))
        await until(lambda: queue.memory.waiting == 1)
        share.release()
        assert await second == "second"

    run(scenario())
    assert (queue.admitted, queue.memory.reserved) == (0, 0)


def test_run_holding_cancelled_while_the_work_runs_lets_go_once_the_work_ends() -> None:
    queue, gate = WorkQueue(workers=1, max_waiting=0, memory=MemoryBudget(100 * MB)), Gate()

    async def scenario() -> None:
        running = asyncio.ensure_future(queue.run_holding(gate, cost(70)))
        await asyncio.to_thread(gate.started.wait, 5)
        running.cancel()  # the client went away: no answer will hold the share
        await asyncio.sleep(0)
        assert queue.memory.reserved == 70 * MB  # the work still does
        gate.opened.set()
        await until(lambda: queue.memory.reserved == 0)

    run(scenario())
    assert queue.admitted == 0


def test_work_without_an_estimate_neither_reserves_nor_waits_for_memory() -> None:
    # GIVEN the whole budget held by running work and a request waiting for 50 MB of it
    queue, gate = WorkQueue(workers=2, max_waiting=2, memory=MemoryBudget(100 * MB)), Gate()

    async def scenario() -> None:
        first = asyncio.ensure_future(queue.run(gate, cost(100)))
        await asyncio.to_thread(gate.started.wait, 5)
        waiting = asyncio.ensure_future(queue.run(lambda: "waiting", cost(50)))
        await until(lambda: queue.memory.waiting == 1)
        # WHEN work comes without an estimate (a route that reads no header) THEN it runs at once, holding nothing
        try:
            reserved_while_running = await asyncio.wait_for(queue.run(lambda: queue.memory.reserved), timeout=5)
            assert (reserved_while_running, queue.memory.waiting) == (100 * MB, 1)
        finally:
            gate.opened.set()
        assert await asyncio.gather(first, waiting) == ["held", "waiting"]

    run(scenario())
    assert (queue.admitted, queue.memory.reserved) == (0, 0)


@pytest.mark.parametrize(("concurrency", "workers"), [(3, 3), (None, usable_cpus())])
def test_from_settings_takes_max_concurrency_or_the_usable_cpus(concurrency: int | None, workers: int) -> None:
    queue = WorkQueue.from_settings(Settings(MAX_CONCURRENCY=concurrency, MAX_QUEUE=5))
    assert (queue.workers, queue.capacity) == (workers, workers + 5)


def test_a_closed_queue_refuses_work_and_frees_its_slot() -> None:
    queue = WorkQueue(workers=1, max_waiting=0)
    queue.close()
    with pytest.raises(RuntimeError, match="cannot schedule new futures after shutdown"):
        run(queue.run(lambda: 1))
    assert queue.admitted == 0


def test_closing_cancels_the_work_still_waiting() -> None:
    queue, started, release, ended = WorkQueue(workers=1, max_waiting=1), *(threading.Event() for _ in range(3))

    def first() -> str:
        started.set()
        release.wait(5)
        ended.set()
        return "done"

    async def scenario() -> tuple[Any, ...]:
        running = asyncio.ensure_future(queue.run(first))
        await asyncio.to_thread(started.wait, 5)
        waiting = asyncio.ensure_future(queue.run(lambda: "never"))
        await asyncio.sleep(0)
        queue.close()
        ended_before_close_returned = ended.is_set()  # close does not wait for the running work
        release.set()
        return ended_before_close_returned, *await asyncio.gather(running, waiting, return_exceptions=True)

    ended_early, finished, cancelled = run(scenario())
    assert (ended_early, finished, type(cancelled)) == (False, "done", asyncio.CancelledError)


# --- the heap handed back once the queue has been idle ------------------------------------------


class IdleTimer:
    """One ``threading.Timer`` as the work queue starts it, recorded instead of run."""

    def __init__(self, interval: float, function: Callable[..., None], args: tuple[Any, ...] = ()) -> None:
        self.interval, self.function, self.args = interval, function, args
        self.daemon, self.started, self.cancelled = False, False, False

    def start(self) -> None:
        self.started = True

    def cancel(self) -> None:
        self.cancelled = True


class IdleTimers:
    """Every timer the work queue made; a test fires the ones still waiting, in its own order."""

    def __init__(self) -> None:
        self.made: list[IdleTimer] = []

    def __call__(self, interval: float, function: Callable[..., None], args: tuple[Any, ...] = ()) -> IdleTimer:
        self.made.append(IdleTimer(interval, function, args))
        return self.made[-1]

    @property
    def waiting(self) -> list[IdleTimer]:
        return [timer for timer in self.made if timer.started and not timer.cancelled]

    def fire_all(self) -> None:
        for timer in self.waiting:
            timer.function(*timer.args)


@pytest.fixture
def timers(monkeypatch: pytest.MonkeyPatch) -> IdleTimers:
    recorded = IdleTimers()
    monkeypatch.setattr(work_queue, "Timer", recorded)
    return recorded


@pytest.fixture
def trims(monkeypatch: pytest.MonkeyPatch) -> list[None]:
    done: list[None] = []
    monkeypatch.setattr(work_queue, "trim_heap", lambda: done.append(None))
    return done


def test_the_heap_is_trimmed_once_the_queue_has_stayed_idle(timers: IdleTimers, trims: list[None]) -> None:
    queue = WorkQueue(workers=2, max_waiting=0)
    run(queue.run(lambda: None))
    assert trims == [] and [timer.interval for timer in timers.waiting] == [work_queue.IDLE_TRIM_S]
    timers.fire_all()  # IDLE_TRIM_S later, nothing else came
    assert len(trims) == 1


def test_a_request_within_the_idle_wait_cancels_the_trim_before_it(timers: IdleTimers, trims: list[None]) -> None:
    queue = WorkQueue(workers=1, max_waiting=0)
    for _ in range(3):  # each came before the last one's wait was over
        run(queue.run(lambda: None))
    assert len(timers.made) == 3 and len(timers.waiting) == 1  # each request cancelled the wait before it
    timers.fire_all()
    assert len(trims) == 1


def test_no_trim_while_work_is_still_running(timers: IdleTimers, trims: list[None]) -> None:
    queue = WorkQueue(workers=2, max_waiting=0)
    release = threading.Event()

    async def one_quick_one_long() -> None:
        long = asyncio.ensure_future(queue.run(lambda: release.wait(10)))
        await asyncio.sleep(0)
        await queue.run(lambda: None)
        assert timers.made == []  # the long one still runs: the queue never emptied
        release.set()
        await long

    run(one_quick_one_long())
    timers.fire_all()
    assert len(timers.made) == 1 and len(trims) == 1


def test_a_request_running_when_the_wait_ends_is_not_trimmed_under(timers: IdleTimers, trims: list[None]) -> None:
    queue = WorkQueue(workers=1, max_waiting=0)
    run(queue.run(lambda: None))
    first = timers.made[0]  # its wait ended just as the next request came: too late to cancel it

    def the_wait_ends_now() -> None:
        first.function(*first.args)

    run(queue.run(the_wait_ends_now))
    assert trims == [] and first.cancelled
