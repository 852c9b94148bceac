"""Datasets: a folder of images/ + masks/ paired by stem, the generated set, and loading them into memory.

Every dataset yields ``(uint8 3xHxW image, uint8 1xHxW mask)`` at the model's size
(``model.preprocessing``), not yet normalised: normalisation and augmentation happen
on the training device, per batch.
"""

from __future__ import annotations

import logging
import multiprocessing
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset, TensorDataset
from tqdm import tqdm

from model.preprocessing import Preprocessing
from model.synthetic import generate_sample

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
log = logging.getLogger(__name__)
Sample = tuple[np.ndarray, np.ndarray]


class SegmentationDataset(Dataset):
    """Base: subclasses give ``load(i) -> (PIL image, bool mask)``; this preprocesses."""

    def __init__(self, preprocessing: Preprocessing, seed: int) -> None:
        self.preprocessing, self.seed = preprocessing, seed

    def load(self, index: int) -> tuple[Image.Image, np.ndarray]:
        raise NotImplementedError

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(uint8 3xHxW image, uint8 1xHxW mask) at the model's size, not yet normalised."""
        image, mask = self.load(index)
        pixels = self.preprocessing.resize_image(image).transpose(2, 0, 1)
        target = self.preprocessing.resize_mask(mask)[None].astype(np.uint8)
        return torch.from_numpy(np.ascontiguousarray(pixels)), torch.from_numpy(target)


def materialise(dataset: Dataset, workers: int, label: str, deadline: float | None = None) -> TensorDataset:
    """Load or generate every sample once, in parallel, into memory (uint8: 196 KB each).

    A process pool that returns plain numpy arrays through pipes, not DataLoader
    workers: those pass tensors through /dev/shm, which is small in containers.
    Progress shows on stderr whether or not it is a terminal (generating 20,000
    images takes minutes on 2 CPUs). Past ``deadline`` (``time.monotonic()``), it
    stops and keeps what it has, so ``--max-minutes`` bounds the whole run.
    """
    indices = range(len(dataset))  # type: ignore[arg-type]
    load = partial(_sample_as_arrays, dataset)
    log.info("preparing %d %s images with %d worker process(es)", len(indices), label, workers)
    with _sample_stream(load, indices, workers) as stream, \
            tqdm(stream, total=len(indices), desc=f"preparing {label} data", mininterval=2) as bar:
        samples = _collect(bar, deadline)
    if len(samples) < len(indices):
        log.warning("%s data: %d of %d images made before the time budget ran out", label, len(samples), len(indices))
    images, masks = zip(*samples, strict=True)
    return TensorDataset(torch.from_numpy(np.stack(images)), torch.from_numpy(np.stack(masks)))


@contextmanager
def _sample_stream(load: Callable[[int], Sample], indices: range, workers: int) -> Iterator[Iterator[Sample]]:
    """Samples in index order, from a fork pool (terminated on exit) or this process."""
    if workers <= 0:
        yield map(load, indices)
        return
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        yield pool.imap(load, indices, chunksize=16)


def _collect(stream: Iterable[Sample], deadline: float | None) -> list[Sample]:
    """The stream's samples until it ends or the deadline passes (at least one sample)."""
    samples: list[Sample] = []
    for sample in stream:
        samples.append(sample)
        if deadline is not None and time.monotonic() >= deadline:
            break
    return samples


def _sample_as_arrays(dataset: Dataset, index: int) -> tuple[np.ndarray, np.ndarray]:
    image, mask = dataset[index]
    return image.numpy(), mask.numpy()


class FolderDataset(SegmentationDataset):
    """``root/images/x.jpg`` with ``root/masks/x.png`` (or ``x_mask.gif``, Carvana-style)."""

    def __init__(self, root: Path, preprocessing: Preprocessing) -> None:
        super().__init__(preprocessing, seed=0)
        self.pairs = match_images_to_masks(root / "images", root / "masks")
        if not self.pairs:
            raise ValueError(f"no image/mask pairs under {root}: expected images/ and masks/ matched by file stem")

    def __len__(self) -> int:
        return len(self.pairs)

    def load(self, index: int) -> tuple[Image.Image, np.ndarray]:
        image_path, mask_path = self.pairs[index]
        with Image.open(image_path) as image, Image.open(mask_path) as mask:
            return image.convert("RGB"), binarise_mask(np.asarray(mask.convert("L")))


def match_images_to_masks(image_dir: Path, mask_dir: Path) -> list[tuple[Path, Path]]:
    masks = {_mask_stem(p): p for p in sorted(mask_dir.iterdir()) if p.suffix.lower() in IMAGE_EXTENSIONS}
    images = sorted(p for p in image_dir.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
    return [(image, masks[image.stem]) for image in images if image.stem in masks]


def _mask_stem(path: Path) -> str:
    return path.stem[: -len("_mask")] if path.stem.endswith("_mask") else path.stem


def binarise_mask(values: np.ndarray) -> np.ndarray:
    """Masks come as 0/1 or 0/255 (JPEG'd ones near those): foreground is the upper half."""
    return values > (0 if values.max() <= 1 else 127)


class SyntheticDataset(SegmentationDataset):
    """``length`` generated samples; sample ``i`` depends on ``(seed, i)`` only."""

    def __init__(self, length: int, preprocessing: Preprocessing, seed: int = 0) -> None:
        super().__init__(preprocessing, seed)
        self.length = length

    def __len__(self) -> int:
        return self.length

    def load(self, index: int) -> tuple[Image.Image, np.ndarray]:
        return generate_sample(np.random.default_rng([self.seed, index]))
