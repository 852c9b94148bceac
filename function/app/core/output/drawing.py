"""Drawing the result: a colour blended over the foreground, the original everywhere else; the mask; the cutout.

The tint is a per-channel lookup table applied by Pillow (``Image.point``) band by
band, and pasted back through that band's mask, inside the image itself: a caller
that owns the decoded image never holds a second full-size copy (36 MB at 12 MP),
and bands without foreground cost nothing. Background pixels stay bit for bit.

Masks go to Pillow as mode "1" images (``Image.fromarray`` of a bool array): a paste
through a 1-bit mask copies the pixels it selects, where an "L" mask blends every pixel
by its level (0 or 255 here, so the same result): 2.6 ms against 8.5 ms for the whole of a
1080p photo, interleaved in one run (``python -m bench.changes``).
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

from app.core.options import Color
from app.core.resources.bands import rows_per_band, run_bands


def blend_in_place(image: Image.Image, mask: np.ndarray, color: Color, alpha: float) -> Image.Image:
    """RGB ``image`` with ``color`` blended over the pixels where ``mask`` is true, drawn into ``image`` itself.

    Foreground: ``floor((1 - alpha) * pixel + alpha * color + 0.5)`` per channel
    (rounded half up); background: the input's pixels unchanged. Returns ``image``.
    """
    _check_blend_inputs(image, mask, color, alpha)
    table = tint_table(color, alpha)

    def tint_band(top: int, bottom: int) -> None:
        # Only the band's columns from its first foreground pixel to its last are tinted and pasted: a person
        # spans half the frame's width or less (python -m bench.changes, an ellipse over 47% of a 1080p frame: 3.6
        # against 4.2 ms)
        columns = np.flatnonzero(mask[top:bottom].any(axis=0))
        if columns.size:
            left, right = int(columns[0]), int(columns[-1]) + 1
            box = (left, top, right, bottom)
            image.paste(image.crop(box).point(table), box, mask=bilevel(mask[top:bottom, left:right]))

    image.load()
    if image.readonly:  # shares a buffer (Image.fromarray): a paste copies it first, so one pixel onto itself
        image.paste(image.crop((0, 0, 1, 1)), (0, 0))  # does that here, not in two bands' threads at once
    # Disjoint rows of one image, on every core: in the pipeline at 12 MP the blend took 13 ms against 25-29 ms
    # on one thread (make bench, two runs); alone at 1080p, two threads were slower (python -m bench.changes).
    run_bands(tint_band, image.height, rows_per_band(image.width))
    return image


def _check_blend_inputs(image: Image.Image, mask: np.ndarray, color: Color, alpha: float) -> None:
    if image.mode != "RGB":
        raise ValueError(f"blend needs an RGB image, got mode {image.mode}: decode with app.core.decoding first")
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
    return Image.fromarray(mask_levels(mask))


def mask_levels(mask: np.ndarray) -> np.ndarray:
    """Boolean HxW mask -> its grey levels as a uint8 array: 255 for foreground, 0 for background (the mask's
    picture: ``app.core.output.encoding.encode_picture`` writes its PNG from the array itself)."""
    return np.ascontiguousarray(mask, dtype=bool).view(np.uint8) * np.uint8(255)


def bilevel(mask: np.ndarray) -> Image.Image:
    """Boolean HxW mask -> mode "1" image, the cheapest mask ``Image.paste`` takes (the module docstring)."""
    return Image.fromarray(np.ascontiguousarray(mask, dtype=bool))


def cut_out_in_place(image: Image.Image, mask: np.ndarray) -> Image.Image:
    """RGB ``image`` -> RGBA, itself: the pixels where ``mask`` is true, fully transparent black elsewhere.

    The background's colours are zeroed, not only hidden: a transparent pixel would
    otherwise still carry what the caller asked to cut away.
    """
    if mask.shape != (image.height, image.width):
        raise ValueError(f"mask shape {mask.shape} does not match the image's {(image.height, image.width)}")
    image.paste((0, 0, 0), mask=bilevel(~mask))
    image.putalpha(mask_to_image(mask))
    return image
