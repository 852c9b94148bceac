"""A quiet machine for each section of ``make bench``: wait (bounded) for the load to drop, then record it.

    with sections.run("1080p"):   # waits up to WAIT_LIMIT_S for a 1-minute load under LOAD_LIMIT
        ...                       # then measures; the log says the load before and after, and who else ran

Ratios hold on any machine, but not on a loaded one: a figure measured while a mutation run
shared the cores said the seed's path was 8.2x ours, 4.3x on a quiet machine (issue 22). Before
each section this waits, polling ``os.getloadavg``, for the 1-minute load to drop under
LOAD_LIMIT, and gives up after ``wait_limit_s`` (saying so). The load after a section counts the
section's own work (two busy cores raise it towards 2.0 within a minute), so what marks a figure
as taken under load is the load before it, and the CPU that other processes used during it:
busy time from /proc/stat less this process's and its reaped children's (``getrusage``).
"""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

LOAD_LIMIT = 1.0  # 1-minute load on these 2 cores: above it, another process had half the machine
OTHERS_LIMIT_CORES = 0.5  # others' CPU during a section: a busy thread beside our two gets ~2/3 of a core
WAIT_LIMIT_S = 120.0  # two busy minutes decay from ~2.0 to under 1.0 in ~45 s (the load's time constant is 60 s)
POLL_S = 5.0  # the kernel recomputes the load average every 5 s (LOAD_FREQ, kernel/sched/loadavg.c)
IDLE_FIELDS = (3, 4)  # /proc/stat "cpu" line: user nice system idle iowait irq softirq steal ... (proc(5))


def wait_for_quiet(wait_limit_s: float = WAIT_LIMIT_S, limit: float = LOAD_LIMIT, poll_s: float = POLL_S,
                   loadavg: Callable[[], tuple[float, float, float]] = os.getloadavg,
                   clock: Callable[[], float] = time.monotonic,
                   sleep: Callable[[float], None] = time.sleep) -> dict[str, Any]:
    """Polls the 1-minute load until it is under ``limit`` or ``wait_limit_s`` has passed: the last load read,
    the seconds waited, and whether it gave up."""
    started = clock()
    while True:
        load, waited = loadavg()[0], clock() - started
        if load < limit or waited >= wait_limit_s:
            return {"load_1m": load, "waited_s": round(waited, 1), "gave_up": load >= limit}
        sleep(min(poll_s, wait_limit_s - waited))


def busy_cpu_s(stat: str = "/proc/stat") -> float:
    """Seconds of CPU time all processes have used since boot, summed over the CPUs (steal included: a
    neighbour on the same host slows a section as another process does)."""
    with open(stat) as lines:
        fields = [int(value) for value in lines.readline().split()[1:9]]
    busy = sum(value for index, value in enumerate(fields) if index not in IDLE_FIELDS)
    return busy / os.sysconf("SC_CLK_TCK")


def own_cpu_s() -> float:
    """CPU seconds of this process and of the children it has waited for (servers and processes it started)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def others_cores(busy_s: float, own_s: float, wall_s: float) -> float:
    """The CPUs' worth of time other processes used over ``wall_s``, from the busy and own CPU seconds in it."""
    return max(0.0, busy_s - own_s) / wall_s if wall_s > 0 else 0.0


def is_loaded(record: dict[str, Any]) -> bool:
    """A section's figures were taken under load: the load was still high when it began, or others took CPU."""
    return bool(record["load_before"] >= LOAD_LIMIT or record["others_cores"] > OTHERS_LIMIT_CORES)


@dataclass
class Sections:
    """Each section's wait and load, by name, in the order they ran (``results["load"]``)."""

    wait_limit_s: float = WAIT_LIMIT_S
    log: dict[str, dict[str, Any]] = field(default_factory=dict)

    @contextmanager
    def run(self, name: str) -> Iterator[None]:
        """Wait for a quiet machine, then the section; its record is written when it ends."""
        waited = wait_for_quiet(self.wait_limit_s)
        busy, own, started = busy_cpu_s(), own_cpu_s(), time.monotonic()
        yield
        wall = time.monotonic() - started
        record = {"load_before": round(waited["load_1m"], 2), "load_after": round(os.getloadavg()[0], 2),
                  "waited_s": waited["waited_s"], "gave_up_waiting": waited["gave_up"], "wall_s": round(wall, 1),
                  "others_cores": round(others_cores(busy_cpu_s() - busy, own_cpu_s() - own, wall), 2)}
        self.log[name] = {**record, "loaded": is_loaded(record)}
