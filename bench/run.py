"""The service's benchmark, in one run on one machine: ``make bench`` (= ``python -m bench.run``).

Measures, against issues 3's and 11's goals (``bench.report.GOALS``):
the served int8 model alone next to the fp32 one (onnxruntime on 1x3x256x256, interleaved);
end to end with the served model in-process (bytes -> PNG through
``app.core.pipeline.render``, what POST /predict runs) and over HTTP loopback (a real
uvicorn subprocess, the seed client's ``requests.post``) for a photo-like 1080p JPEG
and a 12 MP JPEG, each interleaved round by round with the model alone so their
ratio survives a noisy machine, and end to end minus the model; the stage breakdown; the
seed's path (PyTorch eager, ``bench.seed_path``) on the same 1080p image; start to first
answer and peak RSS of fresh processes; both Lambda functions' cold starts
(``bench.coldstart``); memory per decoded pixel (``bench.bytes_per_pixel``), after a
history of large images (``bench.history``) and under MEMORY_BUDGET_MB (``bench.budget``).
Writes bench/results.json and the numbers section of docs/benchmarks.md. Bounded: fixed
round counts, loopback only, every subprocess terminated.

    python -m bench.run                       # everything, ~10 minutes on 2 cores
    python -m bench.run --rounds-1080p 5      # fewer rounds
    python -m bench.run --quick               # no fp16 seed run, no 40 MP memory runs
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

from app.core.segmenter import Segmenter
from bench import REPO, budget, bytes_per_pixel, coldstart, history
from bench.inprocess import Pipeline, end_to_end, load_pipeline, model_alone
from bench.measure import interleaved, machine_info, stage_medians, summary
from bench.photo import photo_jpeg
from bench.report import GOALS, evaluate, markdown, update_docs, write_json
from bench.server import Server, post_image, server_timing

# Defaults: enough rounds for a stable median on a noisy 2-core machine, few enough for ~2 minutes.
MODEL = REPO / "model" / "weights" / "unet-int8.onnx"  # the served default (README, Settings.MODEL_URI)
FP32_MODEL = REPO / "model" / "weights" / "unet.onnx"  # the reference it was quantized from
IMAGES = {"1080p": (1920, 1080), "12MP": (4000, 3000)}  # a phone's full-resolution photo is 12 MP
ROUNDS = {"1080p": 25, "12MP": 5}
WARMUP = 2  # untimed pairs first: onnxruntime and the allocator settle on the first runs
OUT_DIR = REPO / "bench" / "out"  # git-ignored: the JPEGs, server logs
RESULTS = REPO / "bench" / "results.json"
DOCS = REPO / "docs" / "benchmarks.md"
CHILD_TIMEOUT_S = 300
COLD_STARTS = 3  # fresh in-process children per image size: a cold start is one noisy sample
SEED_ROUNDS = 5  # the seed's path, 1080p, after its first render
SEED_TIMEOUT_S = 600  # fp16 convolutions on a CPU: 52 s a frame on the old service's machine
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
    # End to end minus the model: per round, so the pair shares the round's noise.
    overhead_ms = statistics.median(total - model for total, model in zip(total_ms, model_ms, strict=True))
    return {"path": path, "image": label, "total_ms": summary(total_ms), "model_ms": summary(model_ms),
            "ratio_to_model": statistics.median(total_ms) / statistics.median(model_ms), "overhead_ms": overhead_ms,
            "stages_ms": stages,
            "png_mb": png_bytes / 1e6, "samples_ms": {"total": total_ms, "model": model_ms}}


def measure_models(segmenter: Segmenter, rounds: int) -> dict[str, Any]:
    """The served int8 model and the fp32 one alone, interleaved run by run, in sessions built as served."""
    int8_ms, fp32_ms = interleaved(model_alone(MODEL, segmenter), model_alone(FP32_MODEL, segmenter), rounds, WARMUP)
    return {"int8": summary(int8_ms), "fp32": summary(fp32_ms),
            "int8_speedup": statistics.median(fp32_ms) / statistics.median(int8_ms),
            "files": {"int8": MODEL.relative_to(REPO).as_posix(), "fp32": FP32_MODEL.relative_to(REPO).as_posix()}}


def measure_seed(image: Path, ours: dict[str, Any], with_fp16: bool) -> dict[str, Any]:
    """The old service's path on the same image in fresh processes, beside ours in-process (median ms, peak RSS)."""
    fp32 = _seed_child(image, "float32", SEED_ROUNDS)
    renders = fp32["render_ms"][1:]  # the first render warms PyTorch up, as WARMUP does ours
    result = {"fp32_ms": statistics.median(renders), "fp32_peak_rss_mb": fp32["vmhwm_mb"],
              "ours_ms": ours["total_ms"]["median"], "ours_peak_rss_mb": ours["peak_rss_mb"]}
    result["speedup_1080p"] = result["fp32_ms"] / result["ours_ms"]
    if with_fp16:
        fp16 = _seed_child(image, "float16", 0)
        result.update(fp16_ms=fp16["render_ms"][0], fp16_peak_rss_mb=fp16["vmhwm_mb"])
    return result


