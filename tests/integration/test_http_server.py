"""The real server: uvicorn in a subprocess serving the bundled model, called as the seed's client calls it."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import requests
from PIL import Image

from tests.servers import make_serve
from tests.support import BUNDLED_MODEL, REPO, sha256_of


@pytest.fixture(scope="module")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`make serve` itself, typed in the checkout, on a free loopback port.

    MODEL_URI is given relative to where the command is typed, as a newcomer would
    (``MODEL_URI=runs/mine/unet.onnx make serve``): it must name the same file for the server.
    """
    with make_serve({"MODEL_URI": "model/weights/unet.onnx"}, tmp_path_factory.mktemp("server") / "server.log") as url:
        yield url


@pytest.mark.slow
def test_seed_client_gets_an_overlay_of_the_same_size(server_url: str, tmp_path: Path) -> None:
    # GIVEN a photo on disk, as the seed's client has
    path = tmp_path / "image.jpg"
    pixels = np.random.default_rng(0).integers(0, 256, (241, 319, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, format="JPEG")
    # WHEN posted exactly as the seed's client does
    with open(path, "rb") as handle:
        response = requests.post(f"{server_url}/predict", files={"file": handle}, timeout=60)
    # THEN a PNG of the photo's size comes back
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    overlay = Image.open(io.BytesIO(response.content))
    assert (overlay.format, overlay.mode, overlay.size) == ("PNG", "RGB", (319, 241))


@pytest.mark.slow
def test_root_health_and_errors_over_the_wire(server_url: str) -> None:
    assert requests.get(f"{server_url}/", timeout=10).json() == {"message": "UNet API is running!"}
    health = requests.get(f"{server_url}/health", timeout=10).json()
    assert (health["status"], health["model"]["name"]) == ("ready", "unet-person-ccp")
    assert health["model"]["sha256"] == sha256_of(BUNDLED_MODEL)  # the relative MODEL_URI found the file
    refused = requests.post(f"{server_url}/predict", files={"file": ("a.txt", b"not an image")}, timeout=10)
    assert refused.status_code == 400
    assert "not a recognised image" in refused.json()["detail"]


@pytest.mark.slow
def test_the_served_masks_are_the_offline_ones_on_real_photos(server_url: str) -> None:
    """model.served: the committed test photos through POST /predict?output=mask score what model.evaluate does."""
    from model.served import served_vs_offline

    result = served_vs_offline(server_url, REPO / "tests" / "photos", BUNDLED_MODEL)
    assert result["served"]["images"] == 5 and result["iou_difference"] == 0.0
    assert result["mask_agreement"] >= 0.99999  # every pixel, but for a probability within ~1e-7 of the threshold
    assert result["served"]["iou"] >= 0.9  # the card's golden floors are 0.89-0.95 per photo
