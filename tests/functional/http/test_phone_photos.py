"""POST /predict with photos as phones save them: HEIC and AVIF, turned by their container, in Display P3."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tests.samples import DISPLAY_P3_ICC, declaring, heic, oriented
from tests.support import expected_overlay, noise

UPRIGHT = noise(48, 32, seed=11)  # landscape, as seen; stored turned (portrait) with irot saying so
STORED = UPRIGHT.transpose(Image.Transpose.ROTATE_90)
PHOTOS = {  # id: (bytes, the largest difference from UPRIGHT's pixels the format allows)
    "heic": (oriented("HEIF", STORED, container=6, icc_profile=DISPLAY_P3_ICC), 0),  # lossless
    "avif": (oriented("AVIF", STORED, container=6, icc_profile=DISPLAY_P3_ICC), 6),  # quality 100, 4:4:4
}
COLOR, ALPHA = (255, 59, 48), 0.5  # the settings' defaults


def post(client: Any, data: bytes, query: str = "") -> Any:
    return client.post(f"/predict?threshold=0.5&{query}", files={"file": ("IMG_0001.jpg", data, "image/jpeg")})


def picture(response: Any) -> Image.Image:
    assert response.status_code == 200, response.text
    return Image.open(io.BytesIO(response.content))


@pytest.mark.parametrize(("data", "tolerance"), PHOTOS.values(), ids=PHOTOS)
def test_a_phone_photo_gets_an_upright_overlay_in_its_own_colours(
    make_client: Callable, data: bytes, tolerance: int
) -> None:
    # GIVEN a photo stored portrait with irot, named and typed as a JPEG (neither is looked at)
    client = make_client()
    # WHEN the overlay and the mask are asked for
    overlay, mask = picture(post(client, data)), picture(post(client, data, "output=mask"))
    # THEN both are upright, the overlay tints the photo's own pixels and carries its profile
    assert (overlay.size, mask.size) == ((48, 32), (48, 32))
    assert overlay.info["icc_profile"] == DISPLAY_P3_ICC and "icc_profile" not in mask.info
    expected = expected_overlay(np.asarray(UPRIGHT), np.asarray(mask) == 255, COLOR, ALPHA)
    assert np.abs(np.asarray(overlay, np.int16) - expected).max() <= tolerance


@pytest.mark.parametrize("image_format", ["jpeg", "webp"])
@pytest.mark.parametrize(("data", "tolerance"), PHOTOS.values(), ids=PHOTOS)
def test_lossy_results_carry_the_profile_too(make_client: Callable, data: bytes, tolerance: int,
                                             image_format: str) -> None:
    result = picture(post(make_client(), data, f"format={image_format}"))
    assert (result.format, result.size, result.info["icc_profile"]) == (image_format.upper(), (48, 32),
                                                                         DISPLAY_P3_ICC)


# id: (upload, status, start of the detail)
REFUSED = {
    "heic-declaring-121-megapixels": (declaring(heic(noise(64, 64)), 11_000, 11_000), 413,
                                      "the image is 11000x11000 = 121000000 pixels, over the"),
    "truncated-heic": (heic(noise(64, 64))[:-100], 400, "the image could not be decoded"),
}


@pytest.mark.parametrize(("data", "status", "detail"), REFUSED.values(), ids=REFUSED)
def test_bad_heic_uploads_are_refused_like_any_other(make_client: Callable, data: bytes, status: int,
                                                     detail: str) -> None:
    response = post(make_client(), data)
    assert response.status_code == status and response.json()["detail"].startswith(detail)
