"""The one pipeline: image bytes (or a decoded image) and options -> encoded outputs and their summary.

Every entry point calls ``render``: the HTTP routes on a worker thread, the S3
trigger, the benchmark. Stages, in ``Rendered.timings_ms``: ``decode``, then
``resize``, ``infer``, ``upsample`` (from the segmenter), then per output its
drawing (``blend`` for the overlay, ``mask``, ``cutout``, or ``json`` for the
document) and ``encode``.

One segmentation serves several outputs (the S3 trigger writes the result and the
mask): outputs that only read the mask are made first, and the overlay or cutout,
drawn into the decoded image itself, last, so no second full-size copy of the
image is ever alive (36 MB at 12 MP, 300 MB at 100 MP).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import BinaryIO

import numpy as np
from PIL import Image

from app.core.decoding.imaging import Decoded, DecodeLimits, decode_for_model, decode_full
from app.core.inference.contract import ModelInfo
from app.core.inference.segmenter import Segmenter
from app.core.options import Output, RenderOptions
from app.core.output.drawing import blend_in_place, cut_out_in_place, mask_levels
from app.core.output.encoding import Encoded, encode_document, encode_picture, result_document
from app.core.output.summary import Summary
from app.core.resources.bands import beside
from app.core.resources.memory import trim_heap_after
from app.core.timing import Stopwatch

DRAWING_STAGES: dict[Output, str] = {"overlay": "blend", "mask": "mask", "cutout": "cutout", "json": "json"}
READS_THE_IMAGE: frozenset[Output] = frozenset({"overlay", "cutout"})  # drawn into the decoded image: last
FURTHER_OUTPUTS = RenderOptions()  # ``also`` outputs: PNG, lossless, whatever the format asked for


@dataclass(frozen=True)
class Rendered:
    """The encoded outputs (the one asked for first, then ``also`` in order), the summary, the model, timings."""

    outputs: tuple[Encoded, ...]
    summary: Summary
    model: ModelInfo
    timings_ms: dict[str, float]
    provider: str = "CPUExecutionProvider"  # the execution provider that ran the model

    @property
    def result(self) -> Encoded:
        """The output that was asked for."""
        return self.outputs[0]


@dataclass
class Segmented:
    """A decoded image, its mask and what the outputs say about them: what every output is made from.

    Once the last output is drawn, ``release_mask`` lets its 1 byte per pixel go before that output is
    encoded (a 40 MP mask is 40 MB), as the pipeline owns both.
    """

    image: Image.Image | None  # None when no output draws into it (``mask``, ``json``)
    mask: np.ndarray
    summary: Summary
    model: ModelInfo

    def release_mask(self) -> None:
        self.mask = np.empty((0, 0), dtype=bool)


def render(segmenter: Segmenter, source: bytes | BinaryIO | Image.Image, limits: DecodeLimits, options: RenderOptions,
           also: Sequence[Output] = (), watch: Stopwatch | None = None, fit_within: int | None = None) -> Rendered:
    """Untrusted image bytes or file (checked against ``limits``), or an upright RGB image (drawn into) -> ``Rendered``.

    ``also`` names further outputs made from the same mask, as PNG (the S3 trigger's
    ``mask`` beside the result asked for). ``fit_within``: a byte limit the result must
    fit (Lambda's response), which a lossy format at its default quality meets by
    lowering it in steps. Rejections raise ``ImageRejected``.
    """
    watch = watch or Stopwatch()
    requested = [(options.output, options), *((output, FURTHER_OUTPUTS) for output in also)]
    decoded = decode_for_model(source, limits, segmenter.input_size) if not isinstance(source, Image.Image) \
        else Decoded(source, source.size, source)
    watch.lap("decode")
    batch = segmenter.preprocess(decoded.view)
    watch.lap("resize")
    # Started once the model's input is made: the decode's Python parts (its header, Pillow's chunk loop) would
    # hold the GIL against the preprocessing's; the model itself runs without it.
    full_image = full_image_beside_the_model(source, limits, decoded, requested)
    prediction = segmenter.segment_input(batch, decoded.size, options.threshold)
    watch.merge(prediction.timings_ms)
    image = full_image()
    watch.lap("decode")  # what the model's time did not hide of the full-size decode
    segmented = Segmented(image, prediction.mask, Summary.of(prediction.mask), segmenter.info)
    # The outputs own the image from here (12 MP: the image and mask are 48 MB); the finished decode's future
    # would hold it too, past the heap trim below (bench.history: +24% idle RSS while it did).
    del decoded, prediction, image, full_image
    encoded = make_outputs(segmented, requested, watch, fit_within)
    summary = segmented.summary
    del segmented
    # Give a large request's freed buffers back now (outside the stages' timings): a small one's stay in the
    # heap for the next request (``trim_heap_after``).
    trim_heap_after(summary.width * summary.height)
    return Rendered(encoded, summary, segmenter.info, watch.laps_ms, segmenter.provider)


def full_image_beside_the_model(source: bytes | BinaryIO | Image.Image, limits: DecodeLimits, decoded: Decoded,
                                requested: Sequence[tuple[Output, RenderOptions]]) -> Callable[[], Image.Image | None]:
    """The full-size image an output draws into, decoded beside the model (``app.core.resources.bands.beside``)
    where the view was a reduced JPEG: the model leaves some of two cores idle (measured: docs/benchmarks.md).
    Returns the call that waits for it; None when no output draws (``mask``, ``json``)."""
    if not any(output in READS_THE_IMAGE for output, _ in requested):
        return lambda: None
    if decoded.image is not None or isinstance(source, Image.Image):  # decoded in full already: no second decode
        return lambda: decoded.image
    return beside(partial(decode_full, source, limits, decoded))


def make_outputs(segmented: Segmented, requested: Sequence[tuple[Output, RenderOptions]],
                 watch: Stopwatch, fit_within: int | None = None) -> tuple[Encoded, ...]:
    """Each output made and encoded, those that draw into the image last; returned in the order asked.

    ``fit_within`` applies to the first, the result asked for."""
    if sum(output in READS_THE_IMAGE for output, _ in requested) > 1:
        raise ValueError(f"outputs {[output for output, _ in requested]}: at most one may draw into the image")
    order = sorted(range(len(requested)), key=lambda index: requested[index][0] in READS_THE_IMAGE)
    encoded: dict[int, Encoded] = {}
    for index in order:
        output, options = requested[index]
        last = index == order[-1]
        encoded[index] = make_output(segmented, output, options, watch, fit_within if index == 0 else None, last)
    return tuple(encoded[index] for index in range(len(requested)))


def make_output(segmented: Segmented, output: Output, options: RenderOptions, watch: Stopwatch,
                fit_within: int | None = None, last: bool = False) -> Encoded:
    """One output: the JSON document, or a picture drawn and encoded in the options' format. The ``last``
    output drops the mask once it is drawn: nothing after it reads the mask."""
    if output == "json":
        document = result_document(segmented.summary, segmented.model, segmented.mask)
        watch.lap(DRAWING_STAGES[output])
        encoded = encode_document(document)
    else:
        picture = draw(segmented, output, options)
        if last:  # the picture is drawn (the mask's own picture is a copy of it): the mask is done with
            segmented.release_mask()
        watch.lap(DRAWING_STAGES[output])
        encoded = encode_picture(picture, options.format, options.quality, fit_within)
        del picture
    watch.lap("encode")
    return encoded


def draw(segmented: Segmented, output: Output, options: RenderOptions) -> Image.Image | np.ndarray:
    """One output's picture; the overlay and the cutout are drawn into the decoded image, which the pipeline owns;
    the mask's picture is its grey levels (``mask_levels``), an array."""
    if output == "mask":
        return mask_levels(segmented.mask)
    if segmented.image is None:
        raise ValueError(f"output {output} draws into the image, which was not decoded in full")
    if output == "cutout":
        return cut_out_in_place(segmented.image, segmented.mask)
    return blend_in_place(segmented.image, segmented.mask, options.color, options.alpha)
