"""Training data: preprocessing (defined once), a folder dataset, a generated one.

Preprocessing lives here and only here. ``model.export`` writes the same numbers
into the ONNX file's metadata, and the server reads them from there, so serving
cannot drift from training.

The generated set ("synthetic blobs") is the reference model's data: smooth
random shapes filled with high-frequency textures (stripes, checks, dots, grain),
lit and casting a soft shadow, over smooth backgrounds (gradients, cloudy noise)
that carry low-contrast smooth distractor blobs. Every colour is drawn uniformly
for foreground and background alike, so colour alone separates nothing: the
model must use texture and shape. The whole frame then gets a lighting field,
blur, sensor noise and JPEG artefacts, at sizes from 192 to 512 on each side.
Sample ``i`` of seed ``s`` is a pure function of ``(s, i)``.
"""

from __future__ import annotations

import io
import math
import multiprocessing
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageFilter
from torch.utils.data import Dataset, TensorDataset
from tqdm import tqdm

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
HELDOUT_SEED = 2_147_483_647  # the held-out evaluation set; training refuses this seed
MIN_SIDE, MAX_SIDE = 192, 512  # generated frames: varied sizes and aspect ratios


@dataclass(frozen=True)
class Preprocessing:
    """Image -> model input. Written verbatim into the exported model's metadata."""

    height: int = 256
    width: int = 256
    channel_order: str = "RGB"
    resize: str = "bilinear"  # Pillow's BILINEAR, the same call on both sides
    scale: float = 1.0 / 255.0  # uint8 -> [0, 1] before mean/std
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)  # ImageNet statistics
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "mean": list(self.mean), "std": list(self.std)}

    def resize_image(self, image: Image.Image) -> np.ndarray:
        """Any PIL image -> uint8 HxWx3 RGB at the model's size (the step serving must match)."""
        return np.asarray(image.convert("RGB").resize((self.width, self.height), Image.Resampling.BILINEAR))

    def resize_mask(self, mask: np.ndarray) -> np.ndarray:
        """Boolean HxW mask -> boolean mask at the model's size (bilinear, then >= half)."""
        as_image = Image.fromarray(mask.astype(np.float32))
        return np.asarray(as_image.resize((self.width, self.height), Image.Resampling.BILINEAR)) > 0.5

    def normalise(self, pixels: torch.Tensor) -> torch.Tensor:
        """uint8-valued NCHW tensor (any float dtype, any device) -> model input."""
        mean = torch.tensor(self.mean, device=pixels.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, device=pixels.device).view(1, 3, 1, 1)
        return (pixels.float() * self.scale - mean) / std

    def image_to_input(self, image: Image.Image) -> np.ndarray:
        """PIL image -> float32 1x3xHxW model input, as the server computes it."""
        pixels = torch.from_numpy(self.resize_image(image).transpose(2, 0, 1).copy())[None]
        return self.normalise(pixels).numpy()


# --- augmentation (training only, on whole batches, on whichever device trains) ----------


