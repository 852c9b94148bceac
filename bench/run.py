"""The service's benchmark, in one run on one machine: ``make bench`` (= ``python -m bench.run``).

Measures, against issue 22's goals and those of issues 3 and 11 it keeps (``bench.report.GOALS``),
section by section, each after waiting (bounded) for a quiet machine and with its load recorded
(``bench.quiet``):

- ``models``: the served int8 model alone next to the fp32 one (onnxruntime on 1x3x256x256, interleaved);
- ``1080p``, ``12MP``: a fresh uvicorn's start to first answer, then ``bench.around``'s interleaved
  rounds on a photo-like JPEG: the model alone, the whole render in-process
  (``app.core.pipeline.render``, what POST /predict runs) to a PNG overlay, a JPEG overlay, the mask
  and the JSON document, the PNG overlay over HTTP loopback (by a lean keep-alive client, the goal's
  figure, and by the seed client's ``requests.post`` beside it),
  and each stage's floor (``bench.floors``): ratios to the model, the time around it, HTTP minus
  in-process, and every stage beside its floor, all from the same rounds;
- ``children``: fresh processes that import app.main and answer one image (``bench.child``): peak RSS;
- ``seed``: the seed's path (PyTorch eager, ``bench.seed_path``) on the same 1080p image;
- ``coldstart``: both Lambda functions' init and first event beside their floors (``bench.coldstart``);
- 40 MP memory: ``bytes_per_pixel`` per format, ``history``, ``budget`` (MEMORY_BUDGET_MB), and
  ``corpus`` (``bench.corpus_memory``: PngSuite, the fuzz corpora, 40 MP JPEG, PNG and LZW TIFF).

Writes bench/results.json and the numbers section of docs/benchmarks.md (``--out DIR``: DIR/results.json
and DIR/benchmarks.md instead). Bounded: fixed round counts, bounded waits, loopback only, every
subprocess terminated.

    python -m bench.run                       # everything, ~15 minutes on 2 cores (waits included)
    python -m bench.run --rounds-1080p 5      # fewer rounds
    python -m bench.run --quick               # no fp16 seed run, no 40 MP memory sections, waits of 10 s at most
    python -m bench.run --only 1080p coldstart --out /tmp/bench   # some sections, written elsewhere
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
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from app.core.inference.segmenter import Segmenter
from bench import REPO, around, budget, bytes_per_pixel, coldstart, corpus_memory, history
from bench.inprocess import Pipeline, load_pipeline, model_alone
from bench.measure import interleaved, machine_info, summary
from bench.photo import photo_jpeg
from bench.quiet import WAIT_LIMIT_S, Sections
from bench.report import GOALS, LOADED, evaluate, markdown, update_docs, write_json
from bench.server import KeepAliveClient, Server, timed_post_image

# Defaults: enough rounds for a stable median on a noisy 2-core machine, few enough for ~2 minutes.
MODEL = REPO / "model" / "weights" / "unet-int8.onnx"  # the served default (README, Settings.MODEL_URI)
FP32_MODEL = REPO / "model" / "weights" / "unet.onnx"  # the reference it was quantized from
IMAGES = {"1080p": (1920, 1080), "12MP": (4000, 3000)}  # a phone's full-resolution photo is 12 MP
ROUNDS = {"1080p": 25, "12MP": 5}
WARMUP = around.WARMUP
OUT_DIR = REPO / "bench" / "out"  # git-ignored: the JPEGs, server logs
RESULTS = REPO / "bench" / "results.json"
DOCS = REPO / "docs" / "benchmarks.md"
CHILD_TIMEOUT_S = 300
COLD_STARTS = 3  # fresh uvicorns and in-process children per image size: a cold start is one noisy sample
SEED_ROUNDS = 5  # the seed's path, 1080p, after its first render
SEED_TIMEOUT_S = 600  # fp16 convolutions on a CPU: 52 s a frame on the old service's machine
QUICK_WAIT_LIMIT_S = 10.0  # --quick: a check that the benchmark runs, not figures to keep
SECTIONS = ("models", "1080p", "12MP", "children", "seed", "coldstart", "bytes_per_pixel", "history", "budget",
            "corpus")
MEMORY_SECTIONS = ("bytes_per_pixel", "history", "budget", "corpus")  # 40 MP images: what --quick leaves out
logger = logging.getLogger("bench.run")


def write_images(out_dir: Path) -> dict[str, Path]:
    """The photo-like JPEGs, written once so the HTTP client can open them as files."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for label, (width, height) in IMAGES.items():
        paths[label] = out_dir / f"photo_{label}.jpg"
        paths[label].write_bytes(photo_jpeg(width, height))
    return paths


