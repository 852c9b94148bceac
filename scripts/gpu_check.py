"""The bundled model on CUDA against the CPU: parity on held-out images, and the time of each.

    python -m scripts.gpu_check --out runs/gpu_check.json     # make gpu-check (in the GPU venv)

On a machine whose onnxruntime has the CUDA provider: loads model/weights/unet.onnx on
CUDA and on the CPU, runs 20 held-out images (model.synthetic's held-out seed, the
served preprocessing) through both, checks max |logit diff| <= 1e-3 and identical
masks on >= 99.9% of pixels, then times the model alone at batch 1 and 8 and a 1080p
photo end to end (``app.core.pipeline.render``) on each, and writes a JSON report
(exit 1 if a check fails). Where there is no CUDA provider it says so and exits 0:
CI and machines without a GPU run it as a no-op.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from app.core.inference.providers import PROVIDERS, CudaOptions, with_options
from app.core.inference.segmenter import Segmenter, open_session
from app.core.options import RenderOptions
from app.core.pipeline import render
from app.core.settings import Settings
from bench.measure import time_ms
from bench.photo import photo_jpeg
from model.synthetic import HELDOUT_SEED, generate_sample

REPO = Path(__file__).resolve().parents[1]
MODEL = REPO / "model" / "weights" / "unet.onnx"
IMAGES = 20
MAX_LOGIT_DIFF = 1e-3
MIN_MASK_AGREEMENT = 0.999
ROUNDS = 20  # timed runs per case, after WARMUP
WARMUP = 3  # CUDA's first runs pick cuDNN algorithms and fill the arena
logger = logging.getLogger("scripts.gpu_check")


def providers_for(device: str) -> list[tuple[str, dict[str, Any]]]:
    return with_options([PROVIDERS[device]], CudaOptions())


def heldout_inputs(segmenter: Segmenter) -> np.ndarray:
    """20 held-out images through the served preprocessing: N x 3 x H x W float32."""
    images = [generate_sample(np.random.default_rng([HELDOUT_SEED, index]))[0] for index in range(IMAGES)]
    return np.concatenate([segmenter.preprocess(image) for image in images])


def parity(cuda: ort.InferenceSession, cpu: ort.InferenceSession, inputs: np.ndarray) -> dict[str, float]:
    name = cpu.get_inputs()[0].name
    on_cuda = np.concatenate([cuda.run(None, {name: one[None]})[0] for one in inputs])
    on_cpu = np.concatenate([cpu.run(None, {name: one[None]})[0] for one in inputs])
    agreement = float(np.mean((on_cuda >= 0) == (on_cpu >= 0)))  # logit 0 == probability 0.5
    return {"max_logit_diff": float(np.abs(on_cuda - on_cpu).max()), "mask_agreement": agreement}


def model_ms(session: ort.InferenceSession, inputs: np.ndarray, batch: int) -> float:
    feed = {session.get_inputs()[0].name: np.ascontiguousarray(inputs[:batch])}
    for _ in range(WARMUP):
        session.run(None, feed)
    return statistics.median(time_ms(lambda: session.run(None, feed)) for _ in range(ROUNDS))


def end_to_end_ms(segmenter: Segmenter, photo: bytes) -> float:
    limits, options = Settings().decode_limits(), RenderOptions()
    for _ in range(WARMUP):
        render(segmenter, photo, limits, options)
    return statistics.median(time_ms(lambda: render(segmenter, photo, limits, options)) for _ in range(ROUNDS))


def check(threads: int) -> dict[str, Any]:
    """Both devices: parity, then the times. The report's ``ok`` says whether both checks passed."""
    sha = "not-checked"
    cpu_segmenter = Segmenter(MODEL, sha, threads, providers_for("cpu"))
    cuda_segmenter = Segmenter(MODEL, sha, threads, providers_for("cuda"))
    inputs = heldout_inputs(cpu_segmenter)
    sessions = {"cuda": open_session(MODEL, threads, providers_for("cuda")),
                "cpu": open_session(MODEL, threads, providers_for("cpu"))}
    report: dict[str, Any] = {"parity": parity(sessions["cuda"], sessions["cpu"], inputs)}
    photo = photo_jpeg(1920, 1080)
    for device, segmenter in (("cuda", cuda_segmenter), ("cpu", cpu_segmenter)):
        report[device] = {"provider": segmenter.provider, "model_ms_batch1": model_ms(sessions[device], inputs, 1),
                          "model_ms_batch8": model_ms(sessions[device], inputs, 8),
                          "end_to_end_1080p_ms": end_to_end_ms(segmenter, photo)}
    report["ok"] = (report["parity"]["max_logit_diff"] <= MAX_LOGIT_DIFF
                    and report["parity"]["mask_agreement"] >= MIN_MASK_AGREEMENT)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "gpu_check.json")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)), help="CPU provider threads")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    available = ort.get_available_providers()
    report: dict[str, Any] = {"onnxruntime": ort.__version__, "available_providers": available}
    if PROVIDERS["cuda"] not in available:
        report.update(cuda=False, detail="no CUDA provider in this onnxruntime build: nothing to check")
    else:
        report.update(cuda=True, **check(args.threads))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    sys.stdout.write(json.dumps(report) + "\n")
    return 0 if report.get("ok", True) else 1


if __name__ == "__main__":
    sys.exit(main())