def augment_batch(images: torch.Tensor, masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Flips, a random zoom-in crop (60-100% of each side) and colour jitter, per sample.

    ``images``: uint8 Bx3xHxW, ``masks``: uint8 Bx1xHxW. Returns float images on the
    0-255 scale and 0/1 float masks, geometry identical for both.
    """
    n, device = images.shape[0], images.device
    pixels, targets = images.float(), masks.float()
    flip_x, flip_y = torch.rand(n, device=device) < 0.5, torch.rand(n, device=device) < 0.5
    pixels = torch.where(flip_x.view(-1, 1, 1, 1), pixels.flip(-1), pixels)
    targets = torch.where(flip_x.view(-1, 1, 1, 1), targets.flip(-1), targets)
    pixels = torch.where(flip_y.view(-1, 1, 1, 1), pixels.flip(-2), pixels)
    targets = torch.where(flip_y.view(-1, 1, 1, 1), targets.flip(-2), targets)
    grid = _zoom_grid(n, pixels.shape[-2:], device)
    pixels = F.grid_sample(pixels, grid, mode="bilinear", align_corners=False)
    targets = (F.grid_sample(targets, grid, mode="bilinear", align_corners=False) > 0.5).float()
    return _colour_jitter(pixels), targets


def _zoom_grid(n: int, size: torch.Size, device: torch.device) -> torch.Tensor:
    """Sampling grids that each show a random 60-100% window of the frame."""
    scale = 0.6 + 0.4 * torch.rand(n, 2, device=device)
    shift = (torch.rand(n, 2, device=device) * 2 - 1) * (1 - scale)
    theta = torch.zeros(n, 2, 3, device=device)
    theta[:, 0, 0], theta[:, 1, 1] = scale[:, 0], scale[:, 1]
    theta[:, :, 2] = shift
    return F.affine_grid(theta, [n, 1, *size], align_corners=False)


def _colour_jitter(pixels: torch.Tensor) -> torch.Tensor:
    """Contrast, brightness and per-channel gain, each within +-20%."""
    n, device = pixels.shape[0], pixels.device
    mean = pixels.mean(dim=(1, 2, 3), keepdim=True)
    contrast, brightness = (0.8 + 0.4 * torch.rand(2, n, 1, 1, 1, device=device)).unbind(0)
    gain = 0.8 + 0.4 * torch.rand(n, 3, 1, 1, device=device)
    return ((pixels - mean) * contrast + mean * brightness).mul(gain).clamp(0, 255)


# --- datasets --------------------------------------------------------------------------------


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


def materialise(dataset: Dataset, workers: int) -> TensorDataset:
    """Load or generate every sample once, in parallel, into memory (uint8: 196 KB each).

    A process pool that returns plain numpy arrays through pipes, not DataLoader
    workers: those pass tensors through /dev/shm, which is small in containers.
    """
    indices = range(len(dataset))  # type: ignore[arg-type]
    load = partial(_sample_as_arrays, dataset)
    if workers > 0:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            samples = list(
                tqdm(pool.imap(load, indices, chunksize=16), total=len(indices), desc="preparing data", disable=None)
            )
    else:
        samples = [load(i) for i in indices]
    images, masks = zip(*samples, strict=True)
    return TensorDataset(torch.from_numpy(np.stack(images)), torch.from_numpy(np.stack(masks)))


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


# --- the generator ---------------------------------------------------------------------------


def generate_sample(rng: np.random.Generator) -> tuple[Image.Image, np.ndarray]:
    """One frame of the synthetic-blobs task: (RGB image, boolean foreground mask)."""
    h, w = (int(v) for v in rng.integers(MIN_SIDE, MAX_SIDE + 1, size=2))
    canvas = _smooth_background(rng, h, w)
    for _ in range(int(rng.integers(0, 4))):  # distractors: smooth, low-contrast, not foreground
        box, stain = _random_blob(rng, h, w, scale=(0.08, 0.25))
        region = canvas[box]
        stain_fill = _smooth_background(rng, *stain.shape)
        region[stain] = (stain_fill * 0.35 + region * 0.65)[stain]
    mask = np.zeros((h, w), dtype=bool)
    for _ in range(int(rng.integers(1, 4))):
        box, blob = _random_blob(rng, h, w, scale=(0.12, 0.38))
        _cast_shadow(canvas, box, blob, rng)
        bh, bw = blob.shape
        fill = _textured_fill(rng, bh, bw) * _lighting(rng, bh, bw, strength=0.25)
        canvas[box][blob] = fill[blob]
        mask[box] |= blob
    return _degrade(canvas * _lighting(rng, h, w, strength=0.3), rng), mask


def _random_colour(rng: np.random.Generator) -> np.ndarray:
    return rng.uniform(0.0, 1.0, size=3).astype(np.float32)


def _contrasting_colours(rng: np.random.Generator, min_distance: float = 0.4) -> tuple[np.ndarray, np.ndarray]:
    """Two random colours far enough apart that the texture between them stays visible."""
    first = _random_colour(rng)
    second = _random_colour(rng)
    while float(np.linalg.norm(first - second)) < min_distance:
        second = _random_colour(rng)
    return first, second


def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column indices as broadcastable (h, 1) and (1, w) arrays."""
    rows, columns = np.ogrid[0:h, 0:w]
    return rows, columns


def _value_noise(rng: np.random.Generator, h: int, w: int, cells: int) -> np.ndarray:
    """Smooth noise in [0, 1]: a coarse random grid upsampled bicubically."""
    coarse = rng.uniform(0, 1, size=(cells + 1, cells + 1)).astype(np.float32)
    smooth = np.asarray(Image.fromarray(coarse, mode="F").resize((w, h), Image.Resampling.BICUBIC))
    return np.clip(smooth, 0.0, 1.0)


def _mix(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    return a + (b - a) * t[..., None]


def _smooth_background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A linear gradient or cloudy low-frequency noise between two random colours."""
    if rng.random() < 0.5:
        yy, xx = _grid(h, w)
        angle = rng.uniform(0, 2 * math.pi)
        t = (xx * math.cos(angle) + yy * math.sin(angle)).astype(np.float32)
        t = (t - t.min()) / max(float(t.max() - t.min()), 1.0)
    else:
        t = _value_noise(rng, h, w, cells=int(rng.integers(2, 6)))
    return _mix(_random_colour(rng), _random_colour(rng), t)


def _textured_fill(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """High-frequency pattern between two random colours: stripes, checks, dots or grain."""
    yy, xx = _grid(h, w)
    angle, period = rng.uniform(0, math.pi), rng.uniform(5.0, 16.0)
    u = ((xx * math.cos(angle) + yy * math.sin(angle)) * (2 * math.pi / period)).astype(np.float32)
    v = ((-xx * math.sin(angle) + yy * math.cos(angle)) * (2 * math.pi / period)).astype(np.float32)
    kind = int(rng.integers(0, 4))
    if kind == 0:
        t = 0.5 + 0.5 * np.sin(u)
    elif kind == 1:
        t = (np.sin(u) * np.sin(v) > 0).astype(np.float32)
    elif kind == 2:
        t = (np.sin(u) * np.sin(v) > 0.5).astype(np.float32)
    else:
        t = _value_noise(rng, h, w, cells=max(h, w) // int(rng.integers(3, 7)) + 1)
    return _mix(*_contrasting_colours(rng), t.astype(np.float32))


Box = tuple[slice, slice]


def _random_blob(rng: np.random.Generator, h: int, w: int, scale: tuple[float, float]) -> tuple[Box, np.ndarray]:
    """A smooth star-shaped region: radius r(theta) = r0 * (1 + sum_k a_k cos(k theta + phi_k)).

    Returns the blob's bounding box in the frame and its mask inside that box.
    """
    cy, cx = rng.uniform(0.1, 0.9) * h, rng.uniform(0.1, 0.9) * w
    r0, stretch = rng.uniform(*scale) * min(h, w), rng.uniform(0.6, 1.6)
    amplitudes = rng.uniform(0, 0.3, size=4) / np.arange(2, 6)
    phases = rng.uniform(0, 2 * math.pi, size=4)
    reach = r0 * (1 + amplitudes.sum())  # the largest radius the wobble can give
    box = (
        slice(max(int(cy - reach / stretch), 0), min(int(cy + reach / stretch) + 2, h)),
        slice(max(int(cx - reach * stretch), 0), min(int(cx + reach * stretch) + 2, w)),
    )
    yy, xx = np.ogrid[box[0], box[1]]
    dy, dx = ((yy - cy) * stretch).astype(np.float32), ((xx - cx) / stretch).astype(np.float32)
    theta = np.arctan2(dy, dx)
    radius = np.full_like(theta, r0)
    for k, (a, phi) in enumerate(zip(amplitudes, phases, strict=True), start=2):
        radius += r0 * a * np.cos(k * theta + phi)
    return box, np.hypot(dy, dx) < radius


def _cast_shadow(canvas: np.ndarray, box: Box, blob: np.ndarray, rng: np.random.Generator) -> None:
    """A soft, offset darkening around the shape (in place): an edge that is not the foreground's."""
    h, w = canvas.shape[:2]
    dy, dx = (int(v) for v in rng.integers(-12, 13, size=2))
    margin = 20
    y0, x0 = max(box[0].start + dy - margin, 0), max(box[1].start + dx - margin, 0)
    y1, x1 = min(box[0].stop + dy + margin, h), min(box[1].stop + dx + margin, w)
    shadow = np.zeros((y1 - y0, x1 - x0), dtype=np.uint8)
    ys, xs = np.nonzero(blob)
    ys, xs = ys + box[0].start + dy - y0, xs + box[1].start + dx - x0
    keep = (ys >= 0) & (ys < y1 - y0) & (xs >= 0) & (xs < x1 - x0)
    shadow[ys[keep], xs[keep]] = 255
    soft = np.asarray(Image.fromarray(shadow).filter(ImageFilter.GaussianBlur(6)), np.float32) / 255.0
    canvas[y0:y1, x0:x1] *= 1.0 - rng.uniform(0.2, 0.5) * soft[..., None]


def _lighting(rng: np.random.Generator, h: int, w: int, strength: float) -> np.ndarray:
    """A smooth multiplicative gain field in [1 - strength, 1 + strength]."""
    field = _value_noise(rng, h, w, cells=2)
    return (1.0 - strength + 2.0 * strength * field)[..., None]


def _degrade(canvas: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """Sensor noise, blur and (usually) a JPEG round trip at a random quality."""
    noisy = canvas + rng.standard_normal(canvas.shape, dtype=np.float32) * np.float32(rng.uniform(0.0, 0.04))
    image = Image.fromarray((np.clip(noisy, 0, 1) * 255).astype(np.uint8))
    image = image.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.0, 1.2))))
    if rng.random() < 0.7:
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=int(rng.integers(35, 96)))
        image = Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
    return image


def describe_synthetic(seeds: Sequence[int]) -> str:
    """One line for the model card and the ONNX metadata."""
    return (
        "synthetic-blobs: procedurally generated textured shapes over smooth backgrounds with distractors, "
        f"shadows, lighting, blur, noise and JPEG artefacts; training seeds {list(seeds)}, "
        f"held-out seed {HELDOUT_SEED}"
    )
