"""Fixtures shared by every test layer: the models the server can load."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BUNDLED_MODEL = REPO / "model" / "weights" / "unet.onnx"
EVENTS = REPO / "events"
PNGSUITE = REPO.parent / "shared" / "corpus" / "pngsuite" / "png"


@pytest.fixture(scope="session")
def bundled_model_path() -> Path:
    """The committed reference model (model/weights/unet.onnx)."""
    assert BUNDLED_MODEL.is_file(), "model/weights/unet.onnx is missing: it is committed with the repository"
    return BUNDLED_MODEL


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 4-wide UNet at 64x64, exported with the real exporter (parity verified): fast to run."""
    import torch

    from model.export import export_onnx
    from model.metadata import build_metadata
    from model.preprocessing import Preprocessing
    from model.unet import UNet, UNetConfig

    torch.manual_seed(0)
    prep = Preprocessing(height=64, width=64)
    identity = {"model_name": "tiny-test-unet", "model_version": "0.0.1", "training_data": "untrained"}
    path = tmp_path_factory.mktemp("models") / "tiny.onnx"
    export_onnx(UNet(UNetConfig(base_width=4)), prep, path, build_metadata(prep, identity, {}))
    return path
