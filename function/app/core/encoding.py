"""Encoding a drawn picture into the bytes a caller receives, with their media type."""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image

from app.core.png import encode_png

PNG_MEDIA_TYPE = "image/png"


@dataclass(frozen=True)
class Encoded:
    """One output's bytes, what they are (``media_type``) and the file suffix they are stored under."""

    body: bytes
    media_type: str
    suffix: str


def encode_picture(picture: Image.Image) -> Encoded:
    """A drawn overlay or mask -> PNG (``app.core.png``: lossless, and faster than Pillow's encoder)."""
    return Encoded(encode_png(picture), PNG_MEDIA_TYPE, ".png")
