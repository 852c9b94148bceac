"""app.core.resources.memory_limit: the memory a process may use, from its cgroup, Lambda's variable or the machine."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.core.resources import memory_limit
from app.core.resources.memory_limit import MIB, cgroup_memory_limit, memory_limit_bytes, resident_bytes

GB = 10**9
PHYSICAL = 8 * GB
V1_UNLIMITED = "9223372036854771712"  # what an unlimited v1 cgroup reads (PAGE_COUNTER_MAX pages)

# id: (files under the cgroup root, environment, expected bytes)
LIMIT_CASES: dict[str, tuple[dict[str, str], dict[str, str], int]] = {
    "nothing-physical": ({}, {}, PHYSICAL),
    "v2-limit": ({"memory.max": "1073741824"}, {}, 1073741824),
    "v2-max-is-none": ({"memory.max": "max"}, {}, PHYSICAL),
    "v2-max-then-lambda": ({"memory.max": "max"}, {"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "2048"}, 2048 * MIB),
    "v2-over-physical-is-none": ({"memory.max": str(16 * GB)}, {}, PHYSICAL),
    "v2-before-v1": ({"memory.max": "600000000", "memory/memory.limit_in_bytes": "500000000"}, {}, 600_000_000),
    "v1-limit": ({"memory/memory.limit_in_bytes": "536870912"}, {}, 536870912),
    "v1-unlimited": ({"memory/memory.limit_in_bytes": V1_UNLIMITED}, {}, PHYSICAL),
    "cgroup-before-lambda": ({"memory.max": "1000000000"}, {"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "3008"}, 1_000_000_000),
    "lambda-only": ({}, {"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "3008"}, 3008 * MIB),
    "lambda-garbage-ignored": ({}, {"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "lots"}, PHYSICAL),
    "lambda-zero-ignored": ({}, {"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "0"}, PHYSICAL),
}


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text + "\n")
    return root


@pytest.mark.parametrize(("files", "environ", "expected"), LIMIT_CASES.values(), ids=LIMIT_CASES.keys())
def test_memory_limit(files: dict[str, str], environ: dict[str, str], expected: int, tmp_path: Path) -> None:
    assert memory_limit_bytes(write(tmp_path, files), environ, physical=PHYSICAL) == expected


@pytest.mark.parametrize(("text", "expected"), [("max", None), ("123456", 123456), ("", None), ("-1", None)])
def test_cgroup_v2_values(text: str, expected: int | None, tmp_path: Path) -> None:
    assert cgroup_memory_limit(write(tmp_path, {"memory.max": text})) == expected


def test_the_default_budget_is_the_limit_in_mb(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory_limit, "memory_limit_bytes", lambda: 2_500_999_999)
    assert memory_limit.default_budget_mb() == 2500


def test_resident_bytes_is_this_process_rss() -> None:
    with open("/proc/self/status") as status:
        vmrss_kb = next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
    # The same counter read twice a few allocations apart: equal within a few MB, never 0 on Linux.
    assert abs(resident_bytes() - vmrss_kb * 1024) < 8 * 2**20
