"""The preprocessing contract: image -> model input, defined once.

``model.export`` writes these numbers into the ONNX file's metadata and the server
reads them from there (``app.core.inference.contract``), so serving cannot drift from
training. Training, evaluation and export all go through ``Preprocessing``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image


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
