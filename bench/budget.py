"""A burst of large images against MEMORY_BUDGET_MB: 8 concurrent 40 MP requests, with the budget and without.

    python -m bench.budget                  # -> bench/budget.json and the "budget" section of docs/benchmarks.md
    python -m bench.budget --no-write
    python -m bench.budget --requests 3 --megapixels 12 --no-write     # a quicker look

1. Basis: a fresh uvicorn (the served default model); its RSS when ready, after one small request, after two
   at once: what ``app.core.resources.budget.INFERENCE_BYTES`` charges per worker; then what a 12 MP JPEG costs
   beyond its pixels at ``BYTES_PER_PIXEL``: what ``REQUEST_BYTES`` charges per request.
2. Bursts: for a photo-like image (``bench.photo``) of ``--megapixels`` saved as JPEG q90 and as TIFF LZW, a
   fresh uvicorn with ``MEMORY_BUDGET_MB=600`` and one with no budget of ours (the default: this machine's
   memory); ``--requests`` of the same file sent at once; every status and the process's peak RSS over its
   life (VmHWM, ``bench.memory``). Goal (issue 11): with the budget, every answer 200 or 429 (never a 5xx)
   and the peak at most 650 MB.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests

from app.core.resources.budget import BYTES_PER_PIXEL
from app.core.resources.memory_limit import MB
from bench import REPO
from bench.bytes_per_pixel import encoders, photo
from bench.memory import reset_peak, vmhwm_mb, vmrss_mb
from bench.photo import photo_jpeg
from bench.report import publish
from bench.server import Server

OUT = REPO / "bench" / "out"
RESULTS = REPO / "bench" / "budget.json"
MODEL = REPO / "model" / "weights" / "unet-int8.onnx"  # the served default
BUDGET_MB = 600  # issue 11's scenario
PEAK_GOAL_MB = 650
FORMATS = ("JPEG q90", "TIFF LZW")  # bench.bytes_per_pixel's encodings: a camera's and a scanner's
REQUEST_TIMEOUT_S = 900  # eight 40 MP requests one after the other on 2 shared cores: minutes
SETTLE_S = 0.5  # the worker trims the heap after answering: let it finish before RSS is read
logger = logging.getLogger("bench.budget")


def basis() -> dict[str, float]:
    """RSS of a fresh server when ready, after one small request and after two at once (the arena per inference);
    then a 12 MP JPEG's peak over that, less its pixels at BYTES_PER_PIXEL: what REQUEST_BYTES stands for."""
    small = photo_jpeg(256, 256)
    with Server(MODEL, OUT / "budget_basis.log") as server:
        server.wait_ready()
        pid = server.process.pid  # type: ignore[union-attr]
        rss = {"ready_mb": vmrss_mb(pid)}
        for label, count in (("after_one_mb", 1), ("after_two_at_once_mb", 2)):
            post_at_once(server.url, small, count)
            time.sleep(SETTLE_S)
            rss[label] = vmrss_mb(pid)
        rss["request_overhead_mb"] = overhead_mb(server.url, pid, 4000, 3000)
    return rss


def overhead_mb(url: str, pid: int, width: int, height: int) -> float:
    """One JPEG's peak RSS over the server's before it, less its pixels at ``BYTES_PER_PIXEL["JPEG"]``."""
    before = vmrss_mb(pid)
    reset_peak(pid)
    post_at_once(url, photo_jpeg(width, height, seed=1), 1)
    return vmhwm_mb(pid) - before - width * height * BYTES_PER_PIXEL["JPEG"] / MB


def post_at_once(url: str, data: bytes, count: int) -> list[int | str]:
    """``count`` POST /predict of ``data`` sent together; each one's status, or the error that replaced it."""
    def send(_: int) -> int | str:
        try:
            return requests.post(url, files={"file": ("image", data)}, timeout=REQUEST_TIMEOUT_S).status_code
        except requests.RequestException as error:  # a server killed for memory resets its connections
            return f"{type(error).__name__}"

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(send, range(count)))


def burst(name: str, data: bytes, count: int, budget_mb: int | None) -> dict[str, Any]:
    """A fresh server (MEMORY_BUDGET_MB=``budget_mb``, or its default), ``count`` requests at once; statuses, peak."""
    env = {"MAX_UPLOAD_BYTES": str(len(data) + 1), "MAX_PIXELS": "100000000"}
    if budget_mb is not None:
        env["MEMORY_BUDGET_MB"] = str(budget_mb)
    log = OUT / f"budget_{name.replace(' ', '_')}_{budget_mb or 'none'}.log"
    with Server(MODEL, log, extra_env=env) as server:
        server.wait_ready()
        ready = vmrss_mb(server.process.pid)  # type: ignore[union-attr]
        started = time.perf_counter()
        statuses = post_at_once(server.url, data, count)
        wall = time.perf_counter() - started
        peak = vmhwm_mb(server.process.pid)  # type: ignore[union-attr]
    row = {"format": name, "budget_mb": budget_mb, "file_mb": len(data) / 1e6, "statuses": statuses,
           "ready_rss_mb": ready, "peak_rss_mb": peak, "wall_s": wall, "requests_mb": logged_capacity_mb(log)}
    logger.info("%s", row)
    return row


