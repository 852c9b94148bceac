"""Score an exported model on labelled photos at their own size, or on the held-out generated set.

    python -m model.evaluate model/weights/unet.onnx --data data/ccp/test          # photos (model.ccp's split)
    python -m model.evaluate runs/person/unet.onnx --data data/ccp/val --thresholds 0.3 0.4 0.5 0.6 0.7
    python -m model.evaluate runs/ref/unet.onnx --limit 500                        # the generated set

Reads preprocessing and threshold from the file's metadata and runs onnxruntime. With
``--data`` (any folder of ``images/`` + ``masks/``) each photo is scored at its own size,
the probabilities upsampled as the service does (``model.scoring``); ``--thresholds``
gives the pooled IoU at each threshold instead (how the validation part chooses one).
Without it, the held-out generated set, at the model's input size; its seed is one that
training refuses. The last line printed is one JSON object: pooled ``iou`` and ``dice``
over all pixels, ``mean_image_iou`` (and ``boundary_f`` on photos), ``images``.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from model.datasets import SyntheticDataset
from model.metadata import read_preprocessing
from model.preprocessing import Preprocessing
from model.scoring import OnnxPredictor, Overlap, labelled_photos, score_photos, sweep_thresholds
from model.synthetic import HELDOUT_SEED

log = logging.getLogger("model.evaluate")

HELDOUT_SIZE = 500  # images in the held-out set the model card reports on


class HeldoutScore(Overlap):
    """``Overlap`` accumulated batch by batch: N x H x W masks at once."""

    def add(self, masks: np.ndarray, truth: np.ndarray) -> None:
        for mask, actual in zip(masks, truth, strict=True):
            super().add(mask, actual)


def open_session(path: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = len(os.sched_getaffinity(0))
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def predict_masks(session: ort.InferenceSession, inputs: np.ndarray) -> np.ndarray:
    """Normalised NCHW inputs -> boolean NxHxW masks at the metadata's threshold."""
    threshold = float(session.get_modelmeta().custom_metadata_map["threshold"])
    logits = session.run(None, {session.get_inputs()[0].name: inputs})[0]
    logit_threshold = math.log(threshold / (1 - threshold))  # sigmoid(x) >= t  <=>  x >= logit(t)
    return logits[:, 0] >= logit_threshold


def heldout_batches(prep: Preprocessing, limit: int, batch_size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    dataset = SyntheticDataset(limit, prep, seed=HELDOUT_SEED)
    for start in range(0, limit, batch_size):
        images, masks = zip(*(dataset[i] for i in range(start, min(start + batch_size, limit))), strict=True)
        yield prep.normalise(torch.stack(images)).numpy(), torch.stack(masks)[:, 0].numpy().astype(bool)


def evaluate(model_path: Path, limit: int, batch_size: int = 8) -> dict[str, float | int | str]:
    session = open_session(model_path)
    prep = read_preprocessing(session.get_modelmeta().custom_metadata_map)
    score = HeldoutScore()
    for inputs, truth in heldout_batches(prep, limit, batch_size):
        score.add(predict_masks(session, inputs), truth)
    return {**score.result(), "images": limit, "input_size": f"{prep.height}x{prep.width}"}


def evaluate_photos(model_path: Path, folder: Path, limit: int | None) -> dict[str, object]:
    """Scores at each photo's own size, as served: ``model.scoring``."""
    predictor = OnnxPredictor(model_path)
    result = score_photos(predictor, labelled_photos(folder, limit)).result()
    return {**result, "data": str(folder), "threshold": predictor.threshold}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path)
    parser.add_argument("--data", type=Path, default=None, help="a folder of images/ + masks/ (photos)")
    parser.add_argument("--thresholds", type=float, nargs="+", default=None, help="with --data: IoU at each")
    parser.add_argument("--limit", type=int, default=None, help=f"the first N images (generated: {HELDOUT_SIZE})")
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if args.data and args.thresholds:
        photos = labelled_photos(args.data, args.limit)
        result: dict[str, object] = {"iou_by_threshold": sweep_thresholds(OnnxPredictor(args.model), photos,
                                                                          args.thresholds), "images": len(photos)}
    elif args.data:
        log.info("evaluating %s on the photos in %s at their own size", args.model, args.data)
        result = evaluate_photos(args.model, args.data, args.limit)
    else:
        limit = args.limit or HELDOUT_SIZE
        log.info("evaluating %s on %d held-out generated images (seed %d)", args.model, limit, HELDOUT_SEED)
        result = dict(evaluate(args.model, limit, args.batch_size))
    print(json.dumps(result))  # noqa: T201 - the last line is the result


if __name__ == "__main__":
    main()
