"""PNG encoding for responses and S3 outputs.

Baseline: Pillow at compress_level=1. To be replaced by a faster path measured in bench/.
"""

from __future__ import annotations

import io

from PIL import Image


def encode_png(image: Image.Image) -> bytes:
    """Encode an RGB/RGBA/L image as PNG bytes."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()
