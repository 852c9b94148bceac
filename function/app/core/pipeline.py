"""The one pipeline: image bytes (or a decoded image) and options -> encoded outputs and their summary.

Every entry point calls ``render``: the HTTP routes on a worker thread, the S3
trigger, the benchmark. Stages, in ``Rendered.timings_ms``: ``decode``, then
``resize``, ``infer``, ``upsample`` (from the segmenter), then per output its
drawing (``blend`` for the overlay, ``mask``) and ``encode``.

One segmentation serves several outputs (the S3 trigger writes the overlay and
the mask): outputs that only read the mask are drawn first, and the overlay, which
is drawn into the decoded image itself, last, so no second full-size copy of the
image is ever alive (36 MB at 12 MP, 300 MB at 100 MP).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from app.core.drawing import blend_in_place, mask_to_image
from app.core.encoding import Encoded, encode_picture
from app.core.imaging import DecodeLimits, decode_image
from app.core.memory import trim_heap
from app.core.model_contract import ModelInfo
from app.core.options import Output, RenderOptions
from app.core.segmenter import Segmenter
from app.core.timing import Stopwatch

DRAWING_STAGES: dict[Output, str] = {"overlay": "blend", "mask": "mask"}
READS_THE_IMAGE: frozenset[Output] = frozenset({"overlay"})  # drawn into the decoded image: last


@dataclass(frozen=True)
class BoundingBox:
    """The foreground's extent as a PIL box: ``right`` and ``bottom`` exclusive."""

    left: int
    top: int
    right: int
    bottom: int


@dataclass(frozen=True)
class Summary:
    """What a result says about the image: its size, how much is foreground, and where."""

    width: int
    height: int
    foreground_fraction: float
    bounding_box: BoundingBox | None  # None when nothing is foreground

    @classmethod
    def of(cls, mask: np.ndarray) -> Summary:
        rows, columns = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        box = None
        if rows.size:
            box = BoundingBox(int(columns[0]), int(rows[0]), int(columns[-1]) + 1, int(rows[-1]) + 1)
        height, width = mask.shape
        return cls(width, height, float(np.count_nonzero(mask)) / mask.size, box)


@dataclass(frozen=True)
class Rendered:
    """The encoded outputs (the one asked for first, then ``also`` in order), the summary, the model, timings."""

    outputs: tuple[Encoded, ...]
    summary: Summary
    model: ModelInfo
    timings_ms: dict[str, float]

    @property
    def result(self) -> Encoded:
        """The output that was asked for."""
        return self.outputs[0]


def render(segmenter: Segmenter, source: bytes | Image.Image, limits: DecodeLimits, options: RenderOptions,
           also: Sequence[Output] = (), watch: Stopwatch | None = None) -> Rendered:
    """Untrusted image bytes (checked against ``limits``) or an upright RGB image -> ``Rendered``.

    ``also`` names further outputs drawn from the same mask with the same options
    (the S3 trigger's ``mask`` beside its overlay). Rejections raise ``ImageRejected``.
    """
    watch = watch or Stopwatch()
    image = decode_image(source, limits) if isinstance(source, bytes) else source
    watch.lap("decode")
    prediction = segmenter.segment(image, options.threshold)
    watch.merge(prediction.timings_ms)
    summary = Summary.of(prediction.mask)
    encoded = draw_outputs(image, prediction.mask, options, (options.output, *also), watch)
    del image, prediction  # 12 MP: the image and mask (48 MB) are not needed beyond this point
    # Give this request's freed buffers back now (outside the stages' timings): glibc keeps them
    # in this worker thread's arena, where the next request, often on the other worker, cannot use them.
    trim_heap()
    return Rendered(encoded, summary, segmenter.info, watch.laps_ms)


def draw_outputs(image: Image.Image, mask: np.ndarray, options: RenderOptions, outputs: Sequence[Output],
                 watch: Stopwatch) -> tuple[Encoded, ...]:
    """Each output drawn and encoded, those that draw into ``image`` last; returned in the order asked."""
    if sum(output in READS_THE_IMAGE for output in outputs) > 1:
        raise ValueError(f"outputs {list(outputs)}: at most one may draw into the image")
    order = sorted(range(len(outputs)), key=lambda index: outputs[index] in READS_THE_IMAGE)
    encoded: dict[int, Encoded] = {}
    for index in order:
        picture = draw(image, mask, options, outputs[index])
        watch.lap(DRAWING_STAGES[outputs[index]])
        encoded[index] = encode_picture(picture)
        watch.lap("encode")
        del picture
    return tuple(encoded[index] for index in range(len(outputs)))


def draw(image: Image.Image, mask: np.ndarray, options: RenderOptions, output: Output) -> Image.Image:
    """One output's picture: the tinted overlay (drawn into ``image``, which the pipeline owns) or the mask."""
    if output == "mask":
        return mask_to_image(mask)
    return blend_in_place(image, mask, options.color, options.alpha)
