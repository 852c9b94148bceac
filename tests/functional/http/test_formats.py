"""POST /predict's formats and outputs: format=, Accept, quality, cutout, json; what each answer says it is."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as coco_mask

from tests.support import encode, noise

IMAGE = noise(57, 31, seed=4)
DATA = encode(IMAGE)


def post(client: Any, query: str = "", accept: str | None = None) -> Any:
    headers = {"accept": accept} if accept is not None else {}
    return client.post(f"/predict?{query}", files={"file": ("a.png", DATA, "image/png")}, headers=headers)


def mask_of(client: Any) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(post(client, "output=mask&threshold=0.5").content))) == 255


# id: (query, Accept, Content-Type, Pillow format and mode, or None for JSON)
COMBINATIONS = {
    "default-png": ("", None, "image/png", ("PNG", "RGB")),
    "overlay-jpeg": ("format=jpeg", None, "image/jpeg", ("JPEG", "RGB")),
    "overlay-webp": ("format=webp", None, "image/webp", ("WEBP", "RGB")),
    "mask-png": ("output=mask", None, "image/png", ("PNG", "L")),
    "mask-jpeg": ("output=mask&format=jpeg", None, "image/jpeg", ("JPEG", "L")),
    "mask-webp": ("output=mask&format=webp", None, "image/webp", ("WEBP", "RGB")),
    "cutout-png": ("output=cutout", None, "image/png", ("PNG", "RGBA")),
    "cutout-webp": ("output=cutout&format=webp", None, "image/webp", ("WEBP", "RGBA")),
    "json": ("output=json", None, "application/json", None),
    "json-ignores-format": ("output=json&format=webp", "image/jpeg", "application/json", None),
    "accept-webp": ("", "image/webp", "image/webp", ("WEBP", "RGB")),
    "accept-jpeg-q": ("", "image/webp;q=0.4, image/jpeg", "image/jpeg", ("JPEG", "RGB")),
    "accept-any": ("", "*/*", "image/png", ("PNG", "RGB")),
    "format-beats-accept": ("format=png", "image/webp", "image/png", ("PNG", "RGB")),
    "cutout-accept-jpeg": ("output=cutout", "image/jpeg", "image/png", ("PNG", "RGBA")),
}


@pytest.mark.parametrize(("query", "accept", "content_type", "decoded"), COMBINATIONS.values(), ids=COMBINATIONS)
def test_each_combination_says_what_it_sent(
    make_client: Callable, query: str, accept: str | None, content_type: str, decoded: tuple[str, str] | None
) -> None:
    response = post(make_client(), f"{query}&threshold=0.5", accept)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == content_type
    assert response.headers["vary"] == "Accept"
    if decoded is None:
        assert json.loads(response.content)["mask"]["size"] == [31, 57]
        return
    picture = Image.open(io.BytesIO(response.content))
    assert (picture.format, picture.mode, picture.size) == (*decoded, (57, 31))


def test_quality_changes_the_lossy_result(make_client: Callable) -> None:
    client = make_client()
    sizes = [len(post(client, f"format=jpeg&quality={quality}").content) for quality in (5, 50, 100)]
    assert sizes[0] < sizes[1] < sizes[2]


@pytest.mark.parametrize("quality", ["0", "101", "high"])
def test_quality_out_of_range_is_a_422(make_client: Callable, quality: str) -> None:
    response = post(make_client(), f"format=jpeg&quality={quality}")
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "quality"]


def test_a_jpeg_cutout_is_a_422_saying_jpeg_has_no_alpha(make_client: Callable) -> None:
    response = post(make_client(), "output=cutout&format=jpeg")
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert "JPEG has no alpha channel" in error["msg"] and "format=png or format=webp" in error["msg"]


def test_the_cutout_is_the_image_where_the_mask_is_set_and_transparent_elsewhere(make_client: Callable) -> None:
    client = make_client()
    mask = mask_of(client)
    assert mask.any() and not mask.all()
    pixels = np.asarray(Image.open(io.BytesIO(post(client, "output=cutout&threshold=0.5").content)))
    assert np.array_equal(pixels[mask][:, :3], np.asarray(IMAGE)[mask]) and np.all(pixels[mask][:, 3] == 255)
    assert np.all(pixels[~mask] == 0)


@pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")  # pycocotools' decode
def test_json_carries_the_numbers_and_the_mask_exactly(make_client: Callable, tiny_model_path: Any) -> None:
    import hashlib

    client = make_client()
    mask = mask_of(client)
    document = post(client, "output=json&threshold=0.5").json()
    rows, columns = np.nonzero(mask)
    assert document["width"] == 57 and document["height"] == 31
    assert document["foreground_fraction"] == pytest.approx(mask.mean())
    assert document["bounding_box"] == {"left": int(columns.min()), "top": int(rows.min()),
                                        "right": int(columns.max()) + 1, "bottom": int(rows.max()) + 1}
    assert document["model"] == {"name": "tiny-test-unet", "version": "0.0.1",
                                 "sha256": hashlib.sha256(tiny_model_path.read_bytes()).hexdigest()}
    rle = document["mask"]
    assert np.array_equal(coco_mask.decode({"size": rle["size"], "counts": rle["counts"].encode()}).astype(bool), mask)


def test_a_result_over_the_response_limit_names_the_two_ways_out(make_client: Callable) -> None:
    response = post(make_client(MAX_RESPONSE_BYTES=100))
    assert response.status_code == 413
    detail = response.json()["detail"]
    assert "over the 100-byte response limit (MAX_RESPONSE_BYTES)" in detail
    assert "format=jpeg or format=webp" in detail and "POST /uploads" in detail


def test_a_lossy_result_at_the_default_quality_is_lowered_to_fit_the_response(make_client: Callable) -> None:
    # GIVEN a response limit that the default JPEG quality (85) misses and 40 meets
    big = encode(noise(400, 300, seed=2))
    sizes = {quality: len(make_client().post(f"/predict?format=jpeg&quality={quality}",
                                             files={"file": ("a.png", big, "image/png")}).content)
             for quality in (85, 40)}
    client = make_client(MAX_RESPONSE_BYTES=sizes[40])
    fitted = client.post("/predict?format=jpeg", files={"file": ("a.png", big, "image/png")})
    # THEN a JPEG that fits comes back, not a 413; a quality asked for is kept, and may not fit
    assert fitted.status_code == 200 and len(fitted.content) == sizes[40] < sizes[85]
    exact = client.post("/predict?format=jpeg&quality=85", files={"file": ("a.png", big, "image/png")})
    assert exact.status_code == 413
