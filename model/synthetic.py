"""The generated data set ("synthetic blobs"): the reference model's training and held-out data.

Smooth random shapes filled with high-frequency textures (stripes, checks, dots,
grain), lit and casting a soft shadow, over smooth backgrounds (gradients, cloudy
noise) that carry low-contrast smooth distractor blobs. Every colour is drawn
uniformly for foreground and background alike, so colour alone separates nothing:
the model must use texture and shape. The whole frame then gets a lighting field,
blur, sensor noise and JPEG artefacts, at sizes from 192 to 512 on each side.
Sample ``i`` of seed ``s`` is a pure function of ``(s, i)``.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageFilter

HELDOUT_SEED = 2_147_483_647  # the held-out evaluation set; training refuses this seed
MIN_SIDE, MAX_SIDE = 192, 512  # generated frames: varied sizes and aspect ratios


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
