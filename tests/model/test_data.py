"""Data: the generated set is deterministic and non-trivial; folders pair by stem."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from model.augment import PHOTOS, augment_batch
from model.datasets import FolderDataset, SyntheticDataset, binarise_mask, materialise
from model.preprocessing import Preprocessing
from model.synthetic import HELDOUT_SEED, MAX_SIDE, MIN_SIDE, generate_sample

PREP = Preprocessing(height=64, width=64)


def test_generated_samples_are_a_pure_function_of_seed_and_index() -> None:
    first, again = SyntheticDataset(3, PREP, seed=7), SyntheticDataset(3, PREP, seed=7)
    for index in range(3):
        assert torch.equal(first[index][0], again[index][0])
        assert torch.equal(first[index][1], again[index][1])


def test_different_seeds_give_different_images() -> None:
    assert not torch.equal(SyntheticDataset(1, PREP, seed=0)[0][0], SyntheticDataset(1, PREP, seed=1)[0][0])


def test_parallel_materialisation_equals_serial() -> None:
    dataset = SyntheticDataset(6, PREP, seed=3)
    serial, parallel = materialise(dataset, 0, "serial"), materialise(dataset, 2, "parallel")
    assert torch.equal(serial.tensors[0], parallel.tensors[0])
    assert torch.equal(serial.tensors[1], parallel.tensors[1])
    assert serial.tensors[0].shape == (6, 3, 64, 64) and serial.tensors[0].dtype == torch.uint8


@pytest.mark.parametrize("workers", [0, 2])
def test_materialising_stops_at_the_deadline_and_keeps_what_it_made(workers: int) -> None:
    # GIVEN a deadline already past: only the first sample is made (never none: training needs data)
    dataset = SyntheticDataset(40, PREP, seed=3)
    made = materialise(dataset, workers, "test", deadline=time.monotonic() - 1)
    assert made.tensors[0].shape[0] == 1
    assert torch.equal(made.tensors[0][0], dataset[0][0])


def test_generated_frames_vary_in_size_and_hold_both_classes() -> None:
    sizes, fractions = set(), []
    for index in range(12):
        image, mask = generate_sample(np.random.default_rng([HELDOUT_SEED, index]))
        assert image.mode == "RGB" and image.size == (mask.shape[1], mask.shape[0])
        assert MIN_SIDE <= min(image.size) and max(image.size) <= MAX_SIDE
        sizes.add(image.size)
        fractions.append(mask.mean())
    assert len(sizes) == 12
    assert 0.03 < min(fractions) and max(fractions) < 0.95


def test_colour_alone_does_not_separate_foreground() -> None:
    """The best single-colour-channel threshold is far from the mask: the task needs texture and shape."""
    image, mask = generate_sample(np.random.default_rng([HELDOUT_SEED, 0]))
    pixels = np.asarray(image)
    best = 0.0
    for channel in range(3):
        for threshold in range(0, 256, 8):
            guess = pixels[..., channel] >= threshold
            for candidate in (guess, ~guess):
                best = max(best, (candidate & mask).sum() / (candidate | mask).sum())
    assert best < 0.8


def test_preprocessing_normalises_with_its_own_numbers() -> None:
    prep = Preprocessing(height=2, width=2, mean=(0.5, 0.5, 0.5), std=(0.5, 0.25, 1.0))
    image = Image.new("RGB", (4, 4), (255, 0, 51))
    assert prep.image_to_input(image)[0, :, 0, 0].tolist() == pytest.approx([1.0, -2.0, -0.3])


def test_augmentation_keeps_image_and_mask_aligned() -> None:
    # GIVEN a frame whose left half is white and masked
    images = torch.zeros(8, 3, 32, 32, dtype=torch.uint8)
    images[..., :16] = 255
    masks = (images[:, :1] > 0).to(torch.uint8)
    torch.manual_seed(0)
    pixels, targets = augment_batch(images, masks)
    # THEN after flips, zoom and jitter the mask still marks the bright pixels
    assert pixels.shape == (8, 3, 32, 32) and targets.shape == (8, 1, 32, 32)
    bright = pixels.mean(1, keepdim=True) > pixels.mean(dim=(1, 2, 3), keepdim=True)
    agreement = (bright == (targets > 0.5)).float().mean()
    assert agreement > 0.95


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([0, 1, 1], [False, True, True]),
        ([0, 255, 128, 127], [False, True, True, False]),
        ([0, 250, 3], [False, True, False]),
    ],
)
def test_masks_binarise_from_either_convention(values: list[int], expected: list[bool]) -> None:
    assert binarise_mask(np.array(values)).tolist() == expected


def test_folder_dataset_pairs_by_stem_including_carvana_suffix(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    for stem in ("a", "b", "c"):
        Image.new("RGB", (40, 30), (10, 20, 30)).save(tmp_path / "images" / f"{stem}.jpg")
    Image.new("L", (40, 30), 255).save(tmp_path / "masks" / "a.png")
    Image.new("L", (40, 30), 1).save(tmp_path / "masks" / "b_mask.gif")  # Carvana names masks <id>_mask.gif
    dataset = FolderDataset(tmp_path, PREP)
    assert [image.stem for image, _ in dataset.pairs] == ["a", "b"]  # c has no mask: left out
    image, mask = dataset[1]
    assert image.shape == (3, 64, 64) and bool(mask.all())


def test_folder_without_pairs_says_what_it_expects(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    with pytest.raises(ValueError, match="images/ and masks/"):
        FolderDataset(tmp_path, PREP)


@pytest.mark.parametrize("out_size", [None, 16])
def test_the_photo_recipe_keeps_image_and_mask_aligned_through_rotation_crops_blur_and_jpeg(
    out_size: int | None,
) -> None:
    # GIVEN frames whose left half is white and masked, and the photo recipe with every step always on
    images = torch.zeros(8, 3, 32, 32, dtype=torch.uint8)
    images[..., :16] = 255
    masks = (images[:, :1] > 0).to(torch.uint8)
    recipe = dataclasses.replace(PHOTOS, blur=1.0, jpeg=1.0)
    torch.manual_seed(0)
    pixels, targets = augment_batch(images, masks, recipe, out_size)
    # THEN the output has the asked size, masks stay 0/1, and bright pixels are still the masked ones
    side = out_size or 32
    assert pixels.shape == (8, 3, side, side) and targets.shape == (8, 1, side, side)
    assert set(targets.unique().tolist()) <= {0.0, 1.0}
    bright = pixels.mean(1, keepdim=True) > 127
    assert (bright == (targets > 0.5)).float().mean() > 0.93


def test_the_photo_recipe_never_turns_people_upside_down() -> None:
    # GIVEN a frame bright at the top only; no rotation or zoom, so only a flip could move it
    images = torch.zeros(64, 3, 16, 16, dtype=torch.uint8)
    images[:, :, :8] = 255
    recipe = dataclasses.replace(PHOTOS, zoom=(1.0, 1.0), rotate_degrees=0.0, jitter=0.0, blur=0.0, jpeg=0.0)
    torch.manual_seed(0)
    pixels, _ = augment_batch(images, images[:, :1] // 255, recipe)
    top, bottom = pixels[:, :, :8].mean(dim=(1, 2, 3)), pixels[:, :, 8:].mean(dim=(1, 2, 3))
    assert bool((top > bottom).all())
    # while left-right mirrors happen (about half of 64 frames)
    left_bright = torch.zeros(64, 3, 16, 16, dtype=torch.uint8)
    left_bright[..., :8] = 255
    mirrored, _ = augment_batch(left_bright, left_bright[:, :1] // 255, recipe)
    assert 16 <= int((mirrored[..., 8:].mean(dim=(1, 2, 3)) > 127).sum()) <= 48
