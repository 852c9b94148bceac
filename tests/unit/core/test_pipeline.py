"""app.core.pipeline: the one pipeline, bytes or an image in, encoded outputs and their summary out."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from app.core import pipeline
from app.core.decoding.imaging import CorruptImage, DecodeLimits, ImageTooLarge
from app.core.inference.segmenter import Segmenter
from app.core.options import RenderOptions
from app.core.output.summary import BoundingBox, Summary
from app.core.pipeline import render
from app.core.timing import Stopwatch
from tests.samples import DISPLAY_P3_ICC, avif, exif_with, heic, oriented
from tests.support import PNG_SIGNATURE, encode, expected_overlay, noise

LIMITS = DecodeLimits(max_bytes=10_000_000, max_pixels=10_000_000)
OPTIONS = RenderOptions(color=(0, 200, 255), alpha=0.4, threshold=0.5)


@pytest.fixture(scope="module")
def tiny(tiny_model_path: Path) -> Segmenter:
    return Segmenter(tiny_model_path, "0" * 64, threads=1)


def decoded(body: bytes) -> np.ndarray:
    assert body.startswith(PNG_SIGNATURE)
    return np.asarray(Image.open(io.BytesIO(body)))


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        ([], Summary(5, 4, 0.0, None)),
        ([(1, 2)], Summary(5, 4, 1 / 20, BoundingBox(2, 1, 3, 2))),
        ([(0, 0), (3, 4)], Summary(5, 4, 2 / 20, BoundingBox(0, 0, 5, 4))),
    ],
)
def test_summary_of_a_mask(rows: list[tuple[int, int]], expected: Summary) -> None:
    mask = np.zeros((4, 5), dtype=bool)
    for y, x in rows:
        mask[y, x] = True
    assert Summary.of(mask) == expected


def test_bytes_in_overlay_and_mask_out_from_one_segmentation(tiny: Segmenter) -> None:
    # GIVEN an odd-sized image; WHEN rendered with the mask as a further output
    image = noise(67, 41, seed=5)
    rendered = render(tiny, encode(image), LIMITS, OPTIONS, also=("mask",))
    overlay, mask_png = rendered.outputs
    # THEN both are PNGs at the image's size, the overlay tints exactly the mask, and the summary describes it
    mask = decoded(mask_png.body) == 255
    assert mask.shape == (41, 67) and (overlay.media_type, mask_png.media_type) == ("image/png", "image/png")
    assert np.array_equal(decoded(overlay.body), expected_overlay(np.asarray(image), mask, (0, 200, 255), 0.4))
    assert rendered.summary == Summary.of(mask) and rendered.result is overlay
    assert rendered.model is tiny.info
    assert list(rendered.timings_ms) == ["decode", "resize", "infer", "upsample", "mask", "encode", "blend"]


def test_the_result_names_the_provider_that_ran_the_model(tiny_model_path: Path) -> None:
    providers = [("AzureExecutionProvider", {}), ("CPUExecutionProvider", {})]  # onnxruntime's CPU wheel has both
    azure_first = Segmenter(tiny_model_path, "x", providers=providers)
    rendered = render(azure_first, encode(noise(20, 10)), LIMITS, OPTIONS)
    assert rendered.provider == "AzureExecutionProvider"  # the dataclass's default is the CPU's


def test_json_output_times_its_document(tiny: Segmenter) -> None:
    rendered = render(tiny, encode(noise(20, 10)), LIMITS, RenderOptions(output="json"))
    assert list(rendered.timings_ms) == ["decode", "resize", "infer", "upsample", "json", "encode"]


def test_the_mask_is_the_segmenters_at_the_options_threshold(tiny: Segmenter) -> None:
    image = noise(50, 30, seed=2)
    for threshold in (0.2, 0.5, 0.8):
        options = OPTIONS.with_overrides({"threshold": threshold, "output": "mask"})
        rendered = render(tiny, encode(image), LIMITS, options)
        assert np.array_equal(decoded(rendered.result.body) == 255, tiny.segment(image, threshold).mask)


def test_a_decoded_image_skips_decoding_and_is_drawn_into(tiny: Segmenter) -> None:
    image = noise(20, 10, seed=1)
    from_bytes = render(tiny, encode(image), LIMITS, OPTIONS)
    from_image = render(tiny, image.copy(), LIMITS, OPTIONS)
    assert from_image.result == from_bytes.result


def test_at_most_one_output_draws_into_the_image(tiny: Segmenter) -> None:
    with pytest.raises(ValueError, match="at most one may draw into the image"):
        render(tiny, noise(8, 8), LIMITS, OPTIONS, also=("overlay",))


@pytest.mark.parametrize(
    ("data", "limits", "rejection"),
    [
        (b"not an image", LIMITS, CorruptImage),
        (encode(noise(40, 30)), DecodeLimits(max_bytes=10_000_000, max_pixels=1_000), ImageTooLarge),
    ],
)
def test_rejections_propagate_before_any_inference(
    tiny: Segmenter, data: bytes, limits: DecodeLimits, rejection: type[Exception], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tiny, "segment", lambda *_: pytest.fail("segmented a rejected image"))
    with pytest.raises(rejection):
        render(tiny, data, limits, OPTIONS)


def segmented_noise(tiny: Segmenter) -> tuple[pipeline.Segmented, np.ndarray, np.ndarray]:
    """A segmentation of a noise image as render makes it, with copies of its image and mask to compare against."""
    image = noise(40, 30, seed=9)
    mask = tiny.segment(image, 0.5).mask
    return pipeline.Segmented(image, mask, Summary.of(mask), tiny.info), np.asarray(image).copy(), mask.copy()


def test_the_mask_is_let_go_once_the_last_picture_is_drawn_and_not_before(tiny: Segmenter) -> None:
    # GIVEN the overlay asked for and the mask beside it (the S3 trigger's pair): the overlay is drawn last
    segmented, pixels, mask = segmented_noise(tiny)
    requested = [("overlay", OPTIONS), ("mask", pipeline.FURTHER_OUTPUTS)]
    overlay, mask_png = pipeline.make_outputs(segmented, requested, Stopwatch())
    # THEN both were drawn from the whole mask, which is released afterwards: an empty 0x0 bool mask
    assert np.array_equal(decoded(mask_png.body) == 255, mask)
    assert np.array_equal(decoded(overlay.body), expected_overlay(pixels, mask, (0, 200, 255), 0.4))
    assert (segmented.mask.shape, segmented.mask.dtype) == ((0, 0), np.dtype(bool))


def test_one_output_made_alone_keeps_the_mask_unless_it_is_the_last(tiny: Segmenter) -> None:
    segmented, _, mask = segmented_noise(tiny)
    pipeline.make_output(segmented, "mask", pipeline.FURTHER_OUTPUTS, Stopwatch())
    assert np.array_equal(segmented.mask, mask)
    pipeline.make_output(segmented, "mask", pipeline.FURTHER_OUTPUTS, Stopwatch(), last=True)
    assert segmented.mask.size == 0


def test_each_render_says_how_large_it_was_for_its_freed_memory(tiny: Segmenter,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    monkeypatch.setattr(pipeline, "trim_heap_after", calls.append)
    render(tiny, encode(noise(12, 8)), LIMITS, OPTIONS, also=("mask",))
    assert calls == [12 * 8]


# id: (options, media type, decoded mode or None for JSON)
OUTPUTS = {
    "overlay-png": ({"output": "overlay", "format": "png"}, "image/png", "RGB"),
    "overlay-jpeg": ({"output": "overlay", "format": "jpeg"}, "image/jpeg", "RGB"),
    "overlay-webp": ({"output": "overlay", "format": "webp", "quality": 60}, "image/webp", "RGB"),
    "mask-png": ({"output": "mask", "format": "png"}, "image/png", "L"),
    "mask-jpeg": ({"output": "mask", "format": "jpeg"}, "image/jpeg", "L"),
    "mask-webp": ({"output": "mask", "format": "webp"}, "image/webp", "RGB"),  # WebP has no greyscale mode
    "cutout-png": ({"output": "cutout", "format": "png"}, "image/png", "RGBA"),
    "cutout-webp": ({"output": "cutout", "format": "webp"}, "image/webp", "RGBA"),
    "json": ({"output": "json"}, "application/json", None),
}


@pytest.mark.parametrize(("given", "media_type", "mode"), OUTPUTS.values(), ids=OUTPUTS.keys())
def test_every_output_in_every_format_it_can_take(
    tiny: Segmenter, given: dict[str, object], media_type: str, mode: str | None
) -> None:
    image = noise(61, 37, seed=6)
    options = OPTIONS.with_overrides({**given, "threshold": 0.5})
    rendered = render(tiny, encode(image), LIMITS, options, also=("mask",))
    assert rendered.result.media_type == media_type
    mask = decoded(rendered.outputs[1].body) == 255  # the further output: always PNG
    if mode is None:
        document = json.loads(rendered.result.body)
        assert (document["width"], document["height"], document["mask"]["size"]) == (61, 37, [37, 61])
        return
    picture = Image.open(io.BytesIO(rendered.result.body))
    assert (picture.size, picture.mode) == ((61, 37), mode)
    if given["output"] == "cutout":
        assert mask.any() and not mask.all()  # this image at 0.5 has both (the check below means something)
        alpha = np.asarray(picture)[..., 3]
        assert np.all(alpha[~mask] == 0) and np.all(alpha[mask] > 0)


# --- phone photos: HEIC and AVIF, turned by their container, in Display P3 ----------------------

PHONE_FORMATS = {"heic": lambda image: heic(image, icc_profile=DISPLAY_P3_ICC),
                 "avif": lambda image: avif(image, icc_profile=DISPLAY_P3_ICC)}
PICTURES = {  # id: (options, mode of the result)
    "overlay-png": ({"output": "overlay", "format": "png"}, "RGB"),
    "overlay-jpeg": ({"output": "overlay", "format": "jpeg"}, "RGB"),
    "overlay-webp": ({"output": "overlay", "format": "webp"}, "RGB"),
    "cutout-png": ({"output": "cutout", "format": "png"}, "RGBA"),
    "cutout-webp": ({"output": "cutout", "format": "webp"}, "RGBA"),
}


@pytest.mark.parametrize("make", PHONE_FORMATS.values(), ids=PHONE_FORMATS)
@pytest.mark.parametrize(("given", "mode"), PICTURES.values(), ids=PICTURES)
def test_a_phone_photos_profile_reaches_every_picture_output_and_not_the_mask(
    tiny: Segmenter, make: Callable[[Image.Image], bytes], given: dict[str, object], mode: str
) -> None:
    rendered = render(tiny, make(noise(40, 30, seed=7)), LIMITS, OPTIONS.with_overrides(given), also=("mask",))
    picture, mask = (Image.open(io.BytesIO(output.body)) for output in rendered.outputs)
    assert (picture.size, picture.mode, picture.info.get("icc_profile")) == ((40, 30), mode, DISPLAY_P3_ICC)
    assert (mask.mode, "icc_profile" in mask.info) == ("L", False)


def test_the_overlay_of_a_display_p3_heic_tints_its_own_pixels(tiny: Segmenter) -> None:
    # GIVEN a lossless HEIC in Display P3, stored turned (irot) as a phone held upright stores it
    image = noise(40, 30, seed=8)
    data = oriented("HEIF", image.transpose(Image.Transpose.ROTATE_90), container=6, icc_profile=DISPLAY_P3_ICC)
    rendered = render(tiny, data, LIMITS, OPTIONS, also=("mask",))
    overlay, mask_png = rendered.outputs
    mask = decoded(mask_png.body) == 255
    # THEN the overlay is upright, and its pixels are the input's own (only the model saw sRGB), tinted
    assert mask.shape == (30, 40) and Image.open(io.BytesIO(overlay.body)).info["icc_profile"] == DISPLAY_P3_ICC
    assert np.array_equal(decoded(overlay.body), expected_overlay(np.asarray(image), mask, (0, 200, 255), 0.4))


# --- the model's view of a JPEG (app.core.decoding.imaging.decode_for_model): a reduced scale, masks at full size

@pytest.mark.parametrize(
    ("fmt", "size", "view_size"),
    [
        ("JPEG", (1100, 600), (275, 150)),  # 1/4 keeps both sides >= 128 (the tiny model's input is 32: 1/8 would)
        ("JPEG", (300, 200), (300, 200)),  # no scale reaches the model's size with room: decoded in full
        ("PNG", (1100, 600), (1100, 600)),  # no DCT to scale: decoded in full
    ],
)
def test_a_jpeg_is_decoded_for_the_model_at_a_reduced_scale(fmt: str, size: tuple[int, int],
                                                            view_size: tuple[int, int]) -> None:
    from app.core.decoding.imaging import decode_for_model, decode_full

    data = encode(noise(*size, seed=3), fmt)
    decoded = decode_for_model(data, LIMITS, (128, 128))
    assert (decoded.view.size, decoded.size) == (view_size, size)
    assert (decoded.image is None) == (view_size != size)  # a reduced view: the full image is decoded apart
    assert decode_full(data, LIMITS, decoded).size == size


@pytest.mark.parametrize("orientation", range(1, 9))
def test_the_full_size_of_a_reduced_jpeg_is_upright(orientation: int) -> None:
    from app.core.decoding.imaging import decode_for_model, decode_full

    image = noise(1200, 700, seed=4)
    data = encode(image, "JPEG", exif=exif_with({0x0112: orientation}))
    decoded = decode_for_model(data, LIMITS, (128, 128))
    upright_size = (700, 1200) if orientation >= 5 else (1200, 700)
    assert decoded.size == decode_full(data, LIMITS, decoded).size == upright_size
    assert decoded.view.size == (upright_size[0] // 4, upright_size[1] // 4)


def test_every_output_of_a_jpeg_carries_the_same_mask(tiny: Segmenter) -> None:
    """The overlay decodes the photo twice (the view, the full image), the mask once: one mask either way."""
    data = encode(noise(1024, 640, seed=6), "JPEG", quality=90)
    alone = decoded(render(tiny, data, LIMITS, OPTIONS.with_overrides({"output": "mask"})).result.body) == 255
    overlay, beside = render(tiny, data, LIMITS, OPTIONS, also=("mask",)).outputs
    assert np.array_equal(decoded(beside.body) == 255, alone) and alone.shape == (640, 1024)
    full = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    assert np.array_equal(decoded(overlay.body), expected_overlay(full, alone, (0, 200, 255), 0.4))


def test_a_jpegs_orientation_is_read_once_for_the_view_the_full_image_and_the_mask(
        tiny: Segmenter, monkeypatch: pytest.MonkeyPatch) -> None:
    """Pillow caches a half-read EXIF after a failed read (getexif marks it loaded first), so a second read can
    disagree with the first: sizes from two reads once gave a mask the overlay's shape refused (a 500)."""
    from app.core.decoding import imaging

    readings = iter([6, 1, 1, 1, 1, 1])
    monkeypatch.setattr(imaging, "exif_orientation", lambda image: next(readings))
    rendered = render(tiny, encode(noise(1024, 640, seed=7), "JPEG"), LIMITS, OPTIONS, also=("mask",))
    overlay, mask = (decoded(output.body) for output in rendered.outputs)
    assert overlay.shape[:2] == mask.shape == (1024, 640)
