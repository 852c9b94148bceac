"""Timing and machine facts: medians of fixed counts, runs interleaved so noise hits both sides alike."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable, Mapping
from importlib import metadata

from bench import REPO

PACKAGES = ("onnxruntime", "numpy", "pillow", "isal", "fastapi", "uvicorn", "requests")


def time_ms(work: Callable[[], object]) -> float:
    """Wall-clock milliseconds of one call."""
    started = time.perf_counter()
    work()
    return (time.perf_counter() - started) * 1000.0


def interleaved(first: Callable[[], object], second: Callable[[], object], rounds: int,
                warmup: int = 2) -> tuple[list[float], list[float]]:
    """``rounds`` timings of each, alternating first/second, after ``warmup`` untimed pairs.

    A ratio of two medians taken minutes apart on a noisy machine mostly measures the
    noise; alternating the two makes every slow spell land on both.
    """
    timed = interleaved_many({"first": first, "second": second}, rounds, warmup)
    return timed["first"], timed["second"]


def interleaved_many(works: Mapping[str, Callable[[], object]], rounds: int, warmup: int = 2) -> dict[str, list[float]]:
    """``rounds`` timings of each of ``works``, one of each per round in their order, after ``warmup`` untimed
    rounds: the ratio of any two medians is then taken over the same rounds, as ``interleaved``'s."""
    for _ in range(warmup):
        for work in works.values():
            work()
    timed: dict[str, list[float]] = {name: [] for name in works}
    for _ in range(rounds):
        for name, work in works.items():
            timed[name].append(time_ms(work))
    return timed


def paired_median(first: list[float], second: list[float]) -> float:
    """The median of ``first - second`` round by round: a difference that shares each round's noise."""
    return statistics.median(a - b for a, b in zip(first, second, strict=True))


def summary(samples: list[float]) -> dict[str, float]:
    """Median, quartiles and count: the median is what goals use, the spread says how noisy."""
    q1, _, q3 = statistics.quantiles(samples, n=4) if len(samples) > 1 else (samples[0],) * 3
    return {"median": statistics.median(samples), "q1": q1, "q3": q3, "n": len(samples)}


def stage_medians(runs: list[dict[str, float]]) -> dict[str, float]:
    """Per-stage median over runs (stages as the pipeline names them)."""
    stages = {stage for run in runs for stage in run}
    return {stage: statistics.median(run.get(stage, 0.0) for run in runs) for stage in sorted(stages)}


def machine_info() -> dict[str, object]:
    """What the numbers were measured on: CPU, cores, load, Python and the packages that matter."""
    return {
        "cpu": _cpu_model(),
        "logical_cpus": os.cpu_count(),
        "affinity_cpus": len(os.sched_getaffinity(0)),
        "load_average_1m_at_start": os.getloadavg()[0],
        "platform": platform.platform(),
        "python": platform.python_version(),
        "packages": {name: _version(name) for name in PACKAGES},
        "git_commit": _git_commit(),
        "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE"),
    }


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            return next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), "?")
    except OSError:
        return platform.processor() or "?"


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _git_commit() -> str | None:
    result = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                            check=False, timeout=10)
    return result.stdout.strip() or None
