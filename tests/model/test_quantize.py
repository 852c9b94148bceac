"""Quantisation: the int8 model keeps the metadata contract, runs int8 kernels, and is gated on accuracy."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from model import quantize
from model.evaluate import evaluate
from model.metadata import read_preprocessing
from model.preprocessing import Preprocessing
from model.quantize import GateResult, calibration_inputs, compare_on_heldout
from model.scoring import labelled_photos
from model.synthetic import HELDOUT_SEED

FAST = ["--calibration-images", "8", "--gate-images", "8"]
# The tiny model is untrained: its int8 masks agree with its float masks on ~2/3 of the
# foreground, so the defaults (0.99) fail it, and these explicit bounds pass it.
LENIENT = ["--min-mask-iou", "0.5", "--max-iou-drop", "0.05"]


def run_quantize(argv: list[str]) -> dict[str, Any]:
    """``python -m model.quantize ARGV``: the JSON printed last."""
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        quantize.main(argv)
    return json.loads(stdout.getvalue().strip().splitlines()[-1])


@pytest.fixture(scope="module")
def int8_model(tiny_model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("int8") / "tiny-int8.onnx"
    return out, run_quantize([str(tiny_model_path), str(out), *FAST, *LENIENT])


def metadata_of(path: Path) -> dict[str, str]:
    return {prop.key: prop.value for prop in onnx.load(str(path)).metadata_props}


def test_the_int8_model_keeps_the_float_models_metadata(int8_model: tuple[Path, dict], tiny_model_path: Path) -> None:
    out, result = int8_model
    source, metadata = metadata_of(tiny_model_path), metadata_of(out)
    own = {"metrics", "model_version"}  # the int8 model's own: its gate's figures, its version
    assert {key: metadata[key] for key in source if key not in own} == {k: v for k, v in source.items() if k not in own}
    assert metadata["model_version"] == f"{source['model_version']}+int8"
    assert json.loads(metadata["metrics"]) == {"held_out": {"images": 8, "iou": result["gate"]["iou_int8"],
                                                            "mask_iou_vs_float": result["gate"]["mask_iou"]}}
    assert read_preprocessing(metadata) == Preprocessing(height=64, width=64)
    assert metadata["precision"] == "int8"
    quantization, gate = json.loads(metadata["quantization"]), json.loads(metadata["quantization_gate"])
    assert quantization["calibration_set"]["seed"] == 0 and quantization["calibration_set"]["images"] == 8
    assert (quantization["calibration"], quantization["activations"]) == ("MinMax", "uint8")
    assert gate == result["gate"] and gate["passed"] and gate["images"] == 8
    assert result["size_bytes"] == out.stat().st_size


def test_the_int8_model_runs_int8_convolutions(int8_model: tuple[Path, dict], tmp_path: Path) -> None:
    # GIVEN the file: conv weights stored as int8, MaxPool reading float tensors (the graph pass)
    out, _ = int8_model
    graph = onnx.load(str(out)).graph
    int8_weights = [t for t in graph.initializer if t.data_type == onnx.TensorProto.INT8 and len(t.dims) == 4]
    producers = {output: node.op_type for node in graph.node for output in node.output}
    convs = [node for node in graph.node if node.op_type == "Conv"]
    assert len(int8_weights) == len(convs) - 1  # all but the last (float logits)
    assert all(producers.get(n.input[0]) != "DequantizeLinear" for n in graph.node if n.op_type == "MaxPool")
    # WHEN onnxruntime optimises it THEN every conv but the last becomes a QLinearConv
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    ort.InferenceSession(str(out), options, providers=["CPUExecutionProvider"])
    optimized = [node.op_type for node in onnx.load(options.optimized_model_filepath).graph.node]
    assert (optimized.count("QLinearConv"), optimized.count("Conv")) == (len(convs) - 1, 1)


def test_evaluate_takes_the_int8_model_as_it_is(int8_model: tuple[Path, dict]) -> None:
    result = evaluate(int8_model[0], limit=3)
    assert result["images"] == 3 and result["input_size"] == "64x64" and 0.0 <= float(result["iou"]) <= 1.0


def test_a_failing_gate_exits_nonzero_and_writes_nothing(tiny_model_path: Path, tmp_path: Path) -> None:
    # GIVEN the untrained tiny model, whose int8 masks drift from its float masks
    out = tmp_path / "int8.onnx"
    # WHEN it is quantised with the default bounds (mask IoU >= 0.99)
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout), pytest.raises(SystemExit) as exited:
        quantize.main([str(tiny_model_path), str(out), *FAST])
    # THEN it exits 1, says why on its last line, and leaves no file behind (not even a partial one)
    assert exited.value.code == 1
    gate = json.loads(stdout.getvalue().strip().splitlines()[-1])["gate"]
    assert not gate["passed"] and gate["mask_iou"] < 0.99
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("iou_int8", "mask_iou", "passed"),
    [
        (0.985, 0.99, True),  # both exactly at the bound (IoU drop 0.005)
        (0.98499, 0.99, False),  # IoU drop 0.00501
        (0.985, 0.98999, False),  # masks just under
        (0.995, 1.0, True),  # int8 scoring higher than float is no failure
    ],
)
def test_the_gate_bounds_are_inclusive(iou_int8: float, mask_iou: float, passed: bool) -> None:
    assert GateResult(500, 0.99, iou_int8, mask_iou, min_mask_iou=0.99, max_iou_drop=0.005).passed is passed


def test_the_gate_compares_masks_against_the_float_model(tiny_model_path: Path) -> None:
    iou_float, iou_int8, mask_iou = compare_on_heldout(tiny_model_path, tiny_model_path, images=2)
    assert (iou_int8, mask_iou) == (iou_float, 1.0)


def test_calibration_refuses_the_heldout_seed(tiny_model_path: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="held-out"):
        calibration_inputs(Preprocessing(height=64, width=64), 2, seed=HELDOUT_SEED)
    with pytest.raises(SystemExit) as exited:
        quantize.main([str(tiny_model_path), str(tmp_path / "x.onnx"), "--calibration-seed", str(HELDOUT_SEED)])
    assert exited.value.code == 2 and list(tmp_path.iterdir()) == []


def test_calibration_draws_generated_training_frames(
    tiny_model_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a record of every data set the calibration step opens
    seeds: list[int] = []

    class Recorded(quantize.SyntheticDataset):
        def __init__(self, length: int, preprocessing: Preprocessing, seed: int = 0) -> None:
            seeds.append(seed)
            super().__init__(length, preprocessing, seed)

    monkeypatch.setattr(quantize, "SyntheticDataset", Recorded)
    # WHEN a model is quantised THEN calibration used training seed 0 only, as images in the served range
    run_quantize([str(tiny_model_path), str(tmp_path / "int8.onnx"), *LENIENT, "--calibration-images", "2",
                  "--gate-images", "2"])
    assert seeds == [0]
    prep = Preprocessing(height=64, width=64)
    inputs = calibration_inputs(prep, 2)
    lowest, highest = ((0 - np.array(prep.mean)) / prep.std).min(), ((1 - np.array(prep.mean)) / prep.std).max()
    assert inputs.shape == (2, 3, 64, 64) and lowest - 1e-5 <= inputs.min() and inputs.max() <= highest + 1e-5


SHIPPED = Path(__file__).resolve().parents[2] / "model" / "weights" / "unet-int8.onnx"
CARD = SHIPPED.with_name("MODEL_CARD.md")


def test_the_shipped_int8_model_passed_the_default_gate_on_test_photos_and_its_card_names_it(
    bundled_model_path: Path,
) -> None:
    metadata, source = metadata_of(SHIPPED), metadata_of(bundled_model_path)
    shared = set(source) - {"metrics", "model_version"}
    assert {key: metadata[key] for key in shared} == {key: source[key] for key in shared}
    assert metadata["precision"] == "int8" and metadata["model_version"] == "2.0.0+int8"
    gate = json.loads(metadata["quantization_gate"])
    assert json.loads(metadata["metrics"]) == {"test": {"images": 80, "iou": gate["iou_int8"],
                                                        "mask_iou_vs_float": gate["mask_iou"]}}
    # gated on the 80 test photos of model.ccp's split, at the defaults, calibrated on training photos
    assert gate["passed"] and gate["images"] == 80
    assert (gate["min_mask_iou"], gate["max_iou_drop"]) == (quantize.MIN_MASK_IOU, quantize.MAX_IOU_DROP)
    assert gate["mask_iou"] >= 0.99 and gate["iou_float"] - gate["iou_int8"] <= 0.005
    how = json.loads(metadata["quantization"])
    assert (how["gate_set"], how["calibration_set"]["data"]) == ("test", "photos of train (evenly spread)")
    assert hashlib.sha256(SHIPPED.read_bytes()).hexdigest() in CARD.read_text()
    assert SHIPPED.stat().st_size < 40_000_000


PHOTOS = Path(__file__).resolve().parents[1] / "photos"


def test_quantizing_on_photos_calibrates_on_them_and_gates_at_their_own_size(tiny_model_path: Path,
                                                                            tmp_path: Path) -> None:
    # WHEN the tiny model is quantised on the committed photos (calibration and gate)
    result = run_quantize([str(tiny_model_path), str(tmp_path / "int8.onnx"), *LENIENT, "--calibration-images", "3",
                           "--calibration-data", str(PHOTOS), "--gate-data", str(PHOTOS)])
    # THEN the gate scored the five photos, and the file says how it was made
    assert result["gate"]["images"] == 5 and result["gate"]["passed"]
    metadata = metadata_of(tmp_path / "int8.onnx")
    assert list(json.loads(metadata["metrics"])) == ["test"]
    how = json.loads(metadata["quantization"])
    assert how["calibration_set"] == {"images": 3, "data": "photos of photos (evenly spread)"}
    assert how["gate_set"] == "photos"


def test_photo_calibration_takes_evenly_spread_photos_as_served() -> None:
    prep = Preprocessing(height=64, width=64)
    inputs = quantize.photo_calibration_inputs(prep, PHOTOS, 2)
    photos = labelled_photos(PHOTOS)
    expected = np.concatenate([prep.image_to_input(photos[0].photo), prep.image_to_input(photos[-1].photo)])
    np.testing.assert_array_equal(inputs, expected)  # the first and the last of five

