"""An ensemble with test-time flips, built by model.ensemble, served by the app unchanged (same contract)."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from app.core.settings import Settings
from app.runtime import build_holder
from model.ensemble import main as build_ensemble
from tests.support import encode, noise


@pytest.fixture(scope="module")
def ensemble_path(tiny_model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ensemble") / "ens.onnx"
    build_ensemble([str(tiny_model_path), str(tiny_model_path), "-o", str(path), "--weights", "2", "1",
                    "--tta", "flips", "--name", "tiny-ensemble", "--version", "0.1.0"])
    return path


def test_the_ensemble_is_served_like_any_model(make_client: Callable, ensemble_path: Path) -> None:
    client = make_client(holder=build_holder(Settings(MODEL_URI=str(ensemble_path))))
    health = client.get("/health").json()
    assert (health["status"], health["model"]["name"], health["model"]["version"]) == ("ready", "tiny-ensemble",
                                                                                        "0.1.0")
    response = client.post("/predict?output=mask", files={"file": ("a.png", encode(noise(41, 29)), "image/png")})
    assert response.status_code == 200
    mask = np.asarray(Image.open(io.BytesIO(response.content)))
    assert mask.shape == (29, 41) and set(np.unique(mask)) <= {0, 255}


def test_an_image_and_its_mirror_get_mirrored_masks(make_client: Callable, ensemble_path: Path) -> None:
    """With all four flips averaged, the ensemble is exactly mirror-symmetric: its masks must be too."""
    client = make_client(holder=build_holder(Settings(MODEL_URI=str(ensemble_path))))
    image = noise(48, 32, seed=7)

    def mask(picture: Image.Image) -> np.ndarray:
        response = client.post("/predict?output=mask&threshold=0.5", files={"file": ("a.png", encode(picture))})
        return np.asarray(Image.open(io.BytesIO(response.content)))

    mirrored = mask(image.transpose(Image.Transpose.FLIP_LEFT_RIGHT))
    assert np.array_equal(mirrored, mask(image)[:, ::-1])
