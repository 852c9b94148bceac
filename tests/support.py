"""What several test layers share: paths, events, sample images, and expectations computed without the app.

Expected pixels are computed here with numpy from the documented formulas, never
with the code under test, so a wrong blend cannot agree with itself.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
BUNDLED_MODEL = REPO / "model" / "weights" / "unet.onnx"  # the fp32 reference model (its card, the golden test)
DEFAULT_MODEL = REPO / "model" / "weights" / "unet-int8.onnx"  # what the service serves unless MODEL_URI says else
EVENTS = REPO / "events"
PNGSUITE = REPO.parent / "shared" / "corpus" / "pngsuite" / "png"
SAMPLE_JPEG = EVENTS / "images" / "blobs.jpg"
SAMPLE_PNG = EVENTS / "images" / "blobs.png"
PERSON_JPEG = EVENTS / "images" / "person.jpg"  # a real photo: test photo 0534 of model.ccp's split (tests/photos)
# The events' bucket: template.yaml's name for stack "unet-segmentation" in account 123456789012, us-east-1.
BUCKET = "unet-segmentation-123456789012-us-east-1"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TINY_MODEL_VARIABLE = "TINY_MODEL_PATH"  # conftest's tiny_model_path: a file made by export_tiny_model


def export_tiny_model(path: Path) -> Path:
    """A 4-wide UNet at 64x64, exported with the real exporter (parity verified): fast to run. Needs torch."""
    import torch

    from model.export import export_onnx
    from model.metadata import build_metadata
    from model.preprocessing import Preprocessing
    from model.unet import UNet, UNetConfig

    torch.manual_seed(0)
    prep = Preprocessing(height=64, width=64)
    identity = {"model_name": "tiny-test-unet", "model_version": "0.0.1", "training_data": "untrained"}
    export_onnx(UNet(UNetConfig(base_width=4)), prep, path, build_metadata(prep, identity, {}))
    return path


def model_card() -> dict[str, Any]:
    """The json block of model/weights/MODEL_CARD.md: the bundled model's figures, which its tests recompute."""
    text = (REPO / "model" / "weights" / "MODEL_CARD.md").read_text()
    block = re.search(r"```json\n(.*?)\n```", text, re.DOTALL)
    assert block, "MODEL_CARD.md has no json block"
    return json.loads(block.group(1))


def load_event(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text())


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def encode(image: Image.Image, fmt: str = "PNG", **params: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def noise(width: int, height: int, seed: int = 0) -> Image.Image:
    """Random RGB pixels: every channel value occurs, so a wrong colour table shows."""
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8))


def rgb_of(path: Path) -> Image.Image:
    with Image.open(path) as image:
        return image.convert("RGB")


def expected_overlay(pixels: np.ndarray, mask: np.ndarray, color: tuple[int, int, int], alpha: float) -> np.ndarray:
    """docs/api.md's formula: foreground ``floor((1 - alpha) * pixel + alpha * colour + 0.5)``; background as is."""
    table = np.array([[math.floor((1.0 - alpha) * v + alpha * c + 0.5) for c in color] for v in range(256)])
    tinted = np.stack([table[pixels[..., channel], channel] for channel in range(3)], axis=-1).astype(np.uint8)
    return np.where(mask[..., None], tinted, pixels)


def template_cors_rules(origins: list[str] | None = None) -> list[dict[str, Any]]:
    """The bucket's CORS rules as template.yaml writes them, in the shape S3's PutBucketCors takes; ``origins``
    stands for the UploadCorsOrigins parameter (None: its default)."""
    from cfnlint.decode import decode

    template, problems = decode(str(REPO / "template.yaml"))
    assert not problems and template is not None
    if origins is None:
        origins = str(template["Parameters"]["UploadCorsOrigins"]["Default"]).split(",")
    rules = template["Resources"]["Bucket"]["Properties"]["CorsConfiguration"]["CorsRules"]
    return [{"ID": str(rule["Id"]), "AllowedMethods": [str(method) for method in rule["AllowedMethods"]],
             "AllowedOrigins": list(origins), "AllowedHeaders": [str(header) for header in rule["AllowedHeaders"]],
             "ExposeHeaders": [str(header) for header in rule.get("ExposedHeaders", [])],
             "MaxAgeSeconds": int(rule["MaxAge"])} for rule in rules]
