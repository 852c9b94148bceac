"""A short ``make load``: the real server under Locust at 1x and 16x its workers, and the invariants that hold
at any speed. The figures themselves (throughput, latency, memory) are ``make load``'s, never asserted here."""

from __future__ import annotations

from typing import Any

import pytest

from bench.load import run, table

pytestmark = pytest.mark.slow
SECONDS_PER_LEVEL = 8
# What each kind of upload may get: its answer, or 429 when every worker and queue place is taken.
ANSWERS = {"1080p": {"200", "429"}, "12mp": {"200", "429"}, "tiny": {"200", "429"}, "corrupt": {"400", "429"}}


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return run(SECONDS_PER_LEVEL, (1, 16), tmp_path_factory.mktemp("load"))


def test_every_request_gets_its_answer_or_a_429_never_a_5xx_or_a_dropped_connection(report: dict[str, Any]) -> None:
    for level in report["levels"]:
        assert (level["5xx"], level["connection_errors"]) == (0, 0), level
        for kind, statuses in level["by_kind"].items():
            assert set(statuses) <= ANSWERS[kind], (level["level"], kind, statuses)
        assert level["requests"] > 0


def test_overload_is_refused_with_retry_after(report: dict[str, Any]) -> None:
    one, sixteen = report["levels"]
    assert one["share_429"] == 0  # as many users as workers: each waits its turn, none is refused
    assert sixteen["share_429"] > 0  # 16x the workers overflows the queue (MAX_QUEUE 8): refused at once
    assert sixteen["429_without_retry_after"] == 0


def test_no_file_descriptor_or_thread_is_left_behind(report: dict[str, Any]) -> None:
    before, after = report["before"], report["after"]
    assert after["fds"] <= before["fds"], (before, after)
    assert after["threads"] <= before["threads"], (before, after)


def test_the_table_has_a_row_per_level(report: dict[str, Any]) -> None:
    rows = [line for line in table(report).splitlines() if line.startswith("| ")]
    assert [row.split(" | ")[0] for row in rows] == ["| level", "| 1x", "| 16x"]
    assert all(level["peak_rss_mb"] > 0 and level["p50_s"] is not None for level in report["levels"])