def measure_size(pipeline: Pipeline, model: Callable[[], object], image: Path, label: str,
                 rounds: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """A fresh uvicorn: its start to first answer; then ``bench.around``'s interleaved rounds (the model, every
    output in-process, the PNG overlay over HTTP, the floors); then the server's peak RSS; then more fresh
    uvicorns, for the median start to first answer of ``COLD_STARTS``."""
    with Server(MODEL, OUT_DIR / f"server_{label}.log") as server:
        ready_s = server.wait_ready()
        idle_mb = server.peak_rss_mb()
        cold_s, first_request_s = server.first_answer(image)
        client = KeepAliveClient(server.url, image)
        posts: dict[str, around.Post] = {around.HTTP: client.post,
                                         around.HTTP_SEED_CLIENT: partial(timed_post_image, server.url, image)}
        try:
            measured = around.measure(pipeline, model, MODEL, image.read_bytes(), label, rounds, posts=posts)
        finally:
            client.close()
        peak_mb = server.peak_rss_mb()
    starts = [(cold_s, first_request_s), *more_server_starts(image, label, COLD_STARTS - 1)]
    fresh = {"kind": "uvicorn server", "image": label,
             "start_to_first_answer_s": statistics.median(start for start, _ in starts), "ready_s": ready_s,
             "first_request_s": statistics.median(request for _, request in starts), "peak_rss_mb": peak_mb,
             "peak_rss_mb_before_first_request": idle_mb, "requests_served": 1 + around.WARMUP + rounds,
             "starts_s": [start for start, _ in starts]}
    return measured, fresh


def more_server_starts(image: Path, label: str, count: int) -> list[tuple[float, float]]:
    """``count`` more fresh uvicorns' start to first answer and first request: one start is one noisy sample
    (0.82-1.09 s at 1080p in single runs the same day, 0.90 s the median of seven)."""
    starts = []
    for index in range(count):
        with Server(MODEL, OUT_DIR / f"server_{label}_start{index + 2}.log") as server:
            starts.append(server.first_answer(image))
    return starts


def measure_models(segmenter: Segmenter, rounds: int) -> dict[str, Any]:
    """The served int8 model and the fp32 one alone, interleaved run by run, in sessions built as served."""
    int8_ms, fp32_ms = interleaved(model_alone(MODEL, segmenter), model_alone(FP32_MODEL, segmenter), rounds, WARMUP)
    return {"int8": summary(int8_ms), "fp32": summary(fp32_ms),
            "int8_speedup": statistics.median(fp32_ms) / statistics.median(int8_ms),
            "files": {"int8": MODEL.relative_to(REPO).as_posix(), "fp32": FP32_MODEL.relative_to(REPO).as_posix()}}


def measure_seed(image: Path, ours_ms: float, ours_peak_rss_mb: float | None, with_fp16: bool) -> dict[str, Any]:
    """The old service's path on the same image in fresh processes, beside ours in-process (median ms, peak RSS)."""
    fp32 = _seed_child(image, "float32", SEED_ROUNDS)
    renders = fp32["render_ms"][1:]  # the first render warms PyTorch up, as WARMUP does ours
    result = {"fp32_ms": statistics.median(renders), "fp32_peak_rss_mb": fp32["vmhwm_mb"],
              "ours_ms": ours_ms, "ours_peak_rss_mb": ours_peak_rss_mb}
    result["speedup_1080p"] = result["fp32_ms"] / result["ours_ms"]
    if with_fp16:
        fp16 = _seed_child(image, "float16", 0)
        result.update(fp16_ms=fp16["render_ms"][0], fp16_peak_rss_mb=fp16["vmhwm_mb"])
    return result


def _seed_child(image: Path, dtype: str, rounds: int) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-m", "bench.seed_path", str(image), "--dtype", dtype, "--rounds",
                           str(rounds)], cwd=REPO, capture_output=True, text=True, timeout=SEED_TIMEOUT_S, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


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


