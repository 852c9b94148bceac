"""``make load``: the real server under a mix of uploads at 1x, 4x and 16x its workers (Locust, headless).

    make load                                                 # 60 s per level: ~5 minutes in all
    make load LOAD_SECONDS=300                                # a soak: 15 minutes of load
    python -m bench.load --seconds 8 --levels 1,16 --out runs/load-short    # what make test runs

A fresh uvicorn (bench.server.Server) serves the default model at default settings on a free
loopback port. Locust users (bench/locustfile.py) post photo-like 1080p and 12 MP JPEGs, an 8x8 PNG
and a JPEG cut in half (weights 4:1:3:2) back to back, each user as soon as its last answer came;
the number of users is the level times the server's worker count. Each level is bounded by
--seconds, plus the time the requests in flight take to finish (at most Locust's --stop-timeout).

Per level: requests, answers per second, p50/p95/p99 latency of the 200s, the share of 429s and how
many lacked Retry-After, 5xx, requests with no answer (connection errors), the statuses per kind of
upload, and the server's peak RSS during the level (VmHWM, reset before it). Around it all, with
the same protocol before and after the load (``settled_figures``): the server's idle RSS, then its
RSS, open file descriptors and threads once it has answered a burst. Writes report.json under --out
and prints the table. Numbers only: ``tests/integration/test_load.py`` asserts the invariants.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psutil
import requests
from PIL import Image

from app.core.resources.cpus import usable_cpus
from bench import REPO
from bench.memory import vmhwm_mb
from bench.photo import photo_jpeg
from bench.server import Server

MODEL = REPO / "model" / "weights" / "unet-int8.onnx"  # the served default (app.core.settings)
LEVELS = (1, 4, 16)  # concurrency as multiples of the server's workers
KINDS = ("1080p", "12mp", "tiny", "corrupt")
MIX = "1080p:4,12mp:1,tiny:3,corrupt:2"
# Idle before the figures, then a burst: anyio stops a worker thread idle for 10 s only when the next job is
# handed to its pool (anyio/_backends/_asyncio.py, WorkerThread.MAX_IDLE_TIME), so the threads a burst of
# uploads needs are counted after a burst, before and after the load alike.
IDLE_S = 12
REQUEST_TIMEOUT_S = 300  # bounds a hang only: a 12 MP request behind a full queue takes tens of seconds
LOCUST_STOP_TIMEOUT_S = 300  # requests in flight when a level's time is up may finish within this

logger = logging.getLogger("load")


def write_payloads(directory: Path) -> Path:
    """One file per kind of upload: photo-like 1080p and 12 MP JPEGs, an 8x8 PNG, a JPEG cut in half."""
    directory.mkdir(parents=True, exist_ok=True)
    full = photo_jpeg(1920, 1080, seed=1)
    tiny = io.BytesIO()
    Image.new("RGB", (8, 8), (30, 120, 200)).save(tiny, format="PNG")
    payloads = {"1080p": full, "12mp": photo_jpeg(4000, 3000, seed=2), "tiny": tiny.getvalue(),
                "corrupt": full[: len(full) // 2]}
    for kind, data in payloads.items():
        (directory / kind).write_bytes(data)
    return directory


def burst(base: str, payloads: Path, workers: int) -> None:
    """``workers`` requests of each kind at once: every worker thread, and the buffers they need, exist."""
    def post(kind: str) -> int:
        files = {"file": (kind, (payloads / kind).read_bytes())}
        return requests.post(f"{base}/predict", files=files, timeout=REQUEST_TIMEOUT_S).status_code

    with ThreadPoolExecutor(max_workers=workers) as pool:
        for kind in KINDS:
            list(pool.map(post, [kind] * workers))


def process_figures(pid: int) -> dict[str, Any]:
    process = psutil.Process(pid)
    return {"rss_mb": round(process.memory_info().rss / 1e6, 1), "fds": process.num_fds(),
            "threads": process.num_threads()}


def settled_figures(pid: int, base: str, payloads: Path, workers: int) -> dict[str, Any]:
    """Idle for IDLE_S (``idle_rss_mb``), then a burst and a second for its sockets to close: RSS, fds, threads."""
    time.sleep(IDLE_S)
    idle_rss_mb = process_figures(pid)["rss_mb"]
    burst(base, payloads, workers)
    time.sleep(1)
    return {**process_figures(pid), "idle_rss_mb": idle_rss_mb}


def reset_peak(pid: int) -> None:
    """VmHWM back to the current RSS (proc(5), clear_refs "5"), so the next peak is this level's own."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def run_level(base: str, users: int, seconds: int, work: Path) -> list[dict[str, Any]]:
    """Locust headless with ``users`` users for ``seconds``; the records its users wrote."""
    records = work / f"records-{users}.jsonl"
    env = {**os.environ, "LOAD_PAYLOADS": str(work / "payloads"), "LOAD_RECORDS": str(records), "LOAD_MIX": MIX}
    command = [sys.executable, "-m", "locust", "-f", str(REPO / "bench" / "locustfile.py"), "--headless",
               "--users", str(users), "--spawn-rate", str(users), "--run-time", f"{seconds}s", "--host", base,
               "--stop-timeout", str(LOCUST_STOP_TIMEOUT_S), "--only-summary", "--loglevel", "WARNING"]
    with (work / f"locust-{users}.log").open("w") as log:
        subprocess.run(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, check=False,
                       timeout=seconds + LOCUST_STOP_TIMEOUT_S + 60)
    return [json.loads(line) for line in records.read_text().splitlines()]


