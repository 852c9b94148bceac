"""Properties over generated inputs (Hypothesis): what holds for every image, every byte string, every mask and
every option value, not only for the examples the other tests name.

- a valid image of any size, mode, format and EXIF orientation: every output has its upright size;
- any bytes: ``decode_image`` returns an RGB image or raises ``ImageRejected``; POST /predict answers 200 or a 4xx;
- any mask: its COCO RLE decodes back to it exactly, and the summary counts it right;
- any option value: parsed into ``RenderOptions`` or refused with ``ValidationError``, never anything else;
  colours round-trip; file names come out safe.

Examples per test are bounded (the profile in tests/conftest.py); no deadline: speed is make bench's business.
"""

from __future__ import annotations

import io
import re
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from pycocotools import mask as coco_mask
from pydantic import ValidationError

from app.core.decoding.imaging import DecodeLimits, ImageRejected, decode_image
from app.core.inference.holder import ModelHolder
from app.core.naming import MAX_NAME_BYTES, sanitise_filename
from app.core.options import COLOR_PATTERN, Output, RenderOptions, format_color, parse_color
from app.core.output.encoding import mask_rle
from app.core.output.summary import Summary
from app.core.pipeline import render
from app.core.settings import Settings
from app.http.factory import create_app
from app.http.negotiation import negotiate_format
from app.http.work_queue import WorkQueue

LIMITS = DecodeLimits(max_bytes=4_400_000, max_pixels=4_000_000)
# Pillow warns (UserWarning) of damage it decodes around, such as "Corrupt EXIF data"; the service answers those
# files all the same. Only Pillow's own warnings are let through, and only in the tests that feed it damage.
PILLOW_WARNINGS = pytest.mark.filterwarnings("ignore::UserWarning:PIL")
# pycocotools' decode on numpy 2 (the other tests name it too: tests/unit/core/test_encoding.py).
PYCOCOTOOLS_DECODE = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")
SWAPS_SIDES = {5, 6, 7, 8}  # EXIF orientations that turn the image a quarter
# (Pillow format, modes it writes, save parameters)
WRITERS = [
    ("PNG", ["RGB", "RGBA", "L", "LA", "P", "1", "I;16"], {}),
    ("JPEG", ["RGB", "L", "CMYK"], {"quality": 90}),
    ("WEBP", ["RGB", "RGBA"], {"quality": 90}),
    ("TIFF", ["RGB", "RGBA", "L", "CMYK", "I;16", "F"], {}),
    ("BMP", ["RGB", "L", "P", "1"], {}),
    ("GIF", ["P", "L"], {}),
]


@st.composite
def stored_images(draw: st.DrawFn) -> tuple[bytes, tuple[int, int], int]:
    """(file bytes, stored size, EXIF orientation): any writer, mode, size from 1x1, orientation 1-8."""
    fmt, modes, params = draw(st.sampled_from(WRITERS))
    mode = draw(st.sampled_from(modes))
    size = (draw(st.integers(1, 96)), draw(st.integers(1, 96)))
    seed = draw(st.integers(0, 2**16))
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    image = Image.fromarray(pixels).convert(mode) if mode != "I;16" else Image.fromarray(pixels[..., 0]).convert(mode)
    orientation = draw(st.integers(1, 8)) if fmt in {"JPEG", "PNG", "WEBP", "TIFF"} else 1
    exif = Image.Exif()
    exif[0x0112] = orientation
    extra = {"exif": exif.tobytes()} if orientation != 1 else {}
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params, **extra)
    return buffer.getvalue(), size, orientation


def upright_size(size: tuple[int, int], orientation: int) -> tuple[int, int]:
    return (size[1], size[0]) if orientation in SWAPS_SIDES else size


@settings(max_examples=60)
@given(stored=stored_images(), output=st.sampled_from(["overlay", "mask", "cutout"]))
def test_every_output_of_a_valid_image_has_its_upright_size(stored: tuple[bytes, tuple[int, int], int],
                                                           output: Output, tiny_holder: ModelHolder) -> None:
    data, size, orientation = stored
    rendered = render(tiny_holder.get(), data, LIMITS, RenderOptions(output=output), also=("mask",))
    expected = upright_size(size, orientation)
    for encoded in rendered.outputs:
        assert Image.open(io.BytesIO(encoded.body)).size == expected
    assert (rendered.summary.width, rendered.summary.height) == expected


@PILLOW_WARNINGS
@settings(max_examples=300)
@given(data=st.binary(max_size=2048))
def test_any_bytes_decode_or_are_rejected(data: bytes) -> None:
    try:
        image = decode_image(data, LIMITS)
    except ImageRejected as rejected:
        assert rejected.status_code in {400, 413, 415}
        assert rejected.detail
        return
    assert image.mode == "RGB" and image.width * image.height <= LIMITS.max_pixels


@st.composite
def damaged_images(draw: st.DrawFn) -> bytes:
    """A valid file with bytes flipped, cut or spliced: closer to what a decoder trips on than random bytes."""
    data, _, _ = draw(stored_images())
    at = draw(st.integers(0, len(data) - 1))
    damage = draw(st.sampled_from(["cut", "flip", "splice"]))
    if damage == "cut":
        return data[:at]
    if damage == "flip":
        return data[:at] + bytes([data[at] ^ draw(st.integers(1, 255))]) + data[at + 1 :]
    return data[:at] + draw(st.binary(min_size=1, max_size=64)) + data[at:]


