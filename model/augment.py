"""Augmentation: training only, on whole batches, on whichever device trains.

Two recipes. ``SYNTHETIC`` is what the generated-blob model was trained with (flips both
ways, zoom-in). ``PHOTOS`` is for photos of upright people: mirror only left-right, zoom in
or out a little, rotate a few degrees, jitter colour, blur, and re-compress as JPEG, since
served photos come from phones and web pages at every quality. Geometry is one affine
sampling grid per sample, applied to image and mask alike; ``out_size`` smaller than the
frame takes a random window at the frame's own resolution (the crop phase of training).
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image


@dataclass(frozen=True)
class Recipe:
    """Per-sample probabilities and ranges; every draw is independent."""

    hflip: float = 0.5  # probability of a left-right mirror
    vflip: float = 0.0  # probability of an upside-down flip (never for upright people)
    zoom: tuple[float, float] = (0.6, 1.0)  # fraction of each side the window shows (>1: zoomed out)
    rotate_degrees: float = 0.0  # uniform in +-this
    jitter: float = 0.2  # contrast, brightness and per-channel gain within +-this
    blur: float = 0.0  # probability of a 3x3 blur of random strength
    jpeg: float = 0.0  # probability of a JPEG re-compression at quality 30-90


SYNTHETIC = Recipe(vflip=0.5)
PHOTOS = Recipe(zoom=(0.7, 1.15), rotate_degrees=10.0, jitter=0.2, blur=0.3, jpeg=0.3)
RECIPES = {"synthetic": SYNTHETIC, "photos": PHOTOS}
JPEG_QUALITY = (30, 90)


def augment_batch(
    images: torch.Tensor, masks: torch.Tensor, recipe: Recipe = SYNTHETIC, out_size: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``images``: uint8 Bx3xHxW, ``masks``: uint8 Bx1xHxW -> float 0-255 images, 0/1 masks.

    The output is ``out_size`` square (a random window of the frame at its resolution) or
    the frame's size; geometry is identical for image and mask.
    """
    n, size = images.shape[0], (int(images.shape[-2]), int(images.shape[-1]))
    out = (out_size, out_size) if out_size else size
    grid = _affine_grid(n, size, out, recipe, images.device)
    pixels = F.grid_sample(images.float(), grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    targets = F.grid_sample(masks.float(), grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    pixels = _colour_jitter(pixels, recipe.jitter)
    pixels = _blur(pixels, recipe.blur)
    return _jpeg_recompress(pixels, recipe.jpeg), (targets > 0.5).float()


def _affine_grid(
    n: int, size: tuple[int, int], out: tuple[int, int], recipe: Recipe, device: torch.device
) -> torch.Tensor:
    """Sampling grids: flip, rotate, and a window of ``zoom`` x (out / size) of each side, placed at random."""
    low, high = recipe.zoom
    scale = (low + (high - low) * torch.rand(n, 1, device=device)) * torch.tensor(
        [out[1] / size[1], out[0] / size[0]], device=device
    )
    shift = (torch.rand(n, 2, device=device) * 2 - 1) * (1 - scale).clamp(min=0)
    angle = (torch.rand(n, device=device) * 2 - 1) * math.radians(recipe.rotate_degrees)
    flips = torch.stack([_signs(n, recipe.hflip, device), _signs(n, recipe.vflip, device)], dim=1)
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.zeros(n, 2, 3, device=device)
    theta[:, 0, 0], theta[:, 0, 1] = cos * scale[:, 0] * flips[:, 0], -sin * scale[:, 1] * flips[:, 1]
    theta[:, 1, 0], theta[:, 1, 1] = sin * scale[:, 0] * flips[:, 0], cos * scale[:, 1] * flips[:, 1]
    theta[:, :, 2] = shift
    return F.affine_grid(theta, [n, 1, *out], align_corners=False)


def _signs(n: int, probability: float, device: torch.device) -> torch.Tensor:
    """-1 (flip) with ``probability``, else 1."""
    return torch.where(torch.rand(n, device=device) < probability, -1.0, 1.0)


def _colour_jitter(pixels: torch.Tensor, strength: float) -> torch.Tensor:
    """Contrast, brightness and per-channel gain, each within +-strength."""
    n, device = pixels.shape[0], pixels.device
    mean = pixels.mean(dim=(1, 2, 3), keepdim=True)
    contrast, brightness = (1 - strength + 2 * strength * torch.rand(2, n, 1, 1, 1, device=device)).unbind(0)
    gain = 1 - strength + 2 * strength * torch.rand(n, 3, 1, 1, device=device)
    return ((pixels - mean) * contrast + mean * brightness).mul(gain).clamp(0, 255)


def _blur(pixels: torch.Tensor, probability: float) -> torch.Tensor:
    """A 3x3 box blur mixed in at a random strength, for ``probability`` of the samples."""
    if probability <= 0:
        return pixels
    n, device = pixels.shape[0], pixels.device
    blurred = F.avg_pool2d(F.pad(pixels, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    amount = (torch.rand(n, 1, 1, 1, device=device) < probability) * torch.rand(n, 1, 1, 1, device=device)
    return torch.lerp(pixels, blurred, amount)


def _jpeg_recompress(pixels: torch.Tensor, probability: float) -> torch.Tensor:
    """JPEG at a random quality for ``probability`` of the samples (on the CPU: Pillow's codec)."""
    chosen = torch.nonzero(torch.rand(pixels.shape[0]) < probability).flatten().tolist()
    for index in chosen:
        frame = pixels[index].round().byte().permute(1, 2, 0).cpu().numpy()
        buffer = io.BytesIO()
        Image.fromarray(frame).save(buffer, "JPEG", quality=int(torch.randint(*JPEG_QUALITY, ())))
        decoded = np.asarray(Image.open(buffer).convert("RGB"))
        pixels[index] = torch.from_numpy(decoded.copy()).permute(2, 0, 1).to(pixels)
    return pixels
