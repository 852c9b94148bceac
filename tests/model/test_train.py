"""Training: the loss falls, checkpoints rebuild their model, runs resume."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from model.augment import augment_batch
from model.datasets import SyntheticDataset, materialise
from model.losses import OverlapMeter, dice_bce_loss
from model.preprocessing import Preprocessing
from model.synthetic import HELDOUT_SEED
from model.train import learning_rate, main
from model.unet import UNet, UNetConfig

TINY_RUN = [
    "--image-size",
    "64",
    "--base-width",
    "4",
    "--train-size",
    "16",
    "--val-size",
    "4",
    "--batch-size",
    "4",
    "--workers",
    "0",
    "--device",
    "cpu",
]


def test_a_tiny_unet_learns_the_generated_task() -> None:
    # GIVEN 8 generated frames at 64x64 and a 4-wide UNet
    torch.manual_seed(0)
    prep = Preprocessing(height=64, width=64)
    images, masks = materialise(SyntheticDataset(8, prep, seed=0), workers=0, label="test").tensors
    model = UNet(UNetConfig(base_width=4, dropouts=(0.0, 0.0, 0.0, 0.0)))
    optimiser = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    # WHEN it trains for 60 steps
    for _ in range(60):
        pixels, targets = augment_batch(images, masks)
        loss = dice_bce_loss(model(prep.normalise(pixels)), targets)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    # THEN the loss has clearly fallen
    assert sum(losses[-5:]) / 5 < 0.8 * sum(losses[:5]) / 5


def test_training_writes_checkpoints_that_rebuild_and_resume(tmp_path: Path) -> None:
    main([*TINY_RUN, "--epochs", "1", "--out", str(tmp_path)])
    checkpoint = torch.load(tmp_path / "best.pt", weights_only=False)
    assert checkpoint["config"]["base_width"] == 4
    assert checkpoint["preprocessing"]["height"] == 64 and checkpoint["preprocessing"]["mean"] == [0.485, 0.456, 0.406]
    assert set(checkpoint["metrics"]) == {"iou", "dice"}
    UNet(UNetConfig.from_dict(checkpoint["config"])).load_state_dict(checkpoint["model"], strict=True)
    # resuming continues the step count instead of starting over
    main([*TINY_RUN, "--epochs", "2", "--out", str(tmp_path), "--resume", str(tmp_path / "last.pt")])
    assert torch.load(tmp_path / "last.pt", weights_only=False)["step"] == 2 * 16 // 4


def test_max_minutes_bounds_data_preparation_too(tmp_path: Path) -> None:
    # GIVEN far more data than 3 s can make (half of the budget goes to data at most)
    big = [arg if arg != "16" else "20000" for arg in TINY_RUN]
    main([*big, "--max-minutes", "0.05", "--out", str(tmp_path)])
    # THEN it stopped early with a usable checkpoint: fewer steps than one epoch of 20,000 images
    checkpoint = torch.load(tmp_path / "last.pt", weights_only=False)
    assert 1 <= checkpoint["step"] < 20000 // 4


def test_training_refuses_the_heldout_seed(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="reserved"):
        main([*TINY_RUN, "--seed", str(HELDOUT_SEED), "--out", str(tmp_path)])


@pytest.mark.parametrize(
    ("fraction", "expected"),
    [(0.0, 0.0), (0.015, 0.5), (0.03, 1.0), (0.515, 0.5), (1.0, 0.0)],
)
def test_schedule_warms_up_then_follows_a_cosine(fraction: float, expected: float) -> None:
    assert learning_rate(1.0, fraction) == pytest.approx(expected, abs=1e-9)


def test_overlap_meter_pools_over_the_data_set() -> None:
    meter = OverlapMeter()
    meter.update(torch.tensor([1, 1, 0, 0]), torch.tensor([1, 0, 0, 0]))
    meter.update(torch.tensor([0, 0]), torch.tensor([1, 1]))
    assert meter.iou == pytest.approx(1 / 4)
    assert meter.dice == pytest.approx(2 * 1 / (2 + 3))


def test_training_on_a_folder_dataset(tmp_path: Path) -> None:
    # GIVEN a user's folder: images/ and masks/ matched by stem (a bright square on grey)
    for folder in ("images", "masks"):
        (tmp_path / "data" / folder).mkdir(parents=True)
    for index in range(10):
        image = Image.new("RGB", (90, 70), (90, 90, 90))
        image.paste((250, 250, 250), (10 + index, 10, 50 + index, 50))
        image.save(tmp_path / "data" / "images" / f"{index:02d}.jpg")
        mask = Image.new("L", (90, 70), 0)
        mask.paste(255, (10 + index, 10, 50 + index, 50))
        mask.save(tmp_path / "data" / "masks" / f"{index:02d}.png")
    # WHEN trained for an epoch THEN it checkpoints with the folder named as its data
    main([*TINY_RUN, "--data", str(tmp_path / "data"), "--epochs", "1", "--out", str(tmp_path / "run")])
    checkpoint = torch.load(tmp_path / "run" / "best.pt", weights_only=False)
    assert checkpoint["data"] == "folder dataset data: 10 image/mask pairs; 9 train / 1 validation images"
    assert checkpoint["step"] == 9 // 4  # 9 training pairs (every 10th validates), batches of 4, last dropped
