"""Each stage's floor: the same library call alone on the same pixels, timed in the same rounds as the stage.

    floors = stage_floors(prepare(data, segmenter, model_path, options))   # name -> a call to time
    rows = stage_rows(stages_ms, floors_ms)                                  # stage beside its floor

A stage of ``Rendered.timings_ms`` does its library call and the work around it (checks,
conversions, numpy); the floor is that call and nothing else, so stage / floor says how close
the stage comes. The service runs upsample and the PNG deflate in bands on every usable core
(``app.core.resources.bands``) while each floor is one call on one core: such a stage can come in under
its floor, and the ratio is reported as it is.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from isal import isal_zlib
from PIL import Image

from app.core.decoding.imaging import draft_for_model
from app.core.inference.segmenter import Segmenter, open_session, sigmoid, upsample_probabilities
from app.core.options import RenderOptions
from app.core.output.drawing import blend_in_place, mask_to_image, tint_table

JPEG_QUALITY = 85  # app.core.output.encoding's first JPEG quality: what an overlay asked for as JPEG is saved at
DEFLATE_LEVEL = 1  # app.core.output.png's ISA-L level
# Which floor each stage of each output is measured against ("http_png" is the PNG overlay over HTTP).
# An overlay decodes the full image, a mask or JSON only the model's view (a JPEG through Image.draft).
FLOOR_OF_STAGE: dict[str, dict[str, str]] = {
    "decode": {"png": "decode", "jpeg": "decode", "http_png": "decode", "mask": "decode_view", "json": "decode_view"},
    "resize": dict.fromkeys(("png", "jpeg", "mask", "json", "http_png"), "resize"),
    "infer": dict.fromkeys(("png", "jpeg", "mask", "json", "http_png"), "model"),
    "upsample": dict.fromkeys(("png", "jpeg", "mask", "json", "http_png"), "upsample"),
    "blend": dict.fromkeys(("png", "jpeg", "http_png"), "blend"),
    "encode": {"png": "deflate_overlay", "http_png": "deflate_overlay", "jpeg": "jpeg_save", "mask": "deflate_mask"},
}
FLOOR_CALLS = {  # what each floor times, for the report
    "decode": "Image.open(bytes).load()",
    "decode_view": "Image.open(bytes), draft_for_model(image, model input), load()",
    "resize": "view.resize(model input, BILINEAR)",
    "model": "the model alone (session.run)",
    "upsample": "Image 'F' 256x256 .resize(full size, BILINEAR), one call",
    "blend": "image.point(table), image.paste(tinted, mask=mode '1' mask)",
    "deflate_overlay": "isal_zlib.compress(overlay raw bytes, 1)",
    "jpeg_save": f"overlay.save(JPEG, quality={JPEG_QUALITY})",
    "deflate_mask": "isal_zlib.compress(mask raw bytes, 1)",
}


@dataclass(frozen=True)
class Pixels:
    """The pixels every stage works on, made once from one upload as the service makes them."""

    data: bytes  # the upload
    view_size: tuple[int, int]  # the model's input (width, height)
    view: Image.Image  # the model's view: a JPEG decoded at a reduced DCT scale
    canvas: Image.Image  # the full decoded image, drawn into over and over by the blend floor
    probabilities: Image.Image  # the model's 256x256 probabilities, mode "F"
    mask: Image.Image  # the full-size mask, mode "1"
    table: list[int]  # the tint's lookup table
    overlay: Image.Image  # the overlay the PNG and JPEG encoders get
    overlay_raw: bytes  # its raw RGB bytes
    mask_raw: bytes  # the mask picture's raw bytes ("L", 0/255)


def prepare(data: bytes, segmenter: Segmenter, model_path: Path, options: RenderOptions) -> Pixels:
    """The upload decoded, run through the model once and drawn, with the service's own functions."""
    image = decode(data).convert("RGB")
    view = decode_view(data, segmenter.input_size).convert("RGB")
    session = open_session(model_path, segmenter.threads)
    logits = session.run(None, {session.get_inputs()[0].name: segmenter.preprocess(view)})[0][0, 0]
    probabilities = sigmoid(np.ascontiguousarray(logits, dtype=np.float32))
    mask = upsample_probabilities(probabilities, image.size, segmenter.spec.threshold)
    overlay = blend_in_place(image.copy(), mask, options.color, options.alpha)
    return Pixels(data, segmenter.input_size, view, image, Image.fromarray(probabilities), Image.fromarray(mask),
                  tint_table(options.color, options.alpha), overlay, overlay.tobytes(), mask_to_image(mask).tobytes())


def decode(data: bytes) -> Image.Image:
    """Image.open(bytes).load(): the full decode."""
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def decode_view(data: bytes, view_size: tuple[int, int]) -> Image.Image:
    """The model's view, as ``app.core.decoding.imaging.decode_for_model`` asks for it: draft, then load."""
    image = Image.open(io.BytesIO(data))
    draft_for_model(image, view_size)
    image.load()
    return image


def upsample(probabilities: Image.Image, size: tuple[int, int]) -> Image.Image:
    """One BILINEAR resize of the "F" probabilities to the full size."""
    return probabilities.resize(size, Image.Resampling.BILINEAR)


def blend(canvas: Image.Image, table: list[int], mask: Image.Image) -> None:
    """The tint through its lookup table, pasted back through the mode "1" mask."""
    canvas.paste(canvas.point(table), mask=mask)


def deflate(raw: bytes) -> bytes:
    """ISA-L's deflate of the raw bytes, one call (no PNG filter)."""
    return isal_zlib.compress(raw, DEFLATE_LEVEL)


def jpeg_save(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()


def stage_floors(pixels: Pixels) -> dict[str, Callable[[], object]]:
    """Every floor but the model's (the caller times the model alone already), as calls to time."""
    full_size = pixels.canvas.size
    return {
        "decode": lambda: decode(pixels.data),
        "decode_view": lambda: decode_view(pixels.data, pixels.view_size),
        "resize": lambda: pixels.view.resize(pixels.view_size, Image.Resampling.BILINEAR),
        "upsample": lambda: upsample(pixels.probabilities, full_size),
        "blend": lambda: blend(pixels.canvas, pixels.table, pixels.mask),
        "deflate_overlay": lambda: deflate(pixels.overlay_raw),
        "jpeg_save": lambda: jpeg_save(pixels.overlay),
        "deflate_mask": lambda: deflate(pixels.mask_raw),
    }


def stage_rows(stages_ms: dict[str, dict[str, float]], floors_ms: dict[str, float]) -> list[dict[str, Any]]:
    """One row per stage and output that has a floor: the stage's median, its floor's, and stage / floor.

    ``stages_ms``: output -> stage -> median ms (``Rendered.timings_ms``); ``floors_ms``: floor -> median ms.
    """
    rows = []
    for stage, floors in FLOOR_OF_STAGE.items():
        for output, floor in floors.items():
            if stage in stages_ms.get(output, {}) and floor in floors_ms:
                ms, floor_ms = stages_ms[output][stage], floors_ms[floor]
                rows.append({"stage": stage, "output": output, "floor": floor, "call": FLOOR_CALLS[floor],
                             "stage_ms": ms, "floor_ms": floor_ms, "ratio": ms / floor_ms if floor_ms > 0 else None})
    return rows
