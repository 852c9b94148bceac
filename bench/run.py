"""The service's benchmark, in one run on one machine: ``make bench`` (= ``python -m bench.run``).

Measures, against issue 3's goals (``bench.report.GOALS``):
model alone (onnxruntime on 1x3x256x256); end to end in-process (bytes -> PNG through
``app.core.pipeline.render``, what POST /predict runs) and over HTTP loopback (a real
uvicorn subprocess, the seed client's ``requests.post``) for a photo-like 1080p JPEG
and a 12 MP JPEG, each interleaved round by round with the model alone so their
ratio survives a noisy machine; the stage breakdown; start to first answer and
peak RSS of fresh processes. Writes bench/results.json and the numbers section of
docs/benchmarks.md. Bounded: fixed round counts, loopback only, every subprocess
terminated.

    python -m bench.run                       # everything, ~2 minutes on 2 cores
    python -m bench.run --rounds-1080p 5      # fewer rounds
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import REPO
from bench.inprocess import Pipeline, end_to_end, load_pipeline, model_alone
from bench.measure import interleaved, machine_info, stage_medians, summary
from bench.photo import photo_jpeg
from bench.report import evaluate, markdown, update_docs, write_json
from bench.server import Server, post_image, server_timing

# Defaults: enough rounds for a stable median on a noisy 2-core machine, few enough for ~2 minutes.
MODEL = REPO / "model" / "weights" / "unet.onnx"
IMAGES = {"1080p": (1920, 1080), "12MP": (4000, 3000)}  # a phone's full-resolution photo is 12 MP
ROUNDS = {"1080p": 25, "12MP": 5}
WARMUP = 2  # untimed pairs first: onnxruntime and the allocator settle on the first runs
OUT_DIR = REPO / "bench" / "out"  # git-ignored: the JPEGs, server logs
RESULTS = REPO / "bench" / "results.json"
DOCS = REPO / "docs" / "benchmarks.md"
CHILD_TIMEOUT_S = 300
COLD_STARTS = 3  # fresh in-process children per image size: a cold start is one noisy sample
logger = logging.getLogger("bench.run")


def write_images(out_dir: Path) -> dict[str, Path]:
    """The photo-like JPEGs, written once so the HTTP client can open them as files."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for label, (width, height) in IMAGES.items():
        paths[label] = out_dir / f"photo_{label}.jpg"
        paths[label].write_bytes(photo_jpeg(width, height))
    return paths


def measure_inprocess(pipeline: Pipeline, model: Callable[[], object], data: bytes, label: str, rounds: int,
                      warmup: int = WARMUP) -> dict[str, Any]:
    """End to end in this process, interleaved with the model alone."""
    renders = []
    model_ms, total_ms = interleaved(model, lambda: renders.append(end_to_end(pipeline, data)), rounds, warmup)
    timed = renders[warmup:]
    stages = stage_medians([render.timings_ms for render in timed])
    return _run("in-process", label, total_ms, model_ms, stages, len(timed[0].result.body))


def measure_http(model: Callable[[], object], image: Path, label: str, rounds: int) -> tuple[dict, dict]:
    """A fresh uvicorn: its start to first answer, then warm rounds interleaved with the model, then peak RSS."""
    stages, sizes = [], []

    def request() -> None:
        response = post_image(server.url, image)
        stages.append(server_timing(response))
        sizes.append(len(response.content))

    with Server(MODEL, OUT_DIR / f"server_{label}.log") as server:
        ready_s = server.wait_ready()
        idle_mb = server.peak_rss_mb()
        cold_s, first_request_s = server.first_answer(image)
        model_ms, total_ms = interleaved(model, request, rounds, WARMUP)
        peak_mb = server.peak_rss_mb()
    timed = stages[WARMUP:]
    breakdown = stage_medians(timed)
    # What the server's own timings do not cover: multipart parsing, uvicorn, loopback, the client.
    breakdown["http_other"] = statistics.median(t - sum(s.values()) for t, s in zip(total_ms, timed, strict=True))
    fresh = {"kind": "uvicorn server", "image": label, "start_to_first_answer_s": cold_s, "ready_s": ready_s,
             "first_request_s": first_request_s, "peak_rss_mb": peak_mb, "peak_rss_mb_before_first_request": idle_mb,
             "requests_served": 1 + WARMUP + rounds}
    return _run("HTTP loopback", label, total_ms, model_ms, breakdown, sizes[-1]), fresh


def _run(path: str, label: str, total_ms: list[float], model_ms: list[float], stages: dict[str, float],
         png_bytes: int) -> dict[str, Any]:
    return {"path": path, "image": label, "total_ms": summary(total_ms), "model_ms": summary(model_ms),
            "ratio_to_model": statistics.median(total_ms) / statistics.median(model_ms), "stages_ms": stages,
            "png_mb": png_bytes / 1e6, "samples_ms": {"total": total_ms, "model": model_ms}}


