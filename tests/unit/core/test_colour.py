"""app.core.decoding.colour: which ICC profile a decoded image keeps, whether it is sRGB, sRGB pixels for the model."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageCms

from app.core.decoding import colour
from app.core.decoding.colour import is_srgb, rgb_profile, to_srgb
from tests.samples import DISPLAY_P3, DISPLAY_P3_ICC, SRGB_ICC, SRGB_PRIMARIES, rgb_profile_bytes, rgb_to_xyz_d50

LCMS_SRGB_ICC = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
LAB_ICC = ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB")).tobytes()


def test_the_tests_display_p3_profile_has_apples_colorants() -> None:
    # Apple's "Display P3" profile (macOS ColorSync) gives, D50-adapted, r/g/bXYZ of
    # (0.5151, 0.2412, -0.0011), (0.2920, 0.6922, 0.0419), (0.1571, 0.0666, 0.7841).
    profile = ImageCms.ImageCmsProfile(io.BytesIO(DISPLAY_P3_ICC)).profile
    colorants = [profile.red_colorant[0], profile.green_colorant[0], profile.blue_colorant[0]]
    expected = [(0.5151, 0.2412, -0.0011), (0.2920, 0.6922, 0.0419), (0.1571, 0.0666, 0.7841)]
    assert np.allclose(colorants, expected, atol=1e-4)
    assert (profile.profile_description, profile.xcolor_space, profile.version) == ("Display P3", "RGB ", 4.3)


# id: (profile, sRGB?)
SRGB_OR_NOT = {
    "littlecms-built-in-srgb": (LCMS_SRGB_ICC, True),
    "v4-srgb-built-by-the-tests": (SRGB_ICC, True),
    "display-p3": (DISPLAY_P3_ICC, False),
    "named-srgb-but-display-p3": (rgb_profile_bytes("sRGB IEC61966-2.1", DISPLAY_P3), False),  # names can lie
}


@pytest.mark.parametrize(("profile", "expected"), SRGB_OR_NOT.values(), ids=SRGB_OR_NOT)
def test_srgb_is_recognised_by_what_the_profile_does(profile: bytes, expected: bool) -> None:
    assert is_srgb(profile) is expected


def srgb_encode(linear: np.ndarray) -> np.ndarray:
    linear = np.clip(linear, 0.0, 1.0)
    return np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * linear ** (1 / 2.4) - 0.055)


def srgb_decode(encoded: np.ndarray) -> np.ndarray:
    return np.where(encoded <= 0.04045, encoded / 12.92, ((encoded + 0.055) / 1.055) ** 2.4)


def display_p3_to_srgb(pixels: np.ndarray) -> np.ndarray:
    """IEC 61966-2-1's curve, through XYZ by both spaces' matrices, in numpy: not littlecms."""
    p3_to_srgb = np.linalg.inv(rgb_to_xyz_d50(SRGB_PRIMARIES, (0.3127, 0.3290))) @ rgb_to_xyz_d50(
        DISPLAY_P3, (0.3127, 0.3290))
    return np.rint(255 * srgb_encode(srgb_decode(pixels / 255) @ p3_to_srgb.T)).astype(int)


def test_display_p3_pixels_become_their_srgb_values() -> None:
    # P3's primaries lie outside sRGB (clipped: relative colorimetric), greys and mid colours move less
    pixels = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [128, 128, 128], [200, 100, 50], [30, 160, 220]]],
                      dtype=np.uint8)
    converted = np.asarray(to_srgb(Image.fromarray(pixels), DISPLAY_P3_ICC)).astype(int)
    assert np.abs(converted - display_p3_to_srgb(pixels.astype(float))).max() <= 1
    assert converted[0, 3].tolist() == [128, 128, 128] and converted[0, 4].tolist() != [200, 100, 50]


@pytest.mark.parametrize("profile", [None, LCMS_SRGB_ICC, SRGB_ICC], ids=["none", "littlecms-srgb", "v4-srgb"])
def test_srgb_or_no_profile_is_not_converted(profile: bytes | None) -> None:
    image = Image.new("RGB", (4, 4), (200, 100, 50))
    assert to_srgb(image, profile) is image  # no copy, no time


def test_each_profiles_transform_is_built_once(monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[object] = []
    real = ImageCms.buildTransform
    monkeypatch.setattr(ImageCms, "buildTransform", lambda *args, **kwargs: built.append(args) or real(*args, **kwargs))
    colour._srgb_transform.cache_clear()
    for _ in range(3):
        to_srgb(Image.new("RGB", (2, 2)), DISPLAY_P3_ICC)
        is_srgb(SRGB_ICC)
    assert len(built) == 2


def with_info(mode: str, profile: object) -> Image.Image:
    image = Image.new(mode, (2, 2))
    image.info["icc_profile"] = profile
    return image


# id: (image, profile kept)
KEPT = {
    "rgb-display-p3": (with_info("RGB", DISPLAY_P3_ICC), DISPLAY_P3_ICC),
    "rgba-display-p3": (with_info("RGBA", DISPLAY_P3_ICC), DISPLAY_P3_ICC),
    "palette-display-p3": (with_info("P", DISPLAY_P3_ICC), DISPLAY_P3_ICC),
    "rgb-srgb": (with_info("RGB", LCMS_SRGB_ICC), LCMS_SRGB_ICC),  # kept: the output should say sRGB too
    "grey-with-an-rgb-profile": (with_info("L", DISPLAY_P3_ICC), None),
    "cmyk-with-an-rgb-profile": (with_info("CMYK", DISPLAY_P3_ICC), None),
    "rgb-with-a-lab-profile": (with_info("RGB", LAB_ICC), None),
    "unreadable": (with_info("RGB", b"\x00" * 200), None),
    "empty": (with_info("RGB", b""), None),
    "not-bytes": (with_info("RGB", "a string"), None),
    "none": (Image.new("RGB", (2, 2)), None),
}


@pytest.mark.parametrize(("image", "kept"), KEPT.values(), ids=KEPT)
def test_only_a_readable_rgb_profile_of_rgb_pixels_is_kept(image: Image.Image, kept: bytes | None) -> None:
    assert rgb_profile(image) == kept