@dataclass(frozen=True)
class Bench:
    """What every section shares: the loaded pipeline, the model alone, the images, the round counts."""

    pipeline: Pipeline
    model: Callable[[], object]
    images: dict[str, Path]
    rounds: dict[str, int]
    quick: bool
    coldstart_processes: int


def section_models(bench: Bench, results: dict[str, Any]) -> None:
    results["model_alone"] = measure_models(bench.pipeline.segmenter, bench.rounds["1080p"])


def section_size(label: str, bench: Bench, results: dict[str, Any]) -> None:
    measured, fresh = measure_size(bench.pipeline, bench.model, bench.images[label], label, bench.rounds[label])
    runs = measured.pop("runs")
    for name, run in runs.items():
        results["end_to_end"][f"{name}_{label}"] = run
    results["around_model"][label] = {**measured, "outputs": list(runs)}
    results["fresh_processes"][f"http_{label}"] = fresh


def section_children(bench: Bench, results: dict[str, Any]) -> None:
    for label, path in bench.images.items():
        results["fresh_processes"][f"inprocess_{label}"] = measure_child(path, label)


def section_seed(bench: Bench, results: dict[str, Any]) -> None:
    ours = results["end_to_end"]["png_1080p"]["total_ms"]["median"]
    peak = results["fresh_processes"].get("inprocess_1080p", {}).get("peak_rss_mb")
    results["seed_path"] = measure_seed(bench.images["1080p"], ours, peak, with_fp16=not bench.quick)


def section_coldstart(bench: Bench, results: dict[str, Any]) -> None:
    results["cold_starts"] = coldstart.measure(bench.images["1080p"], bench.coldstart_processes)
    results["sections"].append(("coldstart", coldstart.markdown(results["cold_starts"])))


def section_bytes_per_pixel(bench: Bench, results: dict[str, Any]) -> None:
    per_pixel = bytes_per_pixel.measure(40.0)
    results["memory"].update(bytes_per_pixel=per_pixel, bytes_per_pixel_by_format=bytes_per_pixel.by_format(per_pixel))
    results["sections"].append(("bytes_per_pixel", bytes_per_pixel.markdown(per_pixel)))


def section_history(bench: Bench, results: dict[str, Any]) -> None:
    after_history = history.measure(rounds=3)
    results["memory"].update(history=after_history, history_growth_pct=100.0 * after_history["growth"])
    results["sections"].append(("history", history.markdown(after_history)))


def section_budget(bench: Bench, results: dict[str, Any]) -> None:
    admitted = budget.measure()
    budgeted = [burst for burst in admitted["bursts"] if burst["budget_mb"] is not None]
    results["memory"].update(budget=admitted, budget_worst_peak_mb=admitted["goal"]["worst_peak_mb"],
                             budget_answers_not_200_or_429=sum(status not in (200, 429) for burst in budgeted
                                                               for status in burst["statuses"]))
    results["sections"].append(("budget", budget.markdown(admitted)))


def section_corpus(bench: Bench, results: dict[str, Any]) -> None:
    report = corpus_memory.measure(list(corpus_memory.CORPORA), OUT_DIR / "corpus_memory")
    results["memory"].update(corpus=report, corpus_peak_rss_mb=report["peak_rss_mb"])
    results["sections"].append(("corpus", corpus_memory.markdown(report)))


