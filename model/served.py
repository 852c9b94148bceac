"""Score a running service on labelled photos, beside the same model scored offline.

    make serve &                                         # or any deployment's URL
    python -m model.served --url http://127.0.0.1:8000 --data data/ccp/test --model model/weights/unet-int8.onnx

Each photo's original bytes go to ``POST /predict?output=mask`` (the mask comes back at the
photo's own size, 255 for the person); its pooled IoU over all photos is compared with
``model.evaluate``'s for ``--model`` on the same photos (``model.scoring``). The last line
printed is one JSON object: ``served`` and ``offline`` figures, their ``iou_difference``,
and ``mask_agreement``, the fraction of pixels where the served and offline masks agree.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
from pathlib import Path

import numpy as np
import requests
from PIL import Image

from model.datasets import match_images_to_masks
from model.scoring import OnnxPredictor, PhotoScore, labelled_photos, predict_mask

log = logging.getLogger("model.served")

TIMEOUT_S = 120  # one photo, the model on a busy 2-core machine included


def served_mask(url: str, photo_path: Path) -> np.ndarray:
    """The service's boolean mask of one photo, sent as the file it is."""
    with photo_path.open("rb") as file:
        response = requests.post(
            f"{url}/predict", params={"output": "mask"}, files={"file": (photo_path.name, file)}, timeout=TIMEOUT_S
        )
    if response.status_code != 200:
        raise SystemExit(f"{photo_path}: the service answered {response.status_code}: {response.text[:300]}")
    with Image.open(io.BytesIO(response.content)) as mask:
        return np.asarray(mask.convert("L")) > 127


def served_vs_offline(url: str, folder: Path, model: Path) -> dict[str, object]:
    """Served and offline scores of the same photos, and how far their masks agree."""
    predictor, photos = OnnxPredictor(model), labelled_photos(folder)
    paths = [image for image, _ in match_images_to_masks(folder / "images", folder / "masks")]
    served, offline, agreeing, pixels = PhotoScore(), PhotoScore(), 0, 0
    for path, item in zip(paths, photos, strict=True):
        remote, local = served_mask(url, path), predict_mask(predictor, item)
        served.add(remote, item.truth)
        offline.add(local, item.truth)
        agreeing, pixels = agreeing + int((remote == local).sum()), pixels + local.size
    served_figures, offline_figures = served.result(), offline.result()
    return {
        "served": {k: v for k, v in served_figures.items() if k != "ms_per_image"},
        "offline": {k: v for k, v in offline_figures.items() if k != "ms_per_image"},
        "iou_difference": round(float(served_figures["iou"]) - float(offline_figures["iou"]), 5),
        "mask_agreement": round(agreeing / pixels, 6),
        "model": str(model),
        "data": str(folder),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--data", type=Path, required=True, help="a folder of images/ + masks/")
    parser.add_argument("--model", type=Path, default=Path("model/weights/unet-int8.onnx"), help="what it serves")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    print(json.dumps(served_vs_offline(args.url.rstrip("/"), args.data, args.model)))  # noqa: T201 - the result


if __name__ == "__main__":
    main()
