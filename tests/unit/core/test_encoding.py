"""app.core.output.encoding: PNG, JPEG and WebP pictures, and the JSON document with the mask as COCO RLE."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as coco_mask

from app.core.inference.contract import ModelInfo
from app.core.output.encoding import (
    QUALITY_STEPS,
    Encoded,
    UnencodableResult,
    encode_document,
    encode_picture,
    mask_rle,
    result_document,
)
from app.core.output.summary import BoundingBox, Summary
from tests.samples import DISPLAY_P3_ICC
from tests.support import noise

MODEL = ModelInfo(input_height=8, input_width=8, channel_order="RGB", scale=1 / 255, mean=(0.5, 0.5, 0.5),
                  std=(0.2, 0.2, 0.2), threshold=0.5, name="m", version="2", sha256="d" * 64)


def smooth(width: int, height: int) -> Image.Image:
    """A gradient: lossy formats keep it within a few levels."""
    x = np.linspace(0, 255, width, dtype=np.float32)[None, :, None]
    y = np.linspace(0, 255, height, dtype=np.float32)[:, None, None]
    return Image.fromarray(np.broadcast_to((x + y) / 2, (height, width, 3)).astype(np.uint8))


# id: (format, mode, media type, suffix, Pillow's name for it)
FORMATS = {
    "png-rgb": ("png", "RGB", "image/png", ".png", "PNG"),
    "png-mask": ("png", "L", "image/png", ".png", "PNG"),
    "png-rgba": ("png", "RGBA", "image/png", ".png", "PNG"),
    "jpeg-rgb": ("jpeg", "RGB", "image/jpeg", ".jpg", "JPEG"),
    "jpeg-mask": ("jpeg", "L", "image/jpeg", ".jpg", "JPEG"),
    "webp-rgb": ("webp", "RGB", "image/webp", ".webp", "WEBP"),
    "webp-rgba": ("webp", "RGBA", "image/webp", ".webp", "WEBP"),
}


@pytest.mark.parametrize(("image_format", "mode", "media_type", "suffix", "pillow"), FORMATS.values(), ids=FORMATS)
def test_each_format_says_what_it_is_and_keeps_size_and_mode(
    image_format: str, mode: str, media_type: str, suffix: str, pillow: str
) -> None:
    picture = smooth(67, 41).convert(mode)
    if mode == "RGBA":  # a real alpha channel: libwebp drops one that is opaque everywhere
        picture.putalpha(smooth(67, 41).convert("L"))
    encoded = encode_picture(picture, image_format, 90)  # type: ignore[arg-type]
    assert (encoded.media_type, encoded.suffix) == (media_type, suffix)
    decoded = Image.open(io.BytesIO(encoded.body))
    assert (decoded.format, decoded.size, decoded.mode) == (pillow, (67, 41), mode)
    difference = np.abs(np.asarray(decoded, np.int16) - np.asarray(picture, np.int16))
    assert difference.max() == 0 if image_format == "png" else difference.mean() < 3


@pytest.mark.parametrize("image_format", ["png", "jpeg", "webp"])
def test_a_masks_levels_encode_as_its_greyscale_image_does(image_format: str) -> None:
    # GIVEN a mask's grey levels, as an array (what the pipeline draws for output=mask) and as an "L" image
    levels = (np.random.default_rng(5).random((41, 67)) < 0.4).view(np.uint8) * np.uint8(255)
    from_array = encode_picture(levels, image_format, 90)  # type: ignore[arg-type]
    from_image = encode_picture(Image.fromarray(levels), image_format, 90)  # type: ignore[arg-type]
    # THEN the same kind of file, the same bytes, and for PNG exactly the levels
    assert (from_array.media_type, from_array.suffix) == (from_image.media_type, from_image.suffix)
    assert bytes(from_array.body) == bytes(from_image.body)
    decoded = Image.open(io.BytesIO(from_array.body))
    assert (decoded.mode, decoded.size) == ("RGB" if image_format == "webp" else "L", (67, 41))  # WebP: no grey
    if image_format == "png":
        assert np.array_equal(np.asarray(decoded), levels)


@pytest.mark.parametrize("image_format", ["jpeg", "webp"])
def test_quality_trades_size_for_fidelity(image_format: str) -> None:
    picture = noise(128, 96, seed=1)
    sizes = [len(encode_picture(picture, image_format, quality).body) for quality in (10, 50, 95)]  # type: ignore
    assert sizes[0] < sizes[1] < sizes[2]


@pytest.mark.parametrize(
    ("image_format", "size", "limit"), [("webp", (16_384, 1), 16_383), ("jpeg", (1, 65_501), 65_500)]
)
def test_a_result_too_wide_for_the_format_is_a_422_naming_png(
    image_format: str, size: tuple[int, int], limit: int
) -> None:
    with pytest.raises(UnencodableResult) as raised:
        encode_picture(Image.new("L", size), image_format, 80)  # type: ignore[arg-type]
    assert (raised.value.status_code, str(raised.value)) == (422, (
        f"the result is {size[0]}x{size[1]}; {image_format.upper()} holds at most {limit} pixels a side: "
        "ask for format=png"))


@pytest.mark.parametrize(("image_format", "size"), [("webp", (16_383, 1)), ("jpeg", (1, 65_500))])
def test_a_result_as_wide_as_the_format_allows_is_encoded(image_format: str, size: tuple[int, int]) -> None:
    encoded = encode_picture(Image.new("L", size), image_format, 80)  # type: ignore[arg-type]
    with Image.open(io.BytesIO(encoded.body)) as image:
        assert (image.format, image.size) == (image_format.upper(), size)


def random_mask(height: int, width: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).random((height, width)) < 0.3


# pycocotools' decode (the reader we prove against, not our code) calls np.array(copy=False) the numpy 1 way.
PYCOCOTOOLS_DECODE = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")


@PYCOCOTOOLS_DECODE
@pytest.mark.parametrize(
    "mask",
    [np.zeros((7, 13), bool), np.ones((13, 7), bool), random_mask(1, 1, 0), random_mask(31, 17, 1),
     random_mask(2, 999, 2), np.eye(45, 23, dtype=bool)],
    ids=["empty", "full", "1x1", "odd", "wide", "diagonal"],
)
def test_rle_decodes_back_to_the_mask_exactly(mask: np.ndarray) -> None:
    rle = mask_rle(mask)
    assert rle["size"] == [mask.shape[0], mask.shape[1]] and isinstance(rle["counts"], str)
    decoded = coco_mask.decode({"size": rle["size"], "counts": rle["counts"].encode()})
    assert decoded.dtype == np.uint8 and np.array_equal(decoded.astype(bool), mask)
    assert json.loads(json.dumps(rle)) == rle  # plain JSON, as the API sends it


def test_rle_counts_runs_column_major_starting_with_background() -> None:
    # GIVEN a 2x3 mask whose column-major order is 0,1 | 1,1 | 0,0: runs 1 zero, 3 ones, 2 zeros
    mask = np.array([[False, True, False], [True, True, False]])
    assert coco_mask.frPyObjects(
        {"size": [2, 3], "counts": [1, 3, 2]}, 2, 3)["counts"].decode() == mask_rle(mask)["counts"]


def test_the_json_document() -> None:
    mask = np.zeros((4, 5), bool)
    mask[1, 2] = True
    document = json.loads(encode_document(result_document(Summary.of(mask), MODEL, mask)).body)
    assert document == {
        "width": 5, "height": 4, "foreground_fraction": 0.05,
        "bounding_box": {"left": 2, "top": 1, "right": 3, "bottom": 2},
        "model": {"name": "m", "version": "2", "sha256": "d" * 64},
        "mask": mask_rle(mask),
    }
    assert Summary.of(mask).bounding_box == BoundingBox(2, 1, 3, 2)


@pytest.mark.parametrize("image_format", ["jpeg", "webp"])
def test_the_default_quality_steps_down_until_the_result_fits(image_format: str) -> None:
    picture = noise(160, 120, seed=3)
    sizes = {step: len(encode_picture(picture, image_format, step).body)  # type: ignore[arg-type]
             for step in QUALITY_STEPS[image_format]}  # type: ignore[index]
    first, *rest = QUALITY_STEPS[image_format]  # type: ignore[index]
    for target in rest:  # a limit the default misses and this step meets
        encoded = encode_picture(picture, image_format, None, fit_within=sizes[target])  # type: ignore[arg-type]
        assert encoded.quality == target and len(encoded.body) == sizes[target]
    assert encode_picture(picture, image_format, None).quality == first  # type: ignore[arg-type]
    # nothing fits: the smallest is returned, and the caller answers 413
    assert encode_picture(picture, image_format, None, fit_within=10).quality == rest[-1]  # type: ignore[arg-type]


def test_a_quality_asked_for_is_never_lowered() -> None:
    encoded = encode_picture(noise(64, 48), "jpeg", 95, fit_within=10)
    assert encoded.quality == 95 and len(encoded.body) > 10


# --- ICC profiles: the picture's own, in every format that can carry one ---------------------

PROFILED = {  # id: (format, mode, profile embedded)
    "png-overlay": ("png", "RGB", DISPLAY_P3_ICC),
    "png-cutout": ("png", "RGBA", DISPLAY_P3_ICC),
    "jpeg-overlay": ("jpeg", "RGB", DISPLAY_P3_ICC),
    "webp-overlay": ("webp", "RGB", DISPLAY_P3_ICC),
    "webp-cutout": ("webp", "RGBA", DISPLAY_P3_ICC),
    "png-mask": ("png", "L", None),  # levels, not colours: an RGB profile would be invalid there
    "jpeg-mask": ("jpeg", "L", None),
}


@pytest.mark.parametrize(("image_format", "mode", "embedded"), PROFILED.values(), ids=PROFILED)
def test_the_pictures_profile_travels_into_the_file(image_format: str, mode: str, embedded: bytes | None) -> None:
    picture = smooth(33, 21).convert(mode)
    picture.info["icc_profile"] = DISPLAY_P3_ICC
    for quality in (90, None):  # as asked, and stepped down to fit
        encoded = encode_picture(picture, image_format, quality, fit_within=1)  # type: ignore[arg-type]
        assert Image.open(io.BytesIO(encoded.body)).info.get("icc_profile") == embedded


@pytest.mark.parametrize("image_format", ["png", "jpeg", "webp"])
def test_a_picture_without_a_profile_gets_none(image_format: str) -> None:
    encoded = encode_picture(smooth(33, 21), image_format, 90)  # type: ignore[arg-type]
    assert "icc_profile" not in Image.open(io.BytesIO(encoded.body)).info


def test_a_document_is_compact_json_stored_as_json() -> None:
    assert encode_document({"a": [1, 2], "b": "c"}) == Encoded(b'{"a":[1,2],"b":"c"}', "application/json", ".json")
