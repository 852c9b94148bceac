"""The int8 configurations side by side: held-out accuracy, speed against fp32 in one run, size.

    python -m bench.quantize_configs model/weights/unet.onnx --images 500 --rounds 60
    python -m bench.quantize_configs model/weights/unet.onnx --shipped-only --rounds 100   # fp32 vs int8 only

Each entry of ``CONFIGS`` is quantised by ``model.quantize.quantize_model`` from the same
calibration frames (ranges cached per calibration method), then scored on the held-out
images against the float model's masks. Then every model is timed at batch 1, round-robin
with the float model so a slow spell lands on all of them, in sessions built with the
served options (threads = usable CPUs, inter-op 1, sequential, no memory pattern, no
spinning; replicated here, not imported from ``app``). onnxruntime's profiler then splits
the float model's and the shipped configuration's time by operator. Writes
bench/out/quantize_configs.json and .md (quantize_shipped.* with ``--shipped-only``) and
prints the markdown.
"""

from __future__ import annotations

import argparse
import collections
import json
import logging
import os
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
from tqdm import tqdm

from bench import REPO
from bench.measure import machine_info
from model.evaluate import heldout_batches, predict_masks
from model.metadata import read_preprocessing
from model.quantize import CALIBRATION_IMAGES, QuantConfig, calibration_inputs, quantize_model

OUT_DIR = REPO / "bench" / "out"
WARMUP = 3  # untimed runs per model: first runs allocate
PROFILE_RUNS = 10
NOT_CONV = ("InstanceNormalization", "Relu", "MaxPool", "Resize", "Concat")
CONFIGS = {  # name -> how; the first is what model.quantize ships
    "shipped: QDQ u8/s8 MinMax, IN + logits float, pool pass": QuantConfig(),
    "all int8 (IN params, logits), no pool pass": QuantConfig(float_op_types=(), float_logits=False,
                                                              float_pool_inputs=False),
    "int8 logits": QuantConfig(float_logits=False),
    "no pool pass (MaxPool on DQ, uint8)": QuantConfig(float_pool_inputs=False),
    "conv only (everything else float)": QuantConfig(float_op_types=NOT_CONV),
    "int8 activations (s8/s8)": QuantConfig(activations="int8"),
    "QOperator format": QuantConfig(quant_format="QOperator"),
    "Entropy calibration": QuantConfig(calibration="Entropy"),
    "Percentile calibration": QuantConfig(calibration="Percentile"),
}
log = logging.getLogger("bench.quantize_configs")


