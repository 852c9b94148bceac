"""The UNet, written out as the U it is.

Module names follow the most common PyTorch UNet layout (``inc``, ``down1..4``,
``up1..4``, ``outc``; ``double_conv``, ``maxpool_conv``, ``conv``), so ``.pth``
files from the old service load with ``strict=True``. ``UNet()`` builds the
reference architecture: 7,849,601 parameters.

Any input size works as long as the 16x-downsampled bottleneck keeps more than
one pixel for InstanceNorm's statistics (e.g. 32x16 and up): odd sides are
handled in ``Up``. The server always feeds the model its metadata's size.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class UNetConfig:
    """Everything needed to rebuild a UNet; saved inside every checkpoint."""

    in_channels: int = 3  # RGB input
    out_channels: int = 1  # one foreground logit per pixel (binary segmentation)
    base_width: int = 32  # encoder widths are base * (1, 2, 4, 8, 16): 32 -> 512
    # Decoder dropout after up1..up4: most where the features are most abstract.
    dropouts: tuple[float, float, float, float] = field(default=(0.3, 0.2, 0.1, 0.0))

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "dropouts": list(self.dropouts)}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> UNetConfig:
        return cls(**{**values, "dropouts": tuple(values.get("dropouts", cls().dropouts))})


class DoubleConv(nn.Module):
    """(conv3x3 => InstanceNorm => ReLU) * 2"""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.double_conv = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
            nn.InstanceNorm2d(out_channels, affine=True),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1, bias=False),
            nn.InstanceNorm2d(out_channels, affine=True),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.double_conv(x)


class Down(nn.Module):
    """maxpool2x2 => DoubleConv"""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.maxpool_conv = nn.Sequential(nn.MaxPool2d(2), DoubleConv(in_channels, out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.maxpool_conv(x)


class Up(nn.Module):
    """bilinear upsample to the skip's size => concat [skip, x] => DoubleConv => dropout"""

    def __init__(self, in_channels: int, out_channels: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.conv = DoubleConv(in_channels, out_channels)
        self.dropout = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        # Upsampling to the skip's exact size (not a fixed 2x) handles odd inputs:
        # a 125-pixel side pools to 62 and must come back to 125, not 124.
        x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=True)
        return self.dropout(self.conv(torch.cat([skip, x], dim=1)))


class OutConv(nn.Module):
    """conv1x1 to the logit channels"""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class UNet(nn.Module):
    """Encoder-decoder with skip connections; returns logits at the input's size."""

    def __init__(self, config: UNetConfig | None = None) -> None:
        super().__init__()
        self.config = config or UNetConfig()
        w, (p1, p2, p3, p4) = self.config.base_width, self.config.dropouts
        self.inc = DoubleConv(self.config.in_channels, w)
        self.down1 = Down(w, 2 * w)
        self.down2 = Down(2 * w, 4 * w)
        self.down3 = Down(4 * w, 8 * w)
        self.down4 = Down(8 * w, 16 * w)
        self.up1 = Up(16 * w + 8 * w, 8 * w, dropout=p1)
        self.up2 = Up(8 * w + 4 * w, 4 * w, dropout=p2)
        self.up3 = Up(4 * w + 2 * w, 2 * w, dropout=p3)
        self.up4 = Up(2 * w + w, w, dropout=p4)
        self.outc = OutConv(w, self.config.out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.inc(x)
        x2 = self.down1(x1)
        x3 = self.down2(x2)
        x4 = self.down3(x3)
        x5 = self.down4(x4)
        x = self.up1(x5, x4)
        x = self.up2(x, x3)
        x = self.up3(x, x2)
        x = self.up4(x, x1)
        return self.outc(x)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
