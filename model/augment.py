"""Augmentation: training only, on whole batches, on whichever device trains."""

from __future__ import annotations

import torch
import torch.nn.functional as F


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
