"""unet-segment's throughput on a folder of photo-like 1080p JPEGs, next to the model's own rate, in one run.

    python -m bench.cli_throughput                         # 50 images, --jobs 1 and 2, two rounds each
    python -m bench.cli_throughput --images 10 --rounds 1 --model model/weights/unet.onnx

The JPEGs come from ``bench.photo`` (seeds 0..N-1) into bench/out/cli/in. Each run is
the installed console script in a fresh process on the served model (``--model``: the
bundled default, ``app.core.settings.default_model_uri``), so its
``seconds`` (the command's own JSON line) include starting up and loading the model.
Between the runs, onnxruntime alone at batch 1 (a session built as the segmenter
builds it, ``bench.inprocess.model_alone``) gives the model's own rate on the same
machine at the same time. Prints one JSON object, /proc/loadavg before and after
included: on a shared machine the figures are only as quiet as its neighbours.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from app.core.settings import default_model_uri
from bench.inprocess import load_pipeline, model_alone
from bench.photo import photo_jpeg

REPO = Path(__file__).resolve().parents[1]
OUT_DIR = REPO / "bench" / "out" / "cli"  # git-ignored
SIZE = (1920, 1080)
MODEL_RUNS, MODEL_WARMUP = 20, 3
UNET_SEGMENT = Path(sys.executable).with_name("unet-segment")


def write_photos(folder: Path, count: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for seed in range(count):
        (folder / f"photo-{seed:03d}.jpg").write_bytes(photo_jpeg(*SIZE, seed=seed))


def model_rate(model: Path, runs: int = MODEL_RUNS) -> dict[str, float]:
    """onnxruntime alone at batch 1: the median run, and the images per second it allows."""
    run = model_alone(model, load_pipeline(model).segmenter)
    for _ in range(MODEL_WARMUP):
        run()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    median = statistics.median(times)
    return {"median_ms": round(median * 1000, 1), "images_per_s": round(1 / median, 2)}


def cli_rate(images: Path, jobs: int, out_dir: Path, model: Path) -> dict[str, Any]:
    """One fresh `unet-segment` run over the folder: its JSON line, and images per second by its seconds."""
    out = out_dir / f"out-jobs{jobs}"
    shutil.rmtree(out, ignore_errors=True)
    started = time.perf_counter()
    done = subprocess.run([str(UNET_SEGMENT), str(images), "-o", str(out), "--jobs", str(jobs), "--model",
                           str(model)], capture_output=True, text=True, check=False, timeout=1800)
    wall = time.perf_counter() - started
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    return {"jobs": jobs, "exit": done.returncode, **summary, "wall_s": round(wall, 2),
            "images_per_s": round(summary["processed"] / summary["seconds"], 2)}


def load_average() -> str:
    return Path("/proc/loadavg").read_text().strip()


def measure(images: int, rounds: int, jobs: tuple[int, ...], model: Path, out_dir: Path = OUT_DIR,
            model_runs: int = MODEL_RUNS) -> dict[str, Any]:
    """Model alone and each --jobs setting in turn, ``rounds`` times, so slow drift hits each alike."""
    folder = out_dir / "in"
    shutil.rmtree(folder, ignore_errors=True)
    write_photos(folder, images)
    result: dict[str, Any] = {"model": model.name, "images": images, "size": "x".join(map(str, SIZE)),
                              "loadavg_before": load_average(), "model_alone": [], "cli": []}
    for _ in range(rounds):
        result["model_alone"].append(model_rate(model, model_runs))
        result["cli"] += [cli_rate(folder, count, out_dir, model) for count in jobs]
    result["loadavg_after"] = load_average()
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--model", type=Path, default=Path(default_model_uri()))
    args = parser.parse_args(argv)
    print(json.dumps(measure(args.images, args.rounds, tuple(args.jobs), args.model), indent=2))  # noqa: T201


if __name__ == "__main__":
    main()
