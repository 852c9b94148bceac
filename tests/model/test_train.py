"""Training: the loss falls, checkpoints rebuild their model, runs resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from model.augment import augment_batch
from model.ccp import TEST_SIZE, VAL_SIZE
from model.datasets import SyntheticDataset, materialise
from model.losses import OverlapMeter, dice_bce_loss
from model.preprocessing import Preprocessing
from model.synthetic import HELDOUT_SEED
from model.train import Progress, crop_side, data_sources, due_for_validation, learning_rate, main, parse_args
from model.unet import UNet, UNetConfig
from tests.model.test_ccp import fake_ccp

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


def test_a_resumed_run_draws_what_the_uninterrupted_run_draws(tmp_path: Path) -> None:
    # GIVEN a 2-epoch run, and the same run stopped after its first epoch and resumed from last.pt
    main([*TINY_RUN, "--epochs", "2", "--out", str(tmp_path / "whole")])
    main([*TINY_RUN, "--epochs", "2", "--max-steps", "4", "--out", str(tmp_path / "parts")])  # stops after epoch 1
    resume = ["--resume", str(tmp_path / "parts" / "last.pt")]
    main([*TINY_RUN, "--epochs", "2", "--out", str(tmp_path / "parts"), *resume])
    whole, parts = (torch.load(tmp_path / run / "last.pt", weights_only=False) for run in ("whole", "parts"))
    # THEN both end at the same step with the same weights (augmentation and dropout drew the same numbers)
    assert whole["step"] == parts["step"] == 2 * 16 // 4
    for name, tensor in whole["model"].items():
        torch.testing.assert_close(parts["model"][name], tensor, msg=name)
    # AND the learning curve has one line per epoch across the two invocations
    history = [json.loads(line) for line in (tmp_path / "parts" / "history.jsonl").read_text().splitlines()]
    assert [row["epoch"] for row in history] == [1, 2] and set(history[0]) >= {"loss", "iou", "dice", "seconds"}


@pytest.mark.parametrize(
    ("crop_size", "fraction", "expected"),
    [(None, 0.0, None), (32, 0.0, 32), (32, 0.59, 32), (32, 0.6, None), (32, 1.0, None)],
)
def test_the_crop_phase_gives_way_to_whole_frames(crop_size: int | None, fraction: float, expected: int | None) -> None:
    args = parse_args(["--crop-fraction", "0.6", *(["--crop-size", str(crop_size)] if crop_size else [])])
    assert crop_side(args, fraction) == expected


@pytest.mark.parametrize(
    ("epoch", "fraction", "validated"),
    [(5, 0.1, True), (6, 0.1, False), (7, 0.1, False), (6, 0.7, True), (7, 1.0, True), (100, 0.1, True)],
)
def test_crop_phase_epochs_are_validated_every_val_every(epoch: int, fraction: float, validated: bool) -> None:
    args = parse_args(["--crop-size", "32", "--val-every", "5", "--epochs", "100"])
    progress = Progress(total_steps=1_000_000, max_seconds=None, step=int(fraction * 1_000_000), epoch=epoch)
    assert due_for_validation(args, progress) == validated


def test_training_on_a_clothing_co_parsing_folder_reads_its_split(tmp_path: Path) -> None:
    # GIVEN a folder in the data set's own layout (170 annotated photos)
    ccp = fake_ccp(tmp_path / "ccp", 170)
    # WHEN trained on it directly THEN training sees the split's train part and validates on its val part
    train, val, description = data_sources(parse_args(["--data", str(ccp), "--image-size", "64"]),
                                           Preprocessing(height=64, width=64))
    assert (len(train), len(val)) == (170 - VAL_SIZE - TEST_SIZE, VAL_SIZE)  # type: ignore[arg-type]
    split = f"10 train / {VAL_SIZE} validation images"
    assert description == f"Clothing Co-Parsing at ccp, the fixed split of model.ccp; {split}"
