"""Encoding a result into the bytes a caller receives: PNG, JPEG or WebP pictures, or a JSON document.

PNG goes through ``app.core.output.png`` (lossless, and faster than Pillow's encoder);
JPEG and WebP through Pillow at the options' quality. Sizes and times per format at
1080p, 12 MP and 48 MP are in docs/benchmarks.md ("Output formats"): a lossy format
is what keeps a phone photo's result inside Lambda's ~4.4 MB response. The JSON
document carries the mask as COCO's compressed run-length encoding, made by
pycocotools itself (``pycocotools.mask.decode`` gives the mask back exactly).

A colour picture carries its ICC profile in ``info["icc_profile"]`` (the decoded image's,
``app.core.decoding.colour``; the overlay and the cutout are drawn into that image): every format
embeds it, so a viewer shows the input's colours. The mask is levels, not colours: none.
"""

from __future__ import annotations

import io
import json
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from PIL import Image
from pycocotools import mask as coco_mask

from app.core.decoding.imaging import ImageRejected
from app.core.inference.contract import ModelInfo
from app.core.options import ImageFormat
from app.core.output.png import encode_png, encode_png_levels
from app.core.output.summary import Summary

MEDIA_TYPES: dict[ImageFormat, str] = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}
SUFFIXES: dict[ImageFormat, str] = {"png": ".png", "jpeg": ".jpg", "webp": ".webp"}
JSON_MEDIA_TYPE = "application/json"
# The largest side each format can hold: libjpeg's JPEG_MAX_DIMENSION (65500, under the 16-bit header
# fields' 65535: Pillow fails "Maximum supported image dimension is 65500 pixels" past it), libwebp's
# WEBP_MAX_DIMENSION (https://developers.google.com/speed/webp/docs/riff_container). PNG's is 2^31 - 1.
MAX_SIDE: dict[ImageFormat, int] = {"png": 2**31 - 1, "jpeg": 65_500, "webp": 16_383}
WEBP_METHOD = 4  # libwebp's speed/size trade-off, 0 (fast) to 6; 4 is its default (measured: docs/benchmarks.md)
PROFILED_MODES = frozenset({"RGB", "RGBA"})  # pictures an RGB profile describes (never the "L" mask)
# Lossy qualities when the caller names none: the first is the default (a photo's overlay looks like the
# original and a 1080p one stays far under Lambda's response, docs/benchmarks.md "Output formats"); the
# next ones are tried in turn only when a size limit asks for it. PNG is lossless: no quality.
QUALITY_STEPS: dict[ImageFormat, tuple[int | None, ...]] = {
    "png": (None,), "jpeg": (85, 70, 55, 40, 25), "webp": (80, 65, 50, 35, 20),
}


class UnencodableResult(ImageRejected):
    """The result is valid but the format asked for cannot hold it (too wide for JPEG or WebP)."""

    status_code = 422


@dataclass(frozen=True)
class Encoded:
    """One output's bytes, what they are (``media_type``) and the file suffix they are stored under.

    ``body`` is a ``bytearray`` for PNG (built in place, never copied: ``app.core.output.png``); a caller that needs
    ``bytes``-only APIs wraps it in ``memoryview`` (no copy) rather than ``bytes()`` (a copy).
    """

    body: bytes | bytearray
    media_type: str
    suffix: str
    quality: int | None = None  # the JPEG/WebP quality it was encoded at


def encode_picture(picture: Image.Image | np.ndarray, image_format: ImageFormat, quality: int | None,
                   fit_within: int | None = None) -> Encoded:
    """A drawn overlay, mask or cutout -> the format's bytes.

    ``quality`` (JPEG, WebP) is used as given; None means the format's default, and then,
    if the result is over ``fit_within`` bytes, the next of ``QUALITY_STEPS`` in turn
    until one fits (the last one tried is returned if none does: the caller says 413).
    A greyscale array (the mask's levels) is written as PNG from the array itself, for other formats through Pillow.
    """
    if isinstance(picture, np.ndarray):
        if image_format == "png":  # PNG has no side limit to check (MAX_SIDE), nor a quality
            return Encoded(encode_png_levels(picture), MEDIA_TYPES[image_format], SUFFIXES[image_format])
        picture = Image.fromarray(picture)
    _check_side(picture, image_format)
    profile = icc_profile_of(picture)
    qualities = (quality,) if quality is not None else QUALITY_STEPS[image_format]
    for step in qualities:
        body = _encode(picture, image_format, step, profile)
        encoded = Encoded(body, MEDIA_TYPES[image_format], SUFFIXES[image_format], step)
        if fit_within is None or len(encoded.body) <= fit_within:
            break
    return encoded


