"""app.core.resources.cpus: the CPUs a process may use, from affinity and cgroup quotas."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.core.resources import cpus


@pytest.mark.parametrize(
    ("text", "expected"),
    [("max 100000", None), ("200000 100000", 2.0), ("150000 100000", 1.5), ("50000 100000", 0.5), ("", None),
     ("garbage", None), ("abc 100000", None)],
)
def test_parse_cpu_max(text: str, expected: float | None) -> None:
    assert cpus.parse_cpu_max(text) == expected


@pytest.mark.parametrize(
    ("quota", "period", "expected"),
    [("-1", "100000", None), ("400000", "100000", 4.0), ("0", "100000", None), ("100000", "0", None)],
)
def test_parse_cfs(quota: str, period: str, expected: float | None) -> None:
    assert cpus.parse_cfs(quota, period) == expected


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text + "\n")
    return root


@pytest.mark.parametrize(
    ("files", "affinity", "expected"),
    [
        ({}, 8, 8),  # no cgroup files: affinity decides
        ({"cpu.max": "max 100000"}, 8, 8),
        ({"cpu.max": "200000 100000"}, 8, 2),  # v2 quota of 2 CPUs
        ({"cpu.max": "150000 100000"}, 8, 1),  # 1.5 rounds down
        ({"cpu.max": "50000 100000"}, 8, 1),  # never below 1
        ({"cpu.max": "800000 100000"}, 2, 2),  # affinity is smaller
        ({"cpu/cpu.cfs_quota_us": "300000", "cpu/cpu.cfs_period_us": "100000"}, 8, 3),  # v1
        ({"cpu/cpu.cfs_quota_us": "-1", "cpu/cpu.cfs_period_us": "100000"}, 4, 4),
    ],
)
def test_usable_cpus(files: dict[str, str], affinity: int, expected: int, tmp_path: Path,
                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cpus, "affinity_cpus", lambda: affinity)
    assert cpus.usable_cpus(write(tmp_path, files)) == expected


def test_usable_cpus_here_is_positive_and_within_the_affinity() -> None:
    assert 1 <= cpus.usable_cpus() <= cpus.affinity_cpus()


def test_the_process_reads_its_cpus_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every thread pool sizes itself by process_cpus: a syscall and cgroup files read once, not per request."""
    reads: list[int] = []
    monkeypatch.setattr(cpus, "usable_cpus", lambda: reads.append(1) or 3)
    cpus.process_cpus.cache_clear()
    try:
        assert [cpus.process_cpus() for _ in range(4)] == [3, 3, 3, 3] and reads == [1]
    finally:
        cpus.process_cpus.cache_clear()