def served_session(path: Path, profile: bool = False) -> ort.InferenceSession:
    """A session with the server's options (function/app/segmenter.py ``open_session``)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = len(os.sched_getaffinity(0))
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.enable_mem_pattern = False
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    if profile:
        options.enable_profiling = True
        options.profile_file_prefix = str(OUT_DIR / "quantize_profile")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


@dataclass
class Heldout:
    """Held-out inputs, truth and the float model's masks, computed once for every config."""

    inputs: list[np.ndarray]
    truth: np.ndarray
    reference: np.ndarray

    @classmethod
    def of(cls, float_path: Path, images: int) -> Heldout:
        session = served_session(float_path)
        prep = read_preprocessing(session.get_modelmeta().custom_metadata_map)
        batches = list(tqdm(heldout_batches(prep, images, 8), desc="held-out images", total=-(-images // 8)))
        inputs = [inputs for inputs, _ in batches]
        reference = np.concatenate([predict_masks(session, batch) for batch in tqdm(inputs, desc="float masks")])
        return cls(inputs, np.concatenate([truth for _, truth in batches]), reference)

    def score(self, path: Path) -> dict[str, float]:
        session = served_session(path)
        masks = np.concatenate([predict_masks(session, batch) for batch in self.inputs])
        return {"iou": iou(masks, self.truth), "iou_float": iou(self.reference, self.truth),
                "mask_iou": iou(masks, self.reference)}


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = int((a | b).sum())
    return round(int((a & b).sum()) / union, 5) if union else 1.0


def build_all(float_path: Path, folder: Path, calibration_count: int, names: list[str]) -> dict[str, Path]:
    """The configs ``names`` quantised into ``folder``; calibration ranges computed once per method."""
    prep = read_preprocessing(served_session(float_path).get_modelmeta().custom_metadata_map)
    inputs = calibration_inputs(prep, calibration_count)
    paths = {}
    for index, name in enumerate(names):
        config, paths[name] = CONFIGS[name], folder / f"config{index}.onnx"
        started = time.monotonic()
        quantize_model(float_path, paths[name], config, inputs, cache=folder / f"ranges-{config.calibration}.json")
        log.info("%s: quantised in %.0f s", name, time.monotonic() - started)
    return paths


def round_robin(paths: dict[str, Path], image: np.ndarray, rounds: int) -> dict[str, dict[str, float]]:
    """Per model over ``rounds`` rounds (each runs every model once in turn): wall and CPU ms.

    Wall time is what a caller waits; the process's CPU time (both threads) counts only
    the work, so it ranks configurations even when other processes take the cores.
    """
    sessions = {name: served_session(path) for name, path in paths.items()}
    wall: dict[str, list[float]] = {name: [] for name in sessions}
    cpu: dict[str, list[float]] = {name: [] for name in sessions}
    for session in sessions.values():
        for _ in range(WARMUP):
            session.run(None, {"image": image})
    for _ in tqdm(range(rounds), desc="round-robin timing"):
        for name, session in sessions.items():
            started, started_cpu = time.perf_counter(), time.process_time()
            session.run(None, {"image": image})
            wall[name].append((time.perf_counter() - started) * 1000)
            cpu[name].append((time.process_time() - started_cpu) * 1000)
    return {name: timing(wall[name], cpu[name]) for name in sessions}


def timing(wall: list[float], cpu: list[float]) -> dict[str, float]:
    q1, median, q3 = np.percentile(wall, [25, 50, 75])
    return {"median_ms": round(median, 1), "q1_ms": round(q1, 1), "q3_ms": round(q3, 1),
            "cpu_ms": round(statistics.median(cpu), 1)}


def profile_by_op(path: Path, image: np.ndarray) -> dict[str, float]:
    """ms per run by operator type, from onnxruntime's profiler (``PROFILE_RUNS`` runs after a warm-up)."""
    session = served_session(path, profile=True)
    for _ in range(PROFILE_RUNS + 1):
        session.run(None, {"image": image})
    trace = Path(session.end_profiling())
    per_op: collections.Counter[str] = collections.Counter()
    for event in json.loads(trace.read_text()):
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            per_op[event["args"]["op_name"]] += event["dur"] / 1000 / (PROFILE_RUNS + 1)
    trace.unlink()
    return {op: round(ms, 2) for op, ms in per_op.most_common()}


def markdown(results: dict) -> str:
    fp32 = results["speed"]["fp32"]["median_ms"]
    fp32_cpu = results["speed"]["fp32"]["cpu_ms"]
    lines = ["| config | held-out IoU | mask IoU vs fp32 | wall ms/image: median (q1-q3) | speed-up (wall) "
             "| CPU ms/image | speed-up (CPU) | size |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    rows = {"fp32 (`unet.onnx`)": ({"iou": results["iou_float"], "mask_iou": 1.0}, results["speed"]["fp32"], "fp32")}
    rows.update({name: (results["scores"][name], results["speed"][name], name) for name in results["scores"]})
    for label, (score, speed, key) in rows.items():
        lines.append(f"| {label} | {score['iou']} | {score['mask_iou']} | {speed['median_ms']} ({speed['q1_ms']}-"
                     f"{speed['q3_ms']}) | {fp32 / speed['median_ms']:.2f}x | {speed['cpu_ms']} "
                     f"| {fp32_cpu / speed['cpu_ms']:.2f}x | {results['sizes'][key]:,} B |")
    for label, ops in results["profile_ms"].items():
        lines.append(f"\nProfile, {label}, ms per run: " + ", ".join(f"{op} {ms}" for op, ms in ops.items()))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path)
    parser.add_argument("--images", type=int, default=500, help="held-out images each config is scored on")
    parser.add_argument("--calibration-images", type=int, default=CALIBRATION_IMAGES)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--shipped-only", action="store_true", help="fp32 against the shipped config alone")
    args = parser.parse_args(argv)
    names = list(CONFIGS)[:1] if args.shipped_only else list(CONFIGS)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="quantize-configs.") as folder:
        # 1. every configuration, from the same calibration frames
        paths = build_all(args.model, Path(folder), args.calibration_images, names)
        # 2. accuracy on held-out images, against the float model's masks
        heldout = Heldout.of(args.model, args.images)
        scores = {name: heldout.score(path) for name, path in tqdm(paths.items(), desc="scoring")}
        # 3. speed, round-robin in one process, and where the time goes
        image, load_before = heldout.inputs[0][:1], os.getloadavg()
        speed = round_robin({"fp32": args.model, **paths}, image, args.rounds)
        results = {
            "machine": machine_info(), "load_average_before": load_before, "load_average_after": os.getloadavg(),
            "images": args.images, "rounds": args.rounds, "iou_float": iou(heldout.reference, heldout.truth),
            "scores": scores, "speed": speed, "sizes": {name: p.stat().st_size for name, p in paths.items()},
            "profile_ms": {"fp32": profile_by_op(args.model, image),
                           "shipped": profile_by_op(next(iter(paths.values())), image)},
        }
        results["sizes"]["fp32"] = args.model.stat().st_size
    stem = "quantize_shipped" if args.shipped_only else "quantize_configs"
    (OUT_DIR / f"{stem}.json").write_text(json.dumps(results, indent=1))
    (OUT_DIR / f"{stem}.md").write_text(markdown(results) + "\n")
    print(markdown(results))  # noqa: T201 - the table is the result


if __name__ == "__main__":
    main()
