"""Scoring on photos at their own size: the figures the model card reports, checked by hand-made masks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from model.scoring import (
    LabelledPhoto,
    PhotoScore,
    boundary,
    boundary_f_score,
    labelled_photos,
    predict_mask,
    sweep_thresholds,
)


def square(size: int, top: int, left: int, side: int) -> np.ndarray:
    mask = np.zeros((size, size), dtype=bool)
    mask[top : top + side, left : left + side] = True
    return mask


def test_boundary_is_the_masks_pixels_touching_background() -> None:
    edges = boundary(square(6, 1, 1, 4))
    assert edges.sum() == 12 and not edges[2:4, 2:4].any()


@pytest.mark.parametrize(
    ("mask", "truth", "expected"),
    [
        (square(100, 10, 10, 50), square(100, 10, 10, 50), 1.0),  # identical
        (square(100, 10, 11, 50), square(100, 10, 10, 50), 1.0),  # 1 px off: within 1% of a 141 px diagonal
        # 20 px off: of each square's 196 edge pixels only the 64 on the shared top and bottom rows match
        (square(100, 10, 30, 50), square(100, 10, 10, 50), 64 / 196),
        (np.zeros((10, 10), bool), np.zeros((10, 10), bool), 1.0),  # neither has a boundary
        (np.zeros((10, 10), bool), square(10, 2, 2, 4), 0.0),  # nothing found
    ],
)
def test_boundary_f_score(mask: np.ndarray, truth: np.ndarray, expected: float) -> None:
    assert boundary_f_score(mask, truth) == pytest.approx(expected, abs=1e-12)


def test_photo_score_pools_pixels_and_averages_photos() -> None:
    # GIVEN two photos: one predicted exactly (4 px), one with 2 of 6 px wrong
    score = PhotoScore()
    score.add(square(4, 0, 0, 2), square(4, 0, 0, 2))
    predicted, truth = np.zeros((2, 4), bool), np.zeros((2, 4), bool)
    predicted[0, :3], truth[0, 1:4] = True, True  # intersection 2, union 4
    score.add(predicted, truth)
    result = score.result()
    # THEN pooled IoU is 6/8, Dice 2*6/(7+7), the mean per-photo IoU (1 + 0.5) / 2
    assert (result["iou"], result["dice"], result["mean_image_iou"]) == (0.75, round(12 / 14, 5), 0.75)
    assert result["images"] == 2


class HalfPredictor:
    """Probabilities rising left to right, at 4x4: the left half under 0.5."""

    name, path, threshold, view_size = "ramp", Path("ramp"), 0.5, None

    def probabilities(self, photo: Image.Image) -> np.ndarray:
        return np.tile(np.array([0.1, 0.3, 0.7, 0.9], dtype=np.float32), (4, 1))


def test_masks_come_back_at_the_photos_own_size_through_the_services_upsampling() -> None:
    mask = predict_mask(HalfPredictor(), LabelledPhoto("blank", Image.new("RGB", (40, 30)), np.zeros((30, 40), bool)))
    assert mask.shape == (30, 40)
    assert not mask[:, :19].any() and mask[:, 21:].all()


def test_sweeping_thresholds_scores_each_on_the_same_probabilities(tmp_path: Path) -> None:
    for folder in ("images", "masks"):
        (tmp_path / folder).mkdir()
    Image.new("RGB", (40, 30)).save(tmp_path / "images" / "a.png")
    truth = np.zeros((30, 40), np.uint8)
    truth[:, 20:] = 255
    Image.fromarray(truth).save(tmp_path / "masks" / "a.png")
    by_threshold = sweep_thresholds(HalfPredictor(), labelled_photos(tmp_path), [0.05, 0.5, 0.95])
    assert by_threshold["0.05"] == 0.5 and by_threshold["0.95"] == 0.0
    assert by_threshold["0.5"] == pytest.approx(1.0, abs=0.06)


def test_a_mask_of_another_size_than_its_photo_is_an_error(tmp_path: Path) -> None:
    for folder in ("images", "masks"):
        (tmp_path / folder).mkdir()
    Image.new("RGB", (40, 30)).save(tmp_path / "images" / "a.jpg")
    Image.new("L", (20, 30)).save(tmp_path / "masks" / "a.png")
    with pytest.raises(ValueError, match=r"a.png is 20x30, its photo \(40, 30\)"):
        labelled_photos(tmp_path)