def icc_profile_of(picture: Image.Image) -> bytes | None:
    """The profile to embed: the picture's own, for colour pictures only."""
    profile = picture.info.get("icc_profile")
    return profile if picture.mode in PROFILED_MODES and isinstance(profile, bytes) and profile else None


def _encode(picture: Image.Image, image_format: ImageFormat, quality: int | None,
            profile: bytes | None) -> bytes | bytearray:
    if image_format == "png":
        return encode_png(picture, profile)
    return _encode_with_pillow(picture, image_format, quality, profile)


def _check_side(picture: Image.Image, image_format: ImageFormat) -> None:
    limit = MAX_SIDE[image_format]
    if max(picture.size) > limit:
        raise UnencodableResult(
            f"the result is {picture.width}x{picture.height}; {image_format.upper()} holds at most {limit} pixels "
            "a side: ask for format=png"
        )


def _encode_with_pillow(picture: Image.Image, image_format: ImageFormat, quality: int | None,
                        profile: bytes | None) -> bytes:
    buffer = io.BytesIO()
    if image_format == "webp":
        picture.save(buffer, format="WEBP", quality=quality, method=WEBP_METHOD, icc_profile=profile)
    else:
        picture.save(buffer, format="JPEG", quality=quality, icc_profile=profile)
    return buffer.getvalue()


def mask_rle(mask: np.ndarray) -> dict[str, Any]:
    """A boolean HxW mask as COCO compressed RLE: ``{"size": [h, w], "counts": "..."}`` (column-major runs).

    The runs are found in the mask's own row-major layout (``column_major_runs``) and pycocotools writes them as
    its compressed string (``frPyObjects``): ``coco_mask.encode`` wants a column-major copy of the mask, a strided
    transpose that cost 1.7 of its 2.4 ms at 1080p and ~60 of 70 ms at 12 MP; this is 0.5 and 2.3 ms, the same
    string (measured 2026-12-07; tests/unit/core/test_properties.py holds the equality).
    """
    height, width = mask.shape
    encoded = coco_mask.frPyObjects({"size": [height, width], "counts": column_major_runs(mask)}, height, width)
    return {"size": [height, width], "counts": encoded["counts"].decode("ascii")}


def column_major_runs(mask: np.ndarray) -> np.ndarray:
    """COCO's uncompressed RLE counts of a boolean HxW mask: the lengths of its runs read column by column, the
    first a run of background (0 long when the top-left pixel is foreground).

    A run ends where a pixel differs from the one above it (within a column) or where a column's first pixel
    differs from the last of the column before; those positions are few (the mask's outline), so sorting them
    into column-major order is cheap.
    """
    height, width = mask.shape
    rows, columns = np.divmod(np.flatnonzero(mask[1:] != mask[:-1]), width)
    within_columns = columns * height + rows + 1
    between_columns = (np.flatnonzero(mask[-1, :-1] != mask[0, 1:]) + 1) * height
    changes = np.sort(np.concatenate((within_columns, between_columns)))
    runs = np.diff(changes, prepend=0, append=height * width)
    return np.concatenate(([0], runs)) if mask[0, 0] else runs


def encode_document(document: dict[str, Any]) -> Encoded:
    return Encoded(json.dumps(document, separators=(",", ":")).encode(), JSON_MEDIA_TYPE, ".json")


def result_document(summary: Summary, model: ModelInfo, mask: np.ndarray) -> dict[str, Any]:
    """``output=json``: the summary's numbers, the model's identity and the mask as RLE."""
    return {
        **asdict(summary),
        "model": {"name": model.name, "version": model.version, "sha256": model.sha256},
        "mask": mask_rle(mask),
    }
