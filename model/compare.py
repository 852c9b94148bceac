"""Score several models on the same held-out images, interleaved, with each one's model time.

    python -m model.compare model/weights/unet.onnx runs/tta/hflip.onnx runs/tta/flips.onnx --limit 500

Each batch of held-out images is generated once and run through every model in turn, the
order rotating from batch to batch, so load that comes and goes during the run (other work
on the machine) slows every model alike. ``ms_per_image`` is the time inside
``InferenceSession.run`` per image (model time: no data generation, no thresholding).
Scores are ``model.evaluate``'s. The last line printed is one JSON object: per model its
path, ``iou``, ``dice``, ``mean_image_iou``, ``ms_per_image``; then ``images``, ``batch_size``,
``threads`` and the 1-minute load average (min, mean, max of one sample per batch).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import onnxruntime as ort

from model.evaluate import HELDOUT_SIZE, HeldoutScore, heldout_batches, open_session, predict_masks
from model.metadata import read_preprocessing
from model.preprocessing import Preprocessing
from model.synthetic import HELDOUT_SEED

log = logging.getLogger("model.compare")

BATCH_SIZE = 8  # model.evaluate's default, so the scores are the same numbers it prints


def common_preprocessing(sessions: list[ort.InferenceSession], paths: list[Path]) -> Preprocessing:
    preps = [read_preprocessing(session.get_modelmeta().custom_metadata_map) for session in sessions]
    if any(prep != preps[0] for prep in preps):
        raise SystemExit(f"{paths} differ in preprocessing: compare models that take the same input")
    return preps[0]


def compare(paths: list[Path], limit: int, batch_size: int) -> tuple[list[dict[str, Any]], list[float]]:
    """Per model scores and ms per image; and the 1-minute load average after each batch."""
    # 1. one session per model, one input contract
    sessions = [open_session(path) for path in paths]
    prep = common_preprocessing(sessions, paths)
    scores, seconds, loads = [HeldoutScore() for _ in paths], [0.0 for _ in paths], [os.getloadavg()[0]]
    # 2. every batch through every model, in rotating order
    for number, (inputs, truth) in enumerate(heldout_batches(prep, limit, batch_size)):
        for offset in range(len(paths)):
            index = (number + offset) % len(paths)
            started = time.perf_counter()
            masks = predict_masks(sessions[index], inputs)
            seconds[index] += time.perf_counter() - started
            scores[index].add(masks, truth)
        loads.append(os.getloadavg()[0])
        log.info("%d/%d images, load average %.2f", min((number + 1) * batch_size, limit), limit, loads[-1])
    # 3. per model: scores and time per image
    results = [
        {"model": str(path), **score.result(), "ms_per_image": round(1000 * spent / limit, 2)}
        for path, score, spent in zip(paths, scores, seconds, strict=True)
    ]
    return results, loads


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", type=Path, nargs="+")
    parser.add_argument("--limit", type=int, default=HELDOUT_SIZE, help="the first N held-out images")
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    log.info("comparing %d models on %d held-out images (seed %d)", len(args.models), args.limit, HELDOUT_SEED)
    results, loads = compare(args.models, args.limit, args.batch_size)
    summary = {
        "models": results,
        "images": args.limit,
        "batch_size": args.batch_size,
        "threads": len(os.sched_getaffinity(0)),
        "load_average_1min": {"min": min(loads), "mean": round(sum(loads) / len(loads), 2), "max": max(loads)},
    }
    print(json.dumps(summary))  # noqa: T201 - the last line is the result


if __name__ == "__main__":
    main()
