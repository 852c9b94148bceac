"""Photo-like test images made on the fly: no photo is committed, no download needed.

A real photo's PNG cost depends on its entropy: smooth regions, fine texture and
sensor noise, then JPEG artefacts from the camera. Flat synthetic frames compress
10x better than that and would flatter any encoder, so each layer is here.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw

JPEG_QUALITY = 90  # a phone camera's typical setting
NOISE_SIGMA = 4.0  # sensor noise in 8-bit levels, as a phone at ISO ~400
OVERLAY_COLOR = (255, 64, 64)  # the service's default red-ish tint
OVERLAY_ALPHA = 0.5


def _smooth_field(rng: np.random.Generator, size: tuple[int, int], cells: int) -> np.ndarray:
    """Random colours on a coarse grid, bicubically upsampled: lighting and large shapes."""
    width, height = size
    grid = rng.integers(0, 256, (max(2, cells * height // width), cells, 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(grid).resize(size, Image.Resampling.BICUBIC), dtype=np.float32)


def photo_jpeg(width: int, height: int, seed: int = 0, quality: int = JPEG_QUALITY) -> bytes:
    """A deterministic photo-like JPEG: smooth shapes + texture + sensor noise, camera-compressed."""
    rng = np.random.default_rng(seed)
    pixels = 0.6 * _smooth_field(rng, (width, height), 6) + 0.4 * _smooth_field(rng, (width, height), 96)
    pixels += rng.normal(0.0, NOISE_SIGMA, pixels.shape).astype(np.float32)
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def ellipse_mask(width: int, height: int) -> np.ndarray:
    """A centred ellipse over ~30% of the frame: a typical foreground subject."""
    canvas = Image.new("1", (width, height), 0)
    ImageDraw.Draw(canvas).ellipse((width * 0.2, height * 0.15, width * 0.7, height * 0.9), fill=1)
    return np.asarray(canvas, dtype=bool)


def photo_overlay(width: int, height: int, seed: int = 0) -> Image.Image:
    """What the encoder sees: the decoded photo with a semi-transparent tint over the foreground."""
    photo = np.asarray(Image.open(io.BytesIO(photo_jpeg(width, height, seed))).convert("RGB"), dtype=np.float32)
    mask = ellipse_mask(width, height)
    tint = np.asarray(OVERLAY_COLOR, dtype=np.float32)
    photo[mask] = (1.0 - OVERLAY_ALPHA) * photo[mask] + OVERLAY_ALPHA * tint
    return Image.fromarray(np.rint(photo).astype(np.uint8))
