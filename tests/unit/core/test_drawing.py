"""app.core.output.drawing: the blend's geometry and arithmetic (against tests.support's numpy formula); the mask."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from app.core.output.drawing import blend_in_place, cut_out_in_place, mask_to_image, tint_table
from app.core.resources import bands
from tests.support import expected_overlay, noise


def blend(image: Image.Image, mask: np.ndarray, color: tuple[int, int, int], alpha: float) -> Image.Image:
    """``blend_in_place`` on a copy, so a test can compare with the original pixels."""
    return blend_in_place(image.copy(), mask, color, alpha)


BAND_ROWS = 64  # bands of a few rows, so small images cross their boundaries


def small_bands(monkeypatch: pytest.MonkeyPatch, width: int) -> int:
    """Bands of ``BAND_ROWS`` rows for a ``width``-pixel-wide image; returns that height."""
    monkeypatch.setattr(bands, "BAND_PIXELS", BAND_ROWS * width)
    assert bands.rows_per_band(width) == BAND_ROWS
    return BAND_ROWS


def checker_mask(width: int, height: int) -> np.ndarray:
    yy, xx = np.mgrid[0:height, 0:width]
    return ((yy // 2 + xx // 3) % 2).astype(bool)


@pytest.mark.parametrize("alpha", [0.0, 0.25, 0.5, 0.7, 1.0])
@pytest.mark.parametrize(("width", "height"), [(1, 1), (13, 7), (64, 48), (7, 130)])
def test_blend_tints_foreground_exactly_and_leaves_background_alone(width: int, height: int, alpha: float) -> None:
    # GIVEN random pixels and a checkered mask
    image, mask, color = noise(width, height), checker_mask(width, height), (255, 59, 48)
    # WHEN blended
    result = blend(image, mask, color, alpha)
    # THEN same size and mode, background bit-identical, foreground = floor((1-a)p + a c + 0.5)
    assert (result.mode, result.size) == ("RGB", image.size)
    before, after = np.asarray(image), np.asarray(result)
    assert np.array_equal(after[~mask], before[~mask])
    expected = np.floor((1 - alpha) * before[mask].astype(np.float64) + alpha * np.array(color) + 0.5)
    assert np.array_equal(after[mask], expected.astype(np.uint8))


@pytest.mark.parametrize(
    ("pixel", "color", "alpha", "expected"),
    [
        ((100, 100, 100), (255, 59, 48), 0.5, (178, 80, 74)),  # 177.5 rounds up, 79.5 up, 74 exact
        ((0, 0, 0), (255, 255, 255), 1.0, (255, 255, 255)),
        ((7, 8, 9), (255, 255, 255), 0.0, (7, 8, 9)),
        ((200, 10, 30), (0, 0, 0), 0.25, (150, 8, 23)),  # 150, 7.5 -> 8, 22.5 -> 23
    ],
)
def test_blend_arithmetic_examples(pixel: tuple, color: tuple, alpha: float, expected: tuple) -> None:
    image = Image.new("RGB", (1, 1), pixel)
    assert blend(image, np.ones((1, 1), dtype=bool), color, alpha).getpixel((0, 0)) == expected


@pytest.mark.parametrize(("left", "right"), [(0, 1), (5, 6), (30, 40), (79, 80), (0, 80)])
def test_a_figure_in_some_columns_of_some_bands_is_tinted_there_alone(left: int, right: int,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a mask that is foreground in a run of columns, in the middle rows of a tall image (several bands),
    # with one lone pixel further down
    rows = small_bands(monkeypatch, 80)
    height = 3 * rows
    image, mask = noise(80, height), np.zeros((height, 80), bool)
    mask[rows // 2 : 2 * rows + 7, left:right] = True
    mask[height - 3, 80 - 1 - left] = True
    # WHEN blended THEN the foreground is tinted exactly and every other pixel is untouched
    assert np.array_equal(np.asarray(blend(image, mask, (255, 59, 48), 0.4)),
                          expected_overlay(np.asarray(image), mask, (255, 59, 48), 0.4))


def test_blend_with_empty_and_full_masks() -> None:
    image = noise(9, 5)
    assert np.array_equal(np.asarray(blend(image, np.zeros((5, 9), bool), (1, 2, 3), 0.5)), np.asarray(image))
    solid = np.asarray(blend(image, np.ones((5, 9), bool), (1, 2, 3), 1.0))
    assert np.all(solid == np.array([1, 2, 3], dtype=np.uint8))


@pytest.mark.parametrize(
    ("image", "mask", "color", "alpha", "message"),
    [
        (Image.new("RGBA", (4, 4)), np.ones((4, 4), bool), (0, 0, 0), 0.5, "needs an RGB image"),
        (Image.new("RGB", (4, 3)), np.ones((4, 3), bool), (0, 0, 0), 0.5, "does not match"),  # (w, h) swapped
        (Image.new("RGB", (4, 4)), np.ones((4, 4), bool), (0, 0, 0), 1.5, "outside 0..1"),
        (Image.new("RGB", (4, 4)), np.ones((4, 4), bool), (0, 0, 0), -0.01, "outside 0..1"),
        (Image.new("RGB", (4, 4)), np.ones((4, 4), bool), (0, 0, 300), 0.5, "three channels of 0-255"),
        (Image.new("RGB", (4, 4)), np.ones((4, 4), bool), (0, 0, 256), 0.5, "three channels of 0-255"),
        (Image.new("RGB", (4, 4)), np.ones((4, 4), bool), (-1, 0, 0), 0.5, "three channels of 0-255"),
        (Image.new("RGB", (4, 4)), np.ones((4, 4), bool), (0, 0, 0, 0), 0.5, "three channels of 0-255"),
    ],
)
def test_blend_refuses_bad_inputs(
    image: Image.Image, mask: np.ndarray, color: tuple, alpha: float, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        blend(image, mask, color, alpha)


def test_tint_table_layout() -> None:
    table = tint_table((255, 0, 10), 0.5)
    assert len(table) == 768
    assert (table[0], table[255], table[256], table[511], table[512 + 10]) == (128, 255, 0, 128, 10)


def test_mask_to_image_is_0_or_255_greyscale() -> None:
    mask = np.array([[True, False, True]])
    image = mask_to_image(mask)
    assert (image.mode, image.size) == ("L", (3, 1))
    assert np.asarray(image).tolist() == [[255, 0, 255]]


@pytest.mark.parametrize("alpha", [0.0, 0.37, 0.5, 1.0])
@pytest.mark.parametrize(("width", "height"), [(1, 1), (13, 7), (31, BAND_ROWS * 2 + 5)])
def test_blend_in_place_draws_into_the_image_itself(width: int, height: int, alpha: float,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a mask with foreground in some bands only (so empty bands are skipped)
    rows = small_bands(monkeypatch, width)
    image, mask = noise(width, height, seed=3), checker_mask(width, height)
    mask[: min(height, rows)] = False
    expected = expected_overlay(np.asarray(image).copy(), mask, (0, 200, 255), alpha)
    # WHEN blended in place THEN the formula's pixels, in the same object
    result = blend_in_place(image, mask, (0, 200, 255), alpha)
    assert result is image
    assert np.array_equal(np.asarray(result), expected)


def test_cutout_keeps_the_foreground_and_erases_the_background() -> None:
    image, mask = noise(13, 7, seed=9), checker_mask(13, 7)
    original = np.asarray(image).copy()
    # WHEN cut out THEN RGBA in the same object: foreground as it was and opaque, background transparent black
    result = cut_out_in_place(image, mask)
    pixels = np.asarray(result)
    assert result is image and result.mode == "RGBA"
    assert np.array_equal(pixels[mask][:, :3], original[mask]) and np.all(pixels[mask][:, 3] == 255)
    assert np.all(pixels[~mask] == 0)  # colours zeroed too: nothing of the background is left in the file


def test_cutout_refuses_a_mask_of_another_size() -> None:
    with pytest.raises(ValueError, match="does not match"):
        cut_out_in_place(Image.new("RGB", (4, 3)), np.ones((4, 3), bool))
