"""Seed corpora: real inputs for each target to start from, written into a directory libFuzzer reads.

- ``decode``: PngSuite (every PNG colour type, bit depth, interlace and chunk, and its broken
  files), the events' sample JPEG and PNG, and small files made here in every other accepted
  format: HEIC and AVIF (8- and 10-bit, rotated by their containers), WebP, GIF, BMP, TIFF,
  a JPEG with an EXIF orientation;
- ``s3_event``, ``batch_event``, ``http_event``: the events of ``events/`` that each
  function receives, and the others (which it must refuse);

and, for every target, the inputs once found and fixed (tests/corpus/fuzz/<target>/).
"""

from __future__ import annotations

import io
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parents[1]
EVENTS = REPO / "events"
PNGSUITE = REPO.parent / "shared" / "corpus" / "pngsuite" / "png"
FOUND = REPO / "tests" / "corpus" / "fuzz"
EVENT_SEEDS = {
    "s3_event": ("s3_put_*.json", "sqs_message.json", "eventbridge_scheduled.json"),
    "batch_event": ("s3_batch_operations_*.json", "s3_put_batch.json"),
    "http_event": ("http_api_*.json", "rest_api_*.json", "alb_*.json", "s3_put_upload.json"),
}


def write_seeds(target: str, directory: Path) -> Path:
    """``directory`` (emptied first) filled with the target's seeds; returns it."""
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    sources = image_seeds() if target == "decode" else event_seeds(target)
    for name, data in sources.items():
        (directory / name).write_bytes(data)
    for found in sorted((FOUND / target).glob("[!.]*")):
        (directory / f"found-{found.name}").write_bytes(found.read_bytes())
    return directory


def event_seeds(target: str) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for pattern in EVENT_SEEDS[target] for path in sorted(EVENTS.glob(pattern))}


def image_seeds() -> dict[str, bytes]:
    files = [*sorted(PNGSUITE.glob("*.png")), *sorted((EVENTS / "images").glob("*"))]
    seeds = {path.name: path.read_bytes() for path in files}
    return {**seeds, **made_images()}


def _saved(image: Image.Image, fmt: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def made_images() -> dict[str, bytes]:
    """Small files in every accepted format but PNG (PngSuite has those), made by the tests' encoders."""
    from tests import samples

    picture = Image.radial_gradient("L").resize((48, 32)).convert("RGB")
    rotated_exif = Image.Exif()
    rotated_exif[0x0112] = 6
    makers: dict[str, Callable[[], bytes]] = {
        "heic.heic": lambda: samples.heic(picture),
        "heic-rotated.heic": lambda: samples.oriented("HEIF", picture, container=6),
        "heic-10bit.heic": lambda: samples.heic_10bit(samples.grey_levels_16bit([0, 30000, 65535], block=8)),
        "avif.avif": lambda: samples.avif(picture),
        "avif-rotated.avif": lambda: samples.oriented("AVIF", picture, container=8),
        "avif-10bit.avif": lambda: samples.avif_10bit(samples.grey_levels_16bit([0, 30000, 65535], block=8)),
        "exif-6.jpg": lambda: _saved(picture, "JPEG", exif=rotated_exif.tobytes()),
        "progressive.jpg": lambda: _saved(picture, "JPEG", progressive=True),
        "cmyk.jpg": lambda: _saved(picture.convert("CMYK"), "JPEG"),
        "lossy.webp": lambda: _saved(picture, "WEBP"),
        "alpha.webp": lambda: _saved(picture.convert("RGBA"), "WEBP", lossless=True),
        "palette.gif": lambda: _saved(picture.convert("P"), "GIF", transparency=0),
        "rgb.bmp": lambda: _saved(picture, "BMP"),
        "rle.bmp": lambda: _saved(picture.convert("P"), "BMP"),
        "lzw.tiff": lambda: _saved(picture, "TIFF", compression="tiff_lzw"),
        "grey16.tiff": lambda: _saved(Image.new("I;16", (16, 8), 4000), "TIFF"),
        "float.tiff": lambda: _saved(Image.new("F", (16, 8), 0.5), "TIFF"),
    }
    return {name: make() for name, make in makers.items()}


if __name__ == "__main__":  # python -m fuzz.seeds TARGET DIRECTORY (what fuzz.run calls)
    write_seeds(sys.argv[1], Path(sys.argv[2]))
