"""What the person model has not been trained on, measured as far as labelled photos allow.

    python -m model.variants model/weights/unet-int8.onnx \
        ../shared/models/mediapipe-selfie/selfie_segmentation.tflite --data data/ccp/test

The training photos show one standing person, full body, in a street. From the test photos
this derives, with their labels carried along exactly:

- ``photos``: the test photos as they are (the reference row);
- ``upper_body``: the top 45% of each photo, the framing of a half-length portrait;
- ``pairs``: two test photos side by side at the same height, two people in one frame;
- ``small``: the photo in the middle third of a frame three times its size, padded with the
  photo's edge pixels (a person far from the camera);
- ``dark``: the photo at a third of its brightness (dusk, indoors without flash).

Close-up faces, crowds, sitting or lying people and pets have no labels here: nothing is
claimed about them. The last line printed is one JSON object: per variant, per model, the
scores of ``model.scoring``; ``--markdown`` prints the table too.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageEnhance

from model.scoring import LabelledPhoto, labelled_photos, load_predictor, score_photos

log = logging.getLogger("model.variants")

UPPER_BODY_FRACTION = 0.45  # of the height: head to about the waist in these photos
DARK_FACTOR = 1 / 3


def upper_body(item: LabelledPhoto) -> list[LabelledPhoto]:
    box = (0, 0, item.photo.width, round(item.photo.height * UPPER_BODY_FRACTION))
    return [LabelledPhoto(item.name, item.photo.crop(box), item.truth[: box[3]].copy())]


def small(item: LabelledPhoto) -> list[LabelledPhoto]:
    """The photo in the middle of a 3x3 frame of its own edge pixels: the person a third as tall."""
    width, height = item.photo.size
    frame = np.pad(np.asarray(item.photo), ((height, height), (width, width), (0, 0)), mode="edge")
    truth = np.pad(item.truth, ((height, height), (width, width)))
    return [LabelledPhoto(item.name, Image.fromarray(frame), truth)]


def dark(item: LabelledPhoto) -> list[LabelledPhoto]:
    return [LabelledPhoto(item.name, ImageEnhance.Brightness(item.photo).enhance(DARK_FACTOR), item.truth)]


def pairs(photos: list[LabelledPhoto]) -> list[LabelledPhoto]:
    """Photos 0+1, 2+3, ... side by side, the second scaled to the first's height (its mask with it)."""
    joined = []
    for left, right in zip(photos[::2], photos[1::2], strict=False):
        height = left.photo.height
        width = round(right.photo.width * height / right.photo.height)
        right_photo = right.photo.resize((width, height), Image.Resampling.BILINEAR)
        right_truth = np.asarray(Image.fromarray(right.truth).resize((width, height), Image.Resampling.NEAREST))
        canvas = Image.new("RGB", (left.photo.width + width, height))
        canvas.paste(left.photo, (0, 0))
        canvas.paste(right_photo, (left.photo.width, 0))
        joined.append(LabelledPhoto(f"{left.name}+{right.name}", canvas, np.hstack([left.truth, right_truth])))
    return joined


def per_photo(variant: Callable[[LabelledPhoto], list[LabelledPhoto]]) -> Callable[[list], list[LabelledPhoto]]:
    return lambda photos: [derived for item in photos for derived in variant(item)]


VARIANTS: dict[str, Callable[[list[LabelledPhoto]], list[LabelledPhoto]]] = {
    "photos": list,
    "upper_body": per_photo(upper_body),
    "pairs": pairs,
    "small": per_photo(small),
    "dark": per_photo(dark),
}


def measure(paths: list[Path], folder: Path, limit: int | None) -> dict[str, list[dict[str, Any]]]:
    predictors, photos = [load_predictor(path) for path in paths], labelled_photos(folder, limit)
    results: dict[str, list[dict[str, Any]]] = {}
    for name, derive in VARIANTS.items():
        derived = derive(photos)
        results[name] = [{"name": p.name, **score_photos(p, derived).result()} for p in predictors]
        log.info("%s: %s", name, [(row["name"], row["iou"]) for row in results[name]])
    return results


def markdown_table(results: dict[str, list[dict[str, Any]]]) -> str:
    names = [row["name"] for row in next(iter(results.values()))]
    lines = [f"| variant | images | {' | '.join(f'{name} IoU' for name in names)} |", "|---|---|" + "---|" * len(names)]
    for variant, rows in results.items():
        lines.append(f"| {variant} | {rows[0]['images']} | " + " | ".join(f"{row['iou']:.4f}" for row in rows) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", type=Path, nargs="+", help="ONNX models, or MediaPipe's .tflite")
    parser.add_argument("--data", type=Path, required=True, help="labelled photos: images/ + masks/")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    results = measure(args.models, args.data, args.limit)
    if args.markdown:
        print(markdown_table(results))  # noqa: T201 - the table, for the model card
    print(json.dumps(results))  # noqa: T201 - the last line is the result


if __name__ == "__main__":
    main()
