"""app.core.timing: stage laps on a clock the test moves by hand, and the Server-Timing header."""

from __future__ import annotations

import pytest

from app.core.timing import Stopwatch, server_timing


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_laps_measure_consecutive_stages_and_merge_keeps_foreign_laps() -> None:
    clock = Clock()
    watch = Stopwatch(clock=clock)
    clock.now += 0.020
    assert watch.lap("first") == pytest.approx(20.0)
    clock.now += 0.5  # time spent elsewhere, reported by its own watch
    watch.merge({"infer": 5.0})
    clock.now += 0.003
    watch.lap("second")
    clock.now += 0.001
    watch.lap("first")  # the same stage again adds up
    assert list(watch.laps_ms) == ["first", "infer", "second"]
    assert watch.laps_ms == pytest.approx({"first": 21.0, "infer": 5.0, "second": 3.0})


def test_stopwatch_can_start_from_an_earlier_instant() -> None:
    clock = Clock()
    watch = Stopwatch(start=clock.now - 1.0, clock=clock)
    assert watch.lap("waited") == pytest.approx(1000.0)


def test_server_timing_header() -> None:
    assert server_timing({"decode": 1.234, "infer": 80.0}) == "decode;dur=1.2, infer;dur=80.0"
    assert server_timing({}) == ""
