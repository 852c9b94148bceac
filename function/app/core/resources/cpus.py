"""How many CPUs this process may really use: its affinity mask, capped by a cgroup quota.

``os.cpu_count()`` reports the host's CPUs; a container limited by a CFS quota
(Docker ``--cpus``, Kubernetes limits) gets less time than that, and a thread
pool sized to the host then gets throttled. Lambda sizes vCPUs by memory and
shows them through the affinity mask. The quota is rounded down, as Go's
automaxprocs does (https://github.com/uber-go/automaxprocs), never below 1.
"""

from __future__ import annotations

import math
import os
from functools import lru_cache
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")


@lru_cache(maxsize=1)
def process_cpus() -> int:
    """``usable_cpus()`` read once per process, for everything that sizes its threads by it (the model's session,
    the bands, the decoders, the work queue): its affinity and cgroup quota are a syscall and files, and do not
    change under a running process. A forked child reads its own again."""
    return usable_cpus()


os.register_at_fork(after_in_child=process_cpus.cache_clear)


def usable_cpus(cgroup_root: Path = CGROUP_ROOT) -> int:
    """min(affinity, floor(cgroup quota)), at least 1."""
    cpus = affinity_cpus()
    quota = cgroup_cpu_quota(cgroup_root)
    if quota is not None:
        cpus = min(cpus, math.floor(quota))
    return max(cpus, 1)


def affinity_cpus() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def cgroup_cpu_quota(root: Path) -> float | None:
    """CPUs' worth of time per period from cgroup v2 ``cpu.max`` or v1 ``cfs_quota_us``; None if unlimited."""
    v2 = read_text(root / "cpu.max")
    if v2 is not None:
        return parse_cpu_max(v2)
    quota, period = read_text(root / "cpu" / "cpu.cfs_quota_us"), read_text(root / "cpu" / "cpu.cfs_period_us")
    if quota is not None and period is not None:
        return parse_cfs(quota, period)
    return None


def parse_cpu_max(text: str) -> float | None:
    """cgroup v2 ``cpu.max``: ``"<quota> <period>"``, quota ``max`` for unlimited."""
    fields = text.split()
    if len(fields) != 2 or fields[0] == "max":
        return None
    return parse_cfs(fields[0], fields[1])


def parse_cfs(quota: str, period: str) -> float | None:
    """cgroup v1 quota/period in microseconds; a quota of -1 means unlimited."""
    try:
        quota_us, period_us = int(quota), int(period)
    except ValueError:
        return None
    if quota_us <= 0 or period_us <= 0:
        return None
    return quota_us / period_us


def read_text(path: Path) -> str | None:
    """A cgroup (or /proc) file's text, stripped; None when it is absent or unreadable."""
    try:
        return path.read_text().strip()
    except OSError:
        return None