def _seed_child(image: Path, dtype: str, rounds: int) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-m", "bench.seed_path", str(image), "--dtype", dtype, "--rounds",
                           str(rounds)], cwd=REPO, capture_output=True, text=True, timeout=SEED_TIMEOUT_S, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure_memory(quick: bool) -> tuple[dict[str, Any], list[str]]:
    """Bytes per decoded pixel per format at 40 MP, and idle RSS after a history of them: figures and tables."""
    if quick:
        return {}, []
    per_pixel, after_history, admitted = bytes_per_pixel.measure(40.0), history.measure(rounds=3), budget.measure()
    budgeted = [burst for burst in admitted["bursts"] if burst["budget_mb"] is not None]
    figures = {"worst_bytes_per_pixel": max(row["bytes_per_pixel"] for row in per_pixel["rows"].values()),
               "history_growth_pct": 100.0 * after_history["growth"],
               "budget_worst_peak_mb": admitted["goal"]["worst_peak_mb"],
               "budget_answers_not_200_or_429": sum(status not in (200, 429) for burst in budgeted
                                                    for status in burst["statuses"]),
               "bytes_per_pixel": per_pixel, "history": after_history, "budget": admitted}
    sections = [bytes_per_pixel.markdown(per_pixel), "", history.markdown(after_history), "", budget.markdown(admitted)]
    return figures, sections


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
    results["overhead_ms"] = {key: run["overhead_ms"] for key, run in runs.items()}
    starts = results["cold_starts"]["functions"]
    results["cold_start"] = {f"{entry}_{key}": run[key] for entry, run in starts.items()
                             for key in ("init_s", "init_and_first_event_s")}
    results["start_to_first_answer_s"] = {key: run["start_to_first_answer_s"] for key, run in fresh.items()}
    results["peak_rss_mb"] = {key: run["peak_rss_mb"] for key, run in fresh.items()}
    for label in IMAGES:
        worst = max(run["peak_rss_mb"] for run in fresh.values() if run["image"] == label)
        results["peak_rss_mb"][f"worst_{label}"] = worst
    measured = [goal for goal in GOALS if goal.path[0] != "memory" or results["memory"]]  # --quick: none
    results["goals"] = evaluate(results, measured)


def run_all(rounds: dict[str, int], quick: bool = False) -> dict[str, Any]:
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
    logger.info("model alone: int8 and fp32, %d rounds", rounds["1080p"])
    results["model_alone"] = measure_models(pipeline.segmenter, rounds["1080p"])
    model = model_alone(MODEL, pipeline.segmenter)
    for label, path in images.items():
        logger.info("in-process %s: %d rounds", label, rounds[label])
        run = measure_inprocess(pipeline, model, path.read_bytes(), label, rounds[label])
        results["end_to_end"][f"inprocess_{label}"] = run
    for label, path in images.items():
        logger.info("HTTP %s: a fresh uvicorn, %d rounds", label, rounds[label])
        run, fresh = measure_http(model, path, label, rounds[label])
        results["end_to_end"][f"http_{label}"], results["fresh_processes"][f"http_{label}"] = run, fresh
    # 4. fresh in-process children: peak RSS; the seed's path beside the 1080p one
    for label, path in images.items():
        logger.info("fresh in-process child %s", label)
        results["fresh_processes"][f"inprocess_{label}"] = measure_child(path, label)
    logger.info("the seed's path on the 1080p image%s", "" if quick else ", and fp16 once")
    ours = {"total_ms": results["end_to_end"]["inprocess_1080p"]["total_ms"],
            "peak_rss_mb": results["fresh_processes"]["inprocess_1080p"]["peak_rss_mb"]}
    results["seed_path"] = measure_seed(images["1080p"], ours, with_fp16=not quick)
    # 5. both Lambda functions' cold starts, then memory per pixel and after a history (40 MP images)
    logger.info("cold starts: %d fresh processes per function", coldstart.PROCESSES)
    results["cold_starts"] = coldstart.measure(images["1080p"])
    logger.info("memory: bytes per pixel and history at 40 MP%s", " (skipped: --quick)" if quick else "")
    results["memory"], results["sections"] = measure_memory(quick)
    results["sections"] = [coldstart.markdown(results["cold_starts"]), "", *results["sections"]]
    results["wall_s"] = time.perf_counter() - started
    results["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    headline(results)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description="The service's benchmark (see the module docstring).")
    parser.add_argument("--rounds-1080p", type=int, default=ROUNDS["1080p"])
    parser.add_argument("--rounds-12mp", type=int, default=ROUNDS["12MP"])
    parser.add_argument("--no-write", action="store_true", help="print only; keep results.json and the docs")
    parser.add_argument("--quick", action="store_true", help="no fp16 seed run and no 40 MP memory runs")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    results = run_all({"1080p": args.rounds_1080p, "12MP": args.rounds_12mp}, args.quick)
    section = markdown(results)
    if not args.no_write:
        write_json(results, RESULTS)
        update_docs(DOCS, section)
    sys.stdout.write(section + "\n")


if __name__ == "__main__":
    main()