def measure_child(image: Path, label: str) -> dict[str, Any]:
    """Fresh processes that import app.main and answer one image: median cold start, worst peak RSS."""
    children = [_one_child(image) for _ in range(COLD_STARTS)]
    return {"kind": "in-process (import app.main, render once)", "image": label, "processes": COLD_STARTS,
            **{key: statistics.median(child[key] for child in children)
               for key in ("start_to_first_answer_s", "import_s", "first_request_s")},
            "peak_rss_mb": max(child["peak_rss_mb"] for child in children)}


def _one_child(image: Path) -> dict[str, float]:
    launched = time.time()
    done = subprocess.run([sys.executable, "-m", "bench.child", str(image), str(MODEL)], cwd=REPO,
                          capture_output=True, text=True, timeout=CHILD_TIMEOUT_S, check=True)
    child = json.loads(done.stdout.strip().splitlines()[-1])
    # VmHWM, not ru_maxrss: Linux keeps ru_maxrss across fork+exec, so a child of this (large)
    # process reports this process's peak there (getrusage(2): "ru_maxrss"); VmHWM starts afresh.
    return {"start_to_first_answer_s": child["first_answer_epoch_s"] - launched,
            "import_s": child["import_ms"] / 1000.0, "first_request_s": child["first_render_ms"] / 1000.0,
            "peak_rss_mb": child["vmhwm_mb"]}


def headline(results: dict[str, Any]) -> None:
    """Derived figures the goals read: model alone, ratios, cold starts, worst peak RSS per image size."""
    runs, fresh = results["end_to_end"], results["fresh_processes"]
    results["model_alone_ms"] = summary([ms for run in runs.values() for ms in run["samples_ms"]["model"]])
    results["ratios"] = {key: run["ratio_to_model"] for key, run in runs.items()}
    results["start_to_first_answer_s"] = {key: run["start_to_first_answer_s"] for key, run in fresh.items()}
    results["peak_rss_mb"] = {key: run["peak_rss_mb"] for key, run in fresh.items()}
    for label in IMAGES:
        worst = max(run["peak_rss_mb"] for run in fresh.values() if run["image"] == label)
        results["peak_rss_mb"][f"worst_{label}"] = worst
    results["goals"] = evaluate(results)


def run_all(rounds: dict[str, int]) -> dict[str, Any]:
    """Every measurement, in order; the phases are independent of each other's results."""
    started = time.perf_counter()
    results: dict[str, Any] = {"command": "make bench", "machine": machine_info(), "rounds": rounds,
                               "warmup_rounds": WARMUP, "end_to_end": {}, "fresh_processes": {}}
    # 1. inputs
    images = write_images(OUT_DIR)
    results["images"] = {label: {"size": IMAGES[label], "jpeg_bytes": images[label].stat().st_size}
                         for label in images}
    # 2. model alone and end to end in this process, then 3. over HTTP (a fresh server per size)
    pipeline = load_pipeline(MODEL)
    model = model_alone(MODEL, pipeline.segmenter)
    for label, path in images.items():
        logger.info("in-process %s: %d rounds", label, rounds[label])
        run = measure_inprocess(pipeline, model, path.read_bytes(), label, rounds[label])
        results["end_to_end"][f"inprocess_{label}"] = run
    for label, path in images.items():
        logger.info("HTTP %s: a fresh uvicorn, %d rounds", label, rounds[label])
        run, fresh = measure_http(model, path, label, rounds[label])
        results["end_to_end"][f"http_{label}"], results["fresh_processes"][f"http_{label}"] = run, fresh
    # 4. fresh in-process children: Lambda-like cold start and peak RSS
    for label, path in images.items():
        logger.info("fresh in-process child %s", label)
        results["fresh_processes"][f"inprocess_{label}"] = measure_child(path, label)
    results["wall_s"] = time.perf_counter() - started
    results["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    headline(results)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description="The service's benchmark (see the module docstring).")
    parser.add_argument("--rounds-1080p", type=int, default=ROUNDS["1080p"])
    parser.add_argument("--rounds-12mp", type=int, default=ROUNDS["12MP"])
    parser.add_argument("--no-write", action="store_true", help="print only; keep results.json and the docs")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    results = run_all({"1080p": args.rounds_1080p, "12MP": args.rounds_12mp})
    section = markdown(results)
    if not args.no_write:
        write_json(results, RESULTS)
        update_docs(DOCS, section)
    sys.stdout.write(section + "\n")


if __name__ == "__main__":
    main()