def logged_capacity_mb(log: Path) -> int | None:
    """The MB the server's budget left for requests, from its "memory budget" log line (app.core.resources.budget)."""
    for line in log.read_text().splitlines():
        if '"memory budget"' in line:
            return int(json.loads(line)["requests_mb"])
    return None


def measure(megapixels: float = 40.0, count: int = 8, budget_mb: int = BUDGET_MB) -> dict[str, Any]:
    """The basis, then a burst per format with the budget and without; the goal evaluated on the budgeted ones."""
    width = int((megapixels * 1e6 * 4 / 3) ** 0.5)
    height = int(width * 3 / 4)
    image, encode = photo(width, height), encoders()
    files = {name: encode[name](image) for name in FORMATS}
    del image
    results: dict[str, Any] = {"size": f"{width}x{height}", "pixels": width * height, "requests": count,
                               "budget_mb": budget_mb, "basis": basis(), "bursts": []}
    for name, data in files.items():
        for budget in (budget_mb, None):
            results["bursts"].append(burst(name, data, count, budget))
    results["goal"] = evaluate(results["bursts"])
    results["load_average"] = os.getloadavg()
    return results


def evaluate(bursts: list[dict[str, Any]]) -> dict[str, Any]:
    """With the budget: every status 200 or 429, and the peak RSS at most PEAK_GOAL_MB."""
    budgeted = [row for row in bursts if row["budget_mb"] is not None]
    answered = all(status in (200, 429) for row in budgeted for status in row["statuses"])
    worst = max(row["peak_rss_mb"] for row in budgeted)
    return {"all_200_or_429": answered, "worst_peak_mb": worst, "limit_mb": PEAK_GOAL_MB,
            "met": answered and worst <= PEAK_GOAL_MB}


def markdown(results: dict[str, Any]) -> str:
    """The section for docs/benchmarks.md: the basis, then one row per burst, and the goal."""
    base, goal = results["basis"], results["goal"]
    lines = [
        f"`python -m bench.budget` (load average {results['load_average'][0]:.2f} at the end): {results['requests']} "
        f"concurrent {results['size']} ({results['pixels'] / 1e6:.1f} MP) photo-like requests (PNG overlay) on a "
        f"fresh uvicorn, with `MEMORY_BUDGET_MB={results['budget_mb']}` and with no budget of ours (the default, "
        "this machine's memory).", "",
        "| format | MEMORY_BUDGET_MB | file MB | MB left for requests | statuses | RSS when ready MB | "
        "peak RSS MB | wall s |", "| --- | --- | ---: | ---: | --- | ---: | ---: | ---: |"]
    for row in results["bursts"]:
        statuses = ", ".join(f"{count}x {status}" for status, count in tally(row["statuses"]).items())
        lines.append(f"| {row['format']} | {row['budget_mb'] or 'none (default)'} | {row['file_mb']:.1f} | "
                     f"{row['requests_mb'] if row['budget_mb'] else ''} | {statuses} | {row['ready_rss_mb']:.0f} | "
                     f"{row['peak_rss_mb']:.0f} | {row['wall_s']:.0f} |")
    met = "met" if goal["met"] else "**missed**"
    lines += ["", f"Goal, with the budget: every answer 200 or 429 and peak RSS <= {goal['limit_mb']} MB: {met} "
              f"(worst peak {goal['worst_peak_mb']:.0f} MB; all 200 or 429: {goal['all_200_or_429']}).", "",
              f"Basis of `app.core.resources.budget`'s constants: RSS of a fresh server when ready "
              f"{base['ready_mb']:.0f} MB, "
              f"after one 256x256 request {base['after_one_mb']:.0f} MB, after two at once "
              f"{base['after_two_at_once_mb']:.0f} MB (`INFERENCE_BYTES`, per worker); a 12 MP JPEG's peak over "
              f"the server's RSS less its pixels at `BYTES_PER_PIXEL` {base['request_overhead_mb']:.1f} MB "
              "(`REQUEST_BYTES`, per request)."]
    return "\n".join(lines)


def tally(statuses: list[int | str]) -> dict[int | str, int]:
    counts: dict[int | str, int] = {}
    for status in statuses:
        counts[status] = counts.get(status, 0) + 1
    return counts


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--megapixels", type=float, default=40.0)
    parser.add_argument("--requests", type=int, default=8)
    parser.add_argument("--budget-mb", type=int, default=BUDGET_MB)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    results = measure(args.megapixels, args.requests, args.budget_mb)
    publish(results, markdown(results), RESULTS, "budget", write=not args.no_write)


if __name__ == "__main__":
    main()
