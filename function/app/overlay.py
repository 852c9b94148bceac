"""Drawing the result: a colour blended over the foreground, the original everywhere else.

Pure functions of their inputs, except ``blend_in_place``. The tint is a per-channel
lookup table applied by Pillow (``Image.point``) to a copy of the image, and the
background is pasted back through the inverted mask: two C passes, ~20 ms at 1080p
and ~100 ms at 12 MP on one core, with background pixels copied bit for bit.
``blend_in_place`` gives the same pixels band by band inside the image itself, for
a caller that owns it: no second full-size image (36 MB at 12 MP) is ever alive.
"""

from __future__ import annotations

import math
import re

import numpy as np
from PIL import Image

Color = tuple[int, int, int]
BLEND_BAND_ROWS = 256  # rows tinted per step in blend_in_place: ~3 MB of a 4000-pixel-wide RGB image

# "#ff3b30", "ff3b30" (a raw "#" in a URL starts the fragment, so clients often drop it) or "255,59,48".
HEX_COLOR = re.compile(r"#?([0-9a-fA-F]{2})([0-9a-fA-F]{2})([0-9a-fA-F]{2})")
TRIPLE_COLOR = re.compile(r"(\d{1,3})\s*,\s*(\d{1,3})\s*,\s*(\d{1,3})")


def parse_color(value: str) -> Color:
    """``"#rrggbb"``, ``"rrggbb"`` or ``"r,g,b"`` (0-255 each) -> (r, g, b); ValueError otherwise."""
    text = value.strip()
    if match := HEX_COLOR.fullmatch(text):
        r, g, b = (int(group, 16) for group in match.groups())
        return (r, g, b)
    if (match := TRIPLE_COLOR.fullmatch(text)) and all(int(group) <= 255 for group in match.groups()):
        r, g, b = (int(group) for group in match.groups())
        return (r, g, b)
    raise ValueError(f"colour {value!r} is not '#rrggbb', 'rrggbb' or 'r,g,b' with channels 0-255")


def blend(image: Image.Image, mask: np.ndarray, color: Color, alpha: float) -> Image.Image:
    """RGB ``image`` with ``color`` blended over the pixels where ``mask`` is true.

    Foreground: ``floor((1 - alpha) * pixel + alpha * color + 0.5)`` per channel
    (rounded half up); background: the input's pixels unchanged. Same size as the input.
    """
    _check_blend_inputs(image, mask, color, alpha)
    tinted = image.point(tint_table(color, alpha))
    tinted.paste(image, mask=mask_to_image(~mask))  # background back, in place: one image fewer than composite
    return tinted


def blend_in_place(image: Image.Image, mask: np.ndarray, color: Color, alpha: float) -> Image.Image:
    """``blend``'s result drawn into ``image`` itself (and returned); bands without foreground are skipped."""
    _check_blend_inputs(image, mask, color, alpha)
    table = tint_table(color, alpha)
    for top in range(0, image.height, BLEND_BAND_ROWS):
        bottom = min(top + BLEND_BAND_ROWS, image.height)
        band_mask = mask[top:bottom]
        if band_mask.any():
            box = (0, top, image.width, bottom)
            image.paste(image.crop(box).point(table), box, mask=mask_to_image(band_mask))
    return image


def _check_blend_inputs(image: Image.Image, mask: np.ndarray, color: Color, alpha: float) -> None:
    if image.mode != "RGB":
        raise ValueError(f"blend needs an RGB image, got mode {image.mode}: decode with app.imaging first")
    if mask.shape != (image.height, image.width):
        raise ValueError(f"mask shape {mask.shape} does not match the image's {(image.height, image.width)}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha {alpha} is outside 0..1")
    if len(color) != 3 or not all(0 <= channel <= 255 for channel in color):
        raise ValueError(f"colour {color} is not three channels of 0-255")


def tint_table(color: Color, alpha: float) -> list[int]:
    """Pillow's 768-entry RGB lookup: entry ``256 * c + v`` is channel ``c``'s value ``v`` tinted."""
    return [math.floor((1.0 - alpha) * value + alpha * channel + 0.5) for channel in color for value in range(256)]


def mask_to_image(mask: np.ndarray) -> Image.Image:
    """Boolean HxW mask -> mode "L" image, 255 for foreground and 0 for background."""
    levels = np.ascontiguousarray(mask, dtype=bool).view(np.uint8) * np.uint8(255)
    return Image.fromarray(levels)
