"""app.core.resources.bands: every row once, in order, an equal share per worker, the caller working bands too;
one CPU: the caller's thread alone."""

from __future__ import annotations

import gc
import threading
import time
import weakref

import pytest

from app.core.resources import bands
from app.core.resources.bands import map_bands, row_bands


@pytest.mark.parametrize(
    ("height", "workers", "max_rows", "expected"),
    [
        (0, 2, 256, []),
        (1, 2, 256, [(0, 1)]),
        (10, 1, 256, [(0, 10)]),
        (10, 2, 256, [(0, 5), (5, 10)]),
        (11, 2, 256, [(0, 6), (6, 11)]),
        (1080, 2, 256, [(0, 180), (180, 360), (360, 540), (540, 720), (720, 900), (900, 1080)]),
        (1080, 1, 256, [(0, 216), (216, 432), (432, 648), (648, 864), (864, 1080)]),
        (3000, 2, 256, [(top, top + 250) for top in range(0, 3000, 250)]),
        (7, 4, 2, [(0, 2), (2, 4), (4, 6), (6, 7)]),
    ],
)
def test_bands_cover_every_row_once_in_equal_shares(height: int, workers: int, max_rows: int,
                                                    expected: list[tuple[int, int]]) -> None:
    assert row_bands(height, workers, max_rows) == expected


@pytest.mark.parametrize("cpus", [1, 2, 3])
def test_results_come_back_in_band_order_whatever_the_cpus(monkeypatch: pytest.MonkeyPatch, cpus: int) -> None:
    monkeypatch.setattr(bands, "process_cpus", lambda: cpus)
    assert list(map_bands(lambda top, bottom: (top, bottom), 1000, 100)) == row_bands(1000, cpus, 100)


def test_one_cpu_runs_the_bands_in_the_callers_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bands, "process_cpus", lambda: 1)
    threads = set(map_bands(lambda top, bottom: threading.get_ident(), 1000, 100))
    assert threads == {threading.get_ident()}


def test_two_cpus_work_the_bands_in_the_callers_thread_and_a_pool_thread_at_once(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bands, "process_cpus", lambda: 2)
    both_working = threading.Barrier(2)

    def work(top: int, bottom: int) -> str:
        if top < 200:  # the first two bands: each waits until the other is being worked too
            both_working.wait(timeout=10)
        return threading.current_thread().name

    names = list(map_bands(work, 1000, 100))
    assert len(names) == len(row_bands(1000, 2, 100))
    assert set(names[:2]) == {"MainThread", next(name for name in names[:2] if name.startswith("bands"))}


class Piece:
    """A band's result a test can watch being freed (``weakref``)."""


@pytest.mark.parametrize("cpus", [1, 2])
def test_a_result_handed_on_is_not_held_by_the_bands(monkeypatch: pytest.MonkeyPatch, cpus: int) -> None:
    # A consumer that joins the results as they come (the PNG's deflate) holds each only until it is joined
    monkeypatch.setattr(bands, "process_cpus", lambda: cpus)
    for piece in map_bands(lambda top, bottom: Piece(), 1000, 100):
        handed_on = weakref.ref(piece)
        del piece
        assert handed_on() is None


def test_no_band_is_still_running_when_a_failure_is_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bands, "process_cpus", lambda: 2)
    started: set[int] = set()
    finished: set[int] = set()

    def work(top: int, bottom: int) -> int:
        started.add(top)
        if top == 0:
            raise ValueError("band 0")
        time.sleep(0.02)
        finished.add(top)
        return top

    with pytest.raises(ValueError, match="band 0"):
        list(map_bands(work, 1000, 100))
    assert started - {0} == finished  # every band taken has finished, and none was taken after the failure
    assert len(started) < len(row_bands(1000, 2, 100))


def test_a_failing_band_raises_in_the_caller(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bands, "process_cpus", lambda: 2)

    def work(top: int, bottom: int) -> int:
        if top >= 500:
            raise ValueError(f"band {top}")
        return top

    with pytest.raises(ValueError, match="band 500"):
        list(map_bands(work, 1000, 100))


def test_with_one_cpu_work_beside_runs_when_its_result_is_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bands, "process_cpus", lambda: 1)
    ran: list[int] = []
    result = bands.beside(lambda: ran.append(threading.get_ident()) or 7)
    assert ran == []
    assert result() == 7 and ran == [threading.get_ident()]


def test_with_several_cpus_work_beside_runs_on_the_pool_and_raises_in_the_caller(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bands, "process_cpus", lambda: 2)
    assert bands.beside(lambda: threading.current_thread().name)().startswith("bands")

    def fail() -> None:
        raise ValueError("decode failed")

    with pytest.raises(ValueError, match="decode failed"):
        bands.beside(fail)()



def test_a_helper_queued_behind_other_work_does_not_hold_the_caller(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN every thread of the shared pool busy with another request's work (a decode beside its model)
    monkeypatch.setattr(bands, "process_cpus", lambda: 2)
    pool, busy = bands._shared_pool(2), threading.Event()
    blockers = [pool.submit(busy.wait, 10) for _ in range(pool._max_workers)]
    try:
        # WHEN bands are mapped THEN the caller works them all and returns without waiting for the queued helper
        done = threading.Event()
        caller = threading.Thread(target=lambda: (list(map_bands(lambda top, bottom: top, 100, 10)), done.set()))
        caller.start()
        assert done.wait(5), "map_bands waited for a helper that had not started"
    finally:
        busy.set()
        for blocker in blockers:
            blocker.result()


def test_a_failed_bands_work_is_let_go_without_a_garbage_collection(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bands, "process_cpus", lambda: 2)
    image = Piece()  # what a band's work holds: an image, a mask
    held = weakref.ref(image)

    def work(top: int, bottom: int, image: Piece = image) -> Piece:
        if top == 50:
            raise MemoryError("band 50")
        return image

    del image
    gc.disable()
    try:
        with pytest.raises(MemoryError):
            list(map_bands(work, 100, 10))
        del work
        assert held() is None
    finally:
        gc.enable()


def test_a_consumer_that_closes_early_stops_the_bands(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bands, "process_cpus", lambda: 2)
    started: list[int] = []

    def work(top: int, bottom: int) -> int:
        started.append(top)
        time.sleep(0.005)
        return top

    results = map_bands(work, 1000, 10)  # 100 bands
    assert next(results) == 0
    results.close()  # type: ignore[attr-defined]
    count = len(started)
    time.sleep(0.05)
    assert len(started) == count < 20  # none started after the close, and the close came early
