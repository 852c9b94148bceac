"""What a result says about the image: its size, how much of it is foreground, and where."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class BoundingBox:
    """The foreground's extent as a PIL box: ``right`` and ``bottom`` exclusive."""

    left: int
    top: int
    right: int
    bottom: int


@dataclass(frozen=True)
class Summary:
    """What a result says about the image: its size, how much is foreground, and where."""

    width: int
    height: int
    foreground_fraction: float
    bounding_box: BoundingBox | None  # None when nothing is foreground

    @classmethod
    def of(cls, mask: np.ndarray) -> Summary:
        rows, columns = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        box = None
        if rows.size:
            box = BoundingBox(int(columns[0]), int(rows[0]), int(columns[-1]) + 1, int(rows[-1]) + 1)
        height, width = mask.shape
        return cls(width, height, float(np.count_nonzero(mask)) / mask.size, box)
