"""app.core.timing: stage laps and the Server-Timing header."""

from __future__ import annotations

import time

from app.core.timing import Stopwatch, server_timing


def test_laps_measure_consecutive_stages_and_merge_keeps_foreign_laps() -> None:
    watch = Stopwatch()
    time.sleep(0.02)
    watch.lap("first")
    watch.merge({"infer": 5.0})
    watch.lap("second")
    watch.lap("first")
    assert list(watch.laps_ms) == ["first", "infer", "second"]
    assert 15.0 <= watch.laps_ms["first"] < 1000.0
    assert watch.laps_ms["infer"] == 5.0
    assert watch.laps_ms["second"] < 15.0


def test_stopwatch_can_start_from_an_earlier_instant() -> None:
    watch = Stopwatch(start=time.perf_counter() - 1.0)
    assert watch.lap("waited") >= 1000.0


def test_server_timing_header() -> None:
    assert server_timing({"decode": 1.234, "infer": 80.0}) == "decode;dur=1.2, infer;dur=80.0"
    assert server_timing({}) == ""
