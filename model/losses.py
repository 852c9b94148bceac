"""Loss and metrics for binary segmentation, shared by training and tests."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def dice_bce_loss(logits: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """BCE for per-pixel calibration plus soft Dice for the overlap the metric scores."""
    bce = F.binary_cross_entropy_with_logits(logits, target)
    probs = torch.sigmoid(logits).flatten(1)
    target = target.flatten(1)
    dice = (2 * (probs * target).sum(1) + eps) / (probs.sum(1) + target.sum(1) + eps)
    return bce + (1 - dice).mean()


class OverlapMeter:
    """Accumulates intersection and union over a data set (pooled, not per-image)."""

    def __init__(self) -> None:
        self.intersection = self.union = self.predicted = self.actual = 0

    def update(self, predicted: torch.Tensor, actual: torch.Tensor) -> None:
        predicted, actual = predicted.bool(), actual.bool()
        self.intersection += int((predicted & actual).sum())
        self.union += int((predicted | actual).sum())
        self.predicted += int(predicted.sum())
        self.actual += int(actual.sum())

    @property
    def iou(self) -> float:
        return self.intersection / self.union if self.union else 1.0

    @property
    def dice(self) -> float:
        total = self.predicted + self.actual
        return 2 * self.intersection / total if total else 1.0
