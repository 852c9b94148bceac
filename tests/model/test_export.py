"""Export: the ONNX file computes what PyTorch does, and says how to feed it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from model.convert import main as convert_main
from model.export import ExportMismatch, export_onnx, parity_inputs, verify_parity
from model.metadata import build_metadata, read_preprocessing
from model.preprocessing import Preprocessing
from model.unet import UNet, UNetConfig

IDENTITY = {"model_name": "test", "model_version": "9.9.9", "training_data": "none"}


@pytest.mark.parametrize(("height", "width"), [(64, 64), (48, 80)])
def test_export_matches_pytorch_at_two_sizes_and_batches(tmp_path: Path, height: int, width: int) -> None:
    torch.manual_seed(0)
    prep = Preprocessing(height=height, width=width)
    model = UNet(UNetConfig(base_width=4)).eval()
    path = tmp_path / "m.onnx"
    export_onnx(model, prep, path, build_metadata(prep, IDENTITY, {"iou": 0.5}))  # verifies batch 1 and 4
    onnx.checker.check_model(onnx.load(str(path)))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["image"] and [o.name for o in session.get_outputs()] == ["logits"]
    batch = np.random.default_rng(1).standard_normal((3, 3, height, width), dtype=np.float32)  # a third batch size
    with torch.no_grad():
        expected = model(torch.from_numpy(batch)).numpy()
    np.testing.assert_allclose(session.run(None, {"image": batch})[0], expected, atol=1e-4, rtol=0)


def test_metadata_carries_what_a_server_needs(tmp_path: Path) -> None:
    prep = Preprocessing(height=64, width=64)
    path = tmp_path / "m.onnx"
    export_onnx(UNet(UNetConfig(base_width=4)), prep, path, build_metadata(prep, IDENTITY, {"iou": 0.5}))
    metadata = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).get_modelmeta().custom_metadata_map
    assert read_preprocessing(metadata) == prep
    assert (metadata["model_name"], metadata["model_version"], metadata["threshold"]) == ("test", "9.9.9", "0.5")
    assert json.loads(metadata["metrics"]) == {"iou": 0.5}
    assert metadata["layout"] == "NCHW" and metadata["channel_order"] == "RGB"


def test_a_file_that_differs_from_pytorch_fails_loudly(tmp_path: Path) -> None:
    # GIVEN an ONNX file exported from one set of weights
    prep = Preprocessing(height=64, width=64)
    path = tmp_path / "m.onnx"
    torch.manual_seed(0)
    export_onnx(UNet(UNetConfig(base_width=4)), prep, path, build_metadata(prep, IDENTITY, {}))
    # WHEN it is checked against different weights THEN the mismatch is caught
    torch.manual_seed(1)
    with pytest.raises(ExportMismatch, match="differs from PyTorch"):
        verify_parity(UNet(UNetConfig(base_width=4)).eval(), path, parity_inputs(prep, 3))


def test_convert_exports_an_old_pth_with_parity(tmp_path: Path) -> None:
    torch.save(
        {"state_dict": {f"module.{k}": v for k, v in UNet(UNetConfig(base_width=4)).state_dict().items()}},
        tmp_path / "old.pth",
    )
    convert_main([str(tmp_path / "old.pth"), str(tmp_path / "old.onnx"), "--image-size", "64", "--name", "old"])
    metadata = onnx.load(str(tmp_path / "old.onnx")).metadata_props
    assert {p.key: p.value for p in metadata}["model_name"] == "old"
