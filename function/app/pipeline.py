"""One image's work, in order: decode, segment, draw, encode; with the time of each stage.

Shared by the HTTP route (on a worker thread) and usable by the S3 trigger and the
benchmark. Stages, in ``Rendered.timings_ms``: ``decode``, ``resize``, ``infer``,
``upsample`` (from the segmenter), ``blend`` (or ``mask``), ``encode``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from PIL import Image

from app.imaging import DecodeLimits, decode_image
from app.overlay import Color, blend_in_place, mask_to_image
from app.png import encode_png
from app.segmenter import Segmenter, trim_heap
from app.timing import Stopwatch

Output = Literal["overlay", "mask"]


@dataclass(frozen=True)
class RenderOptions:
    """What to draw: the overlay's colour and opacity, or the bare mask; threshold None = the model's."""

    color: Color
    alpha: float
    threshold: float | None = None
    output: Output = "overlay"


@dataclass(frozen=True)
class Rendered:
    """The encoded PNG and what the logs want to know about it."""

    png: bytes
    width: int
    height: int
    foreground_fraction: float
    timings_ms: dict[str, float]


def render(segmenter: Segmenter, data: bytes, limits: DecodeLimits, options: RenderOptions,
           watch: Stopwatch | None = None) -> Rendered:
    """Encoded image bytes -> PNG of the overlay (or mask) at the image's size and orientation."""
    watch = watch or Stopwatch()
    image = decode_image(data, limits)
    width, height = image.size
    watch.lap("decode")
    prediction = segmenter.segment(image, options.threshold)
    watch.merge(prediction.timings_ms)
    fraction = float(np.count_nonzero(prediction.mask)) / prediction.mask.size
    picture = draw(image, prediction.mask, options)
    del image, prediction  # 12 MP: the mask's 12 MB (and the image, if the mask is drawn) are not needed now
    watch.lap("mask" if options.output == "mask" else "blend")
    png = encode_png(picture)
    watch.lap("encode")
    del picture
    # Give this request's freed buffers back now (outside the stages' timings): glibc keeps them
    # in this worker thread's arena, where the next request, often on the other worker, cannot use them.
    trim_heap()
    return Rendered(png, width, height, fraction, watch.laps_ms)


def draw(image: Image.Image, mask: np.ndarray, options: RenderOptions) -> Image.Image:
    """The picture to return: the tinted overlay (drawn into ``image``, which this module owns), or the mask."""
    if options.output == "mask":
        return mask_to_image(mask)
    return blend_in_place(image, mask, options.color, options.alpha)
