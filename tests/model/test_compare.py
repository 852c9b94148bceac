"""model.compare: several models on the same held-out images score what model.evaluate says each scores."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from model.compare import main
from model.ensemble import main as ensemble_main
from model.evaluate import evaluate


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
