"""Score several models on the same held-out images, interleaved, with each one's model time.

    python -m model.compare model/weights/unet.onnx model/weights/unet-int8.onnx \
        ../shared/models/mediapipe-selfie/selfie_segmentation.tflite --data data/ccp/test --markdown
    python -m model.compare runs/ref/unet.onnx runs/tta/hflip.onnx --limit 500       # the generated set

With ``--data`` (a folder of ``images/`` + ``masks/``), every photo is decoded once and run
through every model in turn, the order rotating from photo to photo, and scored at its own
size as served (``model.scoring``): pooled ``iou``, ``dice``, ``mean_image_iou``,
``boundary_f``, ``ms_per_image`` (time inside the model) and the file's ``size_bytes``. A
``.tflite`` is MediaPipe's selfie segmenter (LiteRT: ``pip install ai-edge-litert``, a
development dependency). ``--markdown`` also prints the model card's table.

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
from model.scoring import PhotoScore, labelled_photos, load_predictor, predict_mask
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


def compare_photos(paths: list[Path], folder: Path, limit: int | None) -> tuple[list[dict[str, Any]], list[float]]:
    """Per model photo scores, interleaved photo by photo; and the 1-minute load average after each photo."""
    predictors = [load_predictor(path) for path in paths]
    photos = labelled_photos(folder, limit)
    scores, loads = [PhotoScore() for _ in paths], [os.getloadavg()[0]]
    for number, item in enumerate(photos):
        for offset in range(len(paths)):
            index = (number + offset) % len(paths)
            scores[index].add(predict_mask(predictors[index], item, scores[index]), item.truth)
        loads.append(os.getloadavg()[0])
    results = [
        {"model": str(path), "name": predictor.name, **score.result(), "size_bytes": path.stat().st_size}
        for path, predictor, score in zip(paths, predictors, scores, strict=True)
    ]
    return results, loads


def markdown_table(results: list[dict[str, Any]]) -> str:
    """The model card's table: one row per model."""
    lines = [
        "| model | file | pooled IoU | Dice | mean per-image IoU | boundary F (1% band) | ms / image | size |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in results:
        size = f"{row['size_bytes'] / 1e6:.1f} MB" if row["size_bytes"] >= 1e6 else f"{row['size_bytes'] / 1e3:.0f} KB"
        lines.append(
            f"| {row['name']} | `{Path(row['model']).name}` | {row['iou']:.4f} | {row['dice']:.4f} | "
            f"{row['mean_image_iou']:.4f} | {row['boundary_f']:.4f} | {row['ms_per_image']:.1f} | {size} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", type=Path, nargs="+")
    parser.add_argument("--data", type=Path, default=None, help="a folder of images/ + masks/ (photos)")
    parser.add_argument("--limit", type=int, default=None, help=f"the first N images (generated: {HELDOUT_SIZE})")
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE)
    parser.add_argument("--markdown", action="store_true", help="print the table of results too")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if args.data:
        log.info("comparing %d models on the photos in %s", len(args.models), args.data)
        results, loads = compare_photos(args.models, args.data, args.limit)
        images: int = results[0]["images"]
    else:
        images = args.limit or HELDOUT_SIZE
        log.info("comparing %d models on %d held-out images (seed %d)", len(args.models), images, HELDOUT_SEED)
        results, loads = compare(args.models, images, args.batch_size)
    summary = {
        "models": results,
        "images": images,
        "batch_size": 1 if args.data else args.batch_size,
        "threads": len(os.sched_getaffinity(0)),
        "load_average_1min": {"min": min(loads), "mean": round(sum(loads) / len(loads), 2), "max": max(loads)},
    }
    if args.markdown and args.data:
        print(markdown_table(results))  # noqa: T201 - the table, for the model card
    print(json.dumps(summary))  # noqa: T201 - the last line is the result


if __name__ == "__main__":
    main()