@PILLOW_WARNINGS
@settings(max_examples=120)
@given(data=st.one_of(damaged_images(), st.binary(max_size=512)))
def test_predict_answers_any_upload_with_200_or_a_4xx(data: bytes, tiny_holder: ModelHolder) -> None:
    client = predict_client(tiny_holder)
    response = client.post("/predict", files={"file": ("upload", data)})
    assert response.status_code == 200 or (400 <= response.status_code < 500 and "detail" in response.json())


_CLIENTS: dict[int, TestClient] = {}


def predict_client(holder: ModelHolder) -> TestClient:
    """One app per model for every example (Hypothesis runs a test body many times; fixtures run once)."""
    if id(holder) not in _CLIENTS:
        app = create_app(Settings(MAX_PIXELS=LIMITS.max_pixels), holder, WorkQueue(workers=1, max_waiting=4))
        _CLIENTS[id(holder)] = TestClient(app, raise_server_exceptions=False)
    return _CLIENTS[id(holder)]


@PYCOCOTOOLS_DECODE
@settings(max_examples=200)
@given(shape=st.tuples(st.integers(1, 40), st.integers(1, 40)), seed=st.integers(0, 2**16),
       density=st.floats(0.0, 1.0))
def test_the_rle_of_any_mask_decodes_to_it(shape: tuple[int, int], seed: int, density: float) -> None:
    mask = np.random.default_rng(seed).random(shape) < density
    rle = mask_rle(mask)
    assert rle["size"] == list(shape)
    decoded = coco_mask.decode({"size": rle["size"], "counts": rle["counts"].encode()})
    np.testing.assert_array_equal(decoded.astype(bool), mask)
    summary = Summary.of(mask)
    assert summary.foreground_fraction == mask.sum() / mask.size
    assert (summary.bounding_box is None) == (not mask.any())


@settings(max_examples=300)
@given(shape=st.tuples(st.integers(1, 40), st.integers(1, 40)), seed=st.integers(0, 2**16),
       density=st.floats(0.0, 1.0), blobs=st.booleans())
def test_the_rle_is_pycocotools_own_encoding_of_the_mask(shape: tuple[int, int], seed: int, density: float,
                                                         blobs: bool) -> None:
    """Our runs, found in row-major order, give the string ``coco_mask.encode`` gives from the column-major copy."""
    rng = np.random.default_rng(seed)
    mask = rng.random(shape) < density
    if blobs:  # long runs across column boundaries, as a segmented person gives
        mask = np.cumsum(mask, axis=0) % 2 == 1
    expected = coco_mask.encode(np.asfortranarray(mask, dtype=np.uint8))
    assert mask_rle(mask) == {"size": list(shape), "counts": expected["counts"].decode("ascii")}


@given(color=st.tuples(st.integers(0, 255), st.integers(0, 255), st.integers(0, 255)))
def test_a_colour_round_trips_through_its_text(color: tuple[int, int, int]) -> None:
    assert parse_color(format_color(color)) == color
    assert parse_color(",".join(map(str, color))) == color


COLOUR_TEXTS = st.one_of(st.text(max_size=40), st.from_regex(COLOR_PATTERN), st.text("0123456789abcdefABCDEF#, \t\xa0",
                                                                                     max_size=14))


@settings(max_examples=400)
@given(text=COLOUR_TEXTS)
def test_a_colour_parses_exactly_when_the_api_schema_says_it_may(text: str) -> None:
    """COLOR_PATTERN is the OpenAPI document's word for the colour: it must accept what parse_color accepts."""
    try:
        color = parse_color(text)
    except ValueError:
        assert re.fullmatch(COLOR_PATTERN, text) is None
        return
    assert re.fullmatch(COLOR_PATTERN, text) is not None
    assert len(color) == 3 and all(0 <= channel <= 255 for channel in color)


OPTION_VALUES = st.one_of(st.none(), st.booleans(), st.integers(-300, 300), st.floats(allow_nan=True),
                          st.text(max_size=12), st.lists(st.integers(-1, 300), max_size=4))
OPTION_NAMES = st.sampled_from(["output", "format", "quality", "color", "alpha", "threshold", "also", ""])


@settings(max_examples=300)
@given(overrides=st.dictionaries(OPTION_NAMES, OPTION_VALUES, max_size=4))
def test_any_option_values_are_parsed_or_refused(overrides: dict[str, Any]) -> None:
    try:
        options = RenderOptions().with_overrides(overrides)
    except ValidationError:
        return
    assert options.output in {"overlay", "mask", "cutout", "json"} and options.format in {"png", "jpeg", "webp"}
    assert options.output != "cutout" or options.format != "jpeg"
    assert options.threshold is None or 0 < options.threshold < 1
    assert RenderOptions.model_validate(options.model_dump(mode="json")) == options  # what the upload flow stores


@given(accept=st.text(max_size=80), output=st.sampled_from(["overlay", "mask", "cutout", "json"]))
def test_any_accept_header_gives_a_format_that_carries_the_output(accept: str, output: Output) -> None:
    chosen = negotiate_format(accept, output)
    assert chosen in {"png", "jpeg", "webp"} and (output != "cutout" or chosen != "jpeg")


@settings(max_examples=300)
@given(name=st.text(max_size=400))
def test_any_file_name_comes_out_one_safe_segment(name: str) -> None:
    safe = sanitise_filename(name)
    assert safe and "/" not in safe and "\\" not in safe and "\x00" not in safe
    assert not safe.startswith(".") and safe not in {".", ".."}
    assert len(safe.encode()) <= MAX_NAME_BYTES
    assert sanitise_filename(safe) == safe