STEPS: dict[str, Callable[[Bench, dict[str, Any]], None]] = {
    "models": section_models, "1080p": partial(section_size, "1080p"), "12MP": partial(section_size, "12MP"),
    "children": section_children, "seed": section_seed, "coldstart": section_coldstart,
    "bytes_per_pixel": section_bytes_per_pixel, "history": section_history, "budget": section_budget,
    "corpus": section_corpus,
}


def headline(results: dict[str, Any]) -> None:
    """Derived figures the goals read: ratios, differences, cold starts, worst peak RSS per image size, and the
    line each goal is measured against (``goal_floors``); then the goals."""
    runs, fresh = results["end_to_end"], results["fresh_processes"]
    results["ratios"] = {key: run["ratio_to_model"] for key, run in runs.items()}
    results["overhead_ms"] = {key: run["overhead_ms"] for key, run in runs.items()}
    results["http_minus_inprocess_ms"] = {f"png_{label}": measured["http_minus_inprocess_ms"]
                                          for label, measured in results["around_model"].items()}
    results["start_to_first_answer_s"] = {key: run["start_to_first_answer_s"] for key, run in fresh.items()}
    results["peak_rss_mb"] = {key: run["peak_rss_mb"] for key, run in fresh.items()}
    for label in IMAGES:
        peaks = [run["peak_rss_mb"] for run in fresh.values() if run["image"] == label]
        if peaks:
            results["peak_rss_mb"][f"worst_{label}"] = max(peaks)
    functions = results.get("cold_starts", {}).get("functions", {})
    results["cold_start"] = {f"{entry}_{key}": run[key] for entry, run in functions.items()
                             for key in ("init_s", "floor_init_s", "init_to_floor", "init_and_first_event_s")}
    results["goal_floors"] = goal_floors(results)
    results["goals"] = evaluate(results, GOALS)


def _seed_client_line(measured: dict[str, Any]) -> str:
    difference = measured.get("seed_client_minus_inprocess_ms")
    return "" if difference is None else f"; by the seed's client (requests.post) +{difference:.1f} ms"


def goal_floors(results: dict[str, Any]) -> dict[str, str]:
    """What each goal's figure is measured against, in a line: the model alone and the time around it, the
    in-process render, the cold start's floor, the corpus."""
    lines: dict[str, str] = {}
    for key, run in results["end_to_end"].items():
        if run["path"] == "in-process":
            lines[key] = (f"model alone {run['model_ms']['median']:.1f} ms; end to end {run['total_ms']['median']:.1f}"
                          f" ms, {run['overhead_ms']:.1f} ms around the model")
    for label, measured in results["around_model"].items():
        if measured["http_minus_inprocess_ms"] is not None:
            http, png = results["end_to_end"][f"http_png_{label}"], results["end_to_end"][f"png_{label}"]
            lines[f"http_png_{label}"] = (f"in-process {png['total_ms']['median']:.1f} ms; over HTTP "
                                          f"{http['total_ms']['median']:.1f} ms (one keep-alive connection)"
                                          + _seed_client_line(measured))
    for entry, run in results.get("cold_starts", {}).get("functions", {}).items():
        lines[f"{entry}_init"] = (f"floor {run['floor_init_s']:.3f} s; init {run['init_s']:.3f} s; init + first event "
                                  f"{run['init_and_first_event_s']:.3f} s")
    corpus = results["memory"].get("corpus")
    if corpus:
        lines["corpus"] = f"{corpus['files']} files; idle RSS {corpus['idle_rss_before_mb']:.0f} MB before"
    return lines


