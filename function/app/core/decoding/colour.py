"""Colour profiles: which ICC profile a decoded image keeps, and sRGB pixels for the model.

Phones tag their photos with a profile (Display P3 on iPhones). The decoded image keeps
its input's profile in ``info["icc_profile"]`` (Pillow's own key) when it describes RGB
pixels and littlecms can read it (``rgb_profile``); the overlay and the cutout, drawn
into that image, embed it (``app.core.output.encoding``), so a viewer shows the original's
colours under the tint. A grey, CMYK or unreadable profile is dropped: the pixels are
then read as sRGB, as before.

The model was trained on sRGB pixels, so it is given sRGB (``to_srgb``): converted with
littlecms, relative colorimetric (a matrix profile such as Display P3 has no perceptual
table, and out-of-gamut colours clip as a browser's do). The segmenter converts after
resizing to the model's size, as libvips' thumbnailer colour-manages after its resize
(libvips/resample/thumbnail.c): ~1 ms, where converting a 12 MP photo first costs ~0.4 s
and a second full-size copy (36 MB; 300 MB at 100 MP), for a mask of IoU 0.998 with it on
the model's kind of image (docs/benchmarks.md, "HEIC, AVIF and colour profiles").

Whether a profile is sRGB is decided by what it does, not by its name or hash (vendors
ship many sRGB profiles, v2 and v4, and a name can say sRGB and be otherwise): when no
colour of a 17x17x17 grid moves by more than one level through profile -> sRGB, the
conversion is skipped. Transforms are cached per profile (building one takes ~6 ms).
"""

from __future__ import annotations

import io
from functools import lru_cache

import numpy as np
from PIL import Image, ImageCms

SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
INTENT = ImageCms.Intent.RELATIVE_COLORIMETRIC
RGB_MODES = frozenset({"RGB", "RGBA", "RGBX", "RGBa", "P", "PA"})  # modes whose colours an RGB profile describes
GRID_LEVELS = np.linspace(0, 255, 17).round().astype(np.uint8)  # 0, 16, ..., 255: 4913 probe colours
IDENTITY_TOLERANCE = 1  # levels: littlecms rounds an sRGB -> sRGB transform within one
CACHED_PROFILES = 32  # distinct profiles: a handful of phone models' in practice


def rgb_profile(image: Image.Image) -> bytes | None:
    """``image``'s ICC profile when it describes its RGB pixels and can be read; else None."""
    profile = image.info.get("icc_profile")
    if not isinstance(profile, bytes) or not profile or image.mode not in RGB_MODES:
        return None
    return profile if _is_readable_rgb(profile) else None


def to_srgb(image: Image.Image, profile: bytes | None) -> Image.Image:
    """RGB ``image`` (pixels in ``profile``'s space) converted to sRGB; ``image`` itself if sRGB already."""
    transform = None if profile is None else _srgb_transform(profile)
    return image if transform is None else transform.apply(image)


def is_srgb(profile: bytes) -> bool:
    """Whether ``profile`` (a readable RGB profile) maps every probe colour to itself, within a level."""
    return _srgb_transform(profile) is None


@lru_cache(maxsize=CACHED_PROFILES)
def _is_readable_rgb(profile: bytes) -> bool:
    try:
        parsed = ImageCms.ImageCmsProfile(io.BytesIO(profile))
    except (OSError, ValueError, ImageCms.PyCMSError):  # Pillow raises OSError("cannot open profile ...")
        return False
    return parsed.profile.xcolor_space == "RGB "


@lru_cache(maxsize=CACHED_PROFILES)
def _srgb_transform(profile: bytes) -> ImageCms.ImageCmsTransform | None:
    """profile -> sRGB, or None when it changes no probe colour by more than ``IDENTITY_TOLERANCE``."""
    source = ImageCms.ImageCmsProfile(io.BytesIO(profile))
    transform = ImageCms.buildTransform(source, SRGB, "RGB", "RGB", renderingIntent=INTENT)
    probe = _probe_colours()
    moved = np.abs(np.asarray(transform.apply(probe), dtype=np.int16) - np.asarray(probe, dtype=np.int16))
    return None if int(moved.max()) <= IDENTITY_TOLERANCE else transform


def _probe_colours() -> Image.Image:
    """Every combination of ``GRID_LEVELS`` per channel, as a one-row RGB image."""
    red, green, blue = np.meshgrid(GRID_LEVELS, GRID_LEVELS, GRID_LEVELS, indexing="ij")
    return Image.fromarray(np.stack([red, green, blue], axis=-1).reshape(1, -1, 3))
