"""model.compare: several models on the same held-out images score what model.evaluate says each scores."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from model.compare import main
from model.ensemble import main as ensemble_main
from model.evaluate import evaluate, evaluate_photos


def test_interleaved_scores_are_each_models_own(
    tiny_model_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a model and its flips ensemble
    flips = tmp_path / "flips.onnx"
    ensemble_main([str(tiny_model_path), "-o", str(flips), "--tta", "flips"])
    capsys.readouterr()
    # WHEN compared on 6 held-out images in batches of 4 (one full batch, one partial)
    main([str(tiny_model_path), str(flips), "--limit", "6", "--batch-size", "4"])
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    # THEN each scores exactly as model.evaluate scores it alone, with a time per image
    for path, result in zip((tiny_model_path, flips), summary["models"], strict=True):
        alone = evaluate(path, 6, batch_size=4)
        assert {key: result[key] for key in ("iou", "dice", "mean_image_iou")} == {
            key: alone[key] for key in ("iou", "dice", "mean_image_iou")
        }
        assert result["model"] == str(path) and result["ms_per_image"] > 0
    assert summary["images"] == 6 and summary["load_average_1min"]["max"] >= summary["load_average_1min"]["min"]


PHOTOS = Path(__file__).resolve().parents[1] / "photos"
SHARED = Path(__file__).resolve().parents[3] / "shared"  # beside the checkout, as on CI
MEDIAPIPE = SHARED / "models" / "mediapipe-selfie" / "selfie_segmentation.tflite"


@pytest.fixture
def mediapipe_model() -> Path:
    if not MEDIAPIPE.is_file():
        pytest.skip(f"{MEDIAPIPE} is not here (shared/ beside the checkout)")
    return MEDIAPIPE


def test_photos_compare_our_models_with_mediapipe_by_the_same_code(
    tiny_model_path: Path, mediapipe_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # WHEN an ONNX model and MediaPipe's selfie segmenter are compared on the committed photos
    main([str(tiny_model_path), str(mediapipe_model), "--data", str(PHOTOS), "--markdown"])
    lines = capsys.readouterr().out.strip().splitlines()
    summary = json.loads(lines[-1])
    ours, mediapipe = summary["models"]
    # THEN each scores what model.evaluate's photo path scores, on the same five photos
    alone = evaluate_photos(tiny_model_path, PHOTOS, None)
    assert {key: ours[key] for key in ("iou", "dice", "boundary_f")} == {key: alone[key] for key in
                                                                          ("iou", "dice", "boundary_f")}
    assert (ours["images"], mediapipe["images"], mediapipe["name"]) == (5, 5, "mediapipe-selfie")
    assert mediapipe["iou"] > 0.85 and mediapipe["size_bytes"] == 249_024  # a real person segmenter, run right
    # AND the table has one row per model
    assert lines[0].startswith("| model | file | pooled IoU") and lines[3].startswith("| mediapipe-selfie |")