def run_all(rounds: dict[str, int], sections: tuple[str, ...] = SECTIONS, quick: bool = False,
            wait_limit_s: float = WAIT_LIMIT_S, coldstart_processes: int = coldstart.PROCESSES) -> dict[str, Any]:
    """The ``sections``, in SECTIONS' order, each after a wait for a quiet machine (``bench.quiet``)."""
    started = time.perf_counter()
    results: dict[str, Any] = {"command": "make bench", "machine": machine_info(), "rounds": rounds,
                               "warmup_rounds": WARMUP, "wait_limit_s": wait_limit_s, "sections_run": list(sections),
                               "end_to_end": {}, "around_model": {}, "fresh_processes": {}, "memory": {},
                               "sections": []}
    # 1. inputs, and the model loaded as the entry points load it
    images = write_images(OUT_DIR)
    results["images"] = {label: {"size": IMAGES[label], "jpeg_bytes": images[label].stat().st_size}
                         for label in images}
    pipeline = load_pipeline(MODEL)
    bench = Bench(pipeline, model_alone(MODEL, pipeline.segmenter), images, rounds, quick, coldstart_processes)
    # 2. the sections, each waiting for a quiet machine first
    quiet = Sections(wait_limit_s)
    for name in (section for section in SECTIONS if section in sections):
        logger.info("section %s (waiting up to %.0f s for a 1-minute load under 1.0 first)", name, wait_limit_s)
        with quiet.run(name):
            STEPS[name](bench, results)
        logger.info("section %s: %s", name, quiet.log[name])
    results["load"] = quiet.log
    results["sections"] = side_sections(results)
    results["wall_s"] = time.perf_counter() - started
    results["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    headline(results)
    return results


def side_sections(results: dict[str, Any]) -> list[str]:
    """The side benchmarks' own tables, each after a line saying so when its section was taken under load."""
    lines: list[str] = []
    for name, table in results["sections"]:
        load = results["load"][name]
        if load["loaded"]:
            lines += [f"Section `{name}` was {LOADED}: 1-minute load {load['load_before']:.2f} as it began, other "
                      f"processes' CPU {load['others_cores']:.2f} cores during it.", ""]
        lines += [table, ""]
    return lines[:-1]


def main() -> None:
    parser = argparse.ArgumentParser(description="The service's benchmark (see the module docstring).")
    parser.add_argument("--rounds-1080p", type=int, default=ROUNDS["1080p"])
    parser.add_argument("--rounds-12mp", type=int, default=ROUNDS["12MP"])
    parser.add_argument("--coldstart-processes", type=int, default=coldstart.PROCESSES)
    parser.add_argument("--only", nargs="+", choices=SECTIONS, metavar="SECTION",
                        help=f"these sections only, of: {', '.join(SECTIONS)}")
    parser.add_argument("--wait-s", type=float, help=f"the longest wait for a quiet machine before each section "
                        f"(default {WAIT_LIMIT_S:g} s, {QUICK_WAIT_LIMIT_S:g} s with --quick)")
    parser.add_argument("--no-write", action="store_true", help="print only; keep results.json and the docs")
    parser.add_argument("--out", type=Path, help="write results.json and benchmarks.md (the section) here instead")
    parser.add_argument("--quick", action="store_true", help="no fp16 seed run and no 40 MP memory sections")
    args = parser.parse_args()
    sections = tuple(args.only or SECTIONS)
    if args.quick:
        sections = tuple(name for name in sections if name not in MEMORY_SECTIONS)
    if "seed" in sections and "1080p" not in sections:
        parser.error("the seed section compares with the 1080p section's PNG overlay: add 1080p to --only")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    wait_s = args.wait_s if args.wait_s is not None else QUICK_WAIT_LIMIT_S if args.quick else WAIT_LIMIT_S
    results = run_all({"1080p": args.rounds_1080p, "12MP": args.rounds_12mp}, sections, args.quick, wait_s,
                      args.coldstart_processes)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
    results_path, docs_path = (args.out / "results.json", args.out / "benchmarks.md") if args.out else (RESULTS, DOCS)
    if args.out or not args.no_write:
        write_json(results, results_path)  # first: the figures survive a report that fails
    section = markdown(results)
    if args.out or not args.no_write:
        update_docs(docs_path, section)
    sys.stdout.write(section + "\n")


if __name__ == "__main__":
    main()