def percentile(values: list[float], share: float) -> float | None:
    """The ``share`` quantile of ``values`` (inclusive method, as numpy's default), in seconds to the ms."""
    if len(values) < 2:
        return round(values[0], 3) if values else None
    return round(statistics.quantiles(values, n=100, method="inclusive")[round(share * 100) - 1], 3)


def statuses_by_kind(records: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """{kind: {status: count}}; a request without an answer counts under "none"."""
    table: dict[str, dict[str, int]] = {}
    for record in records:
        counts = table.setdefault(record["kind"], {})
        status = str(record["status"]) if record["status"] is not None else "none"
        counts[status] = counts.get(status, 0) + 1
    return table


def level_figures(records: list[dict[str, Any]], wall_s: float) -> dict[str, Any]:
    ok = [record["seconds"] for record in records if record["status"] == 200]
    busy = [record for record in records if record["status"] == 429]
    return {
        "requests": len(records), "answers_per_s": round(sum(r["status"] is not None for r in records) / wall_s, 2),
        "ok_per_s": round(len(ok) / wall_s, 2), "p50_s": percentile(ok, 0.50), "p95_s": percentile(ok, 0.95),
        "p99_s": percentile(ok, 0.99), "share_429": round(len(busy) / max(1, len(records)), 3),
        "429_without_retry_after": sum(not record["retry_after"] for record in busy),
        "5xx": sum((record["status"] or 0) >= 500 for record in records),
        "connection_errors": sum(record["status"] is None for record in records),
        "by_kind": statuses_by_kind(records),
    }


def run(seconds: int, levels: tuple[int, ...], work: Path) -> dict[str, Any]:
    """The whole protocol against a fresh server; the report (see the module docstring)."""
    payloads = write_payloads(work / "payloads")
    workers = usable_cpus()
    report: dict[str, Any] = {"workers": workers, "seconds_per_level": seconds, "mix": MIX, "levels": []}
    with Server(MODEL, work / "server.log") as server:
        server.wait_ready()
        assert server.process is not None
        pid, base = server.process.pid, server.url.removesuffix("/predict")
        report["before"] = settled_figures(pid, base, payloads, workers)
        for level in levels:
            reset_peak(pid)
            started = time.perf_counter()
            records = run_level(base, level * workers, seconds, work)
            figures = level_figures(records, time.perf_counter() - started)
            report["levels"].append({"level": f"{level}x", "users": level * workers, **figures,
                                     "peak_rss_mb": round(vmhwm_mb(pid), 1)})
            logger.info("%s", json.dumps(report["levels"][-1]))
        report["after"] = settled_figures(pid, base, payloads, workers)
    report["peak_rss_mb"] = max(level["peak_rss_mb"] for level in report["levels"])
    return report


def table(report: dict[str, Any]) -> str:
    """The report as docs/reliability.md shows it."""
    rows = ["| level | users | requests | answers/s | 200s/s | p50 s | p95 s | p99 s | 429 share | "
            "429 w/o Retry-After | 5xx | conn. errors | peak RSS MB |", "|" + "---|" * 13]
    for level in report["levels"]:
        rows.append(f"| {level['level']} | {level['users']} | {level['requests']} | {level['answers_per_s']} | "
                    f"{level['ok_per_s']} | {level['p50_s']} | {level['p95_s']} | {level['p99_s']} | "
                    f"{level['share_429']:.1%} | {level['429_without_retry_after']} | {level['5xx']} | "
                    f"{level['connection_errors']} | {level['peak_rss_mb']} |")
    before, after = report["before"], report["after"]
    rows.append(f"\nThe server ({report['workers']} workers), idle {IDLE_S} s then a burst: "
                f"before the load {before}, after it {after}")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=60, help="load per level (in-flight requests then finish)")
    parser.add_argument("--levels", default=",".join(map(str, LEVELS)), help="multiples of the worker count")
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "load")
    arguments = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    levels = tuple(int(level) for level in arguments.levels.split(","))
    report = run(arguments.seconds, levels, arguments.out)
    (arguments.out / "report.json").write_text(json.dumps(report, indent=2))
    logger.info("%s", table(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
