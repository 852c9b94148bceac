"""PNG encoders side by side on photo-like overlays: the measurement behind ``app/png.py``.

    python -m bench.png_candidates                 # the installed candidates
    pip install zlib-ng==1.1.0 deflate==0.9.0 fpng==0.1.0 pyspng-seunglab==1.1.3 imagecodecs
    python -m bench.png_candidates                 # all of them

Rounds are interleaved (every encoder once per round) so the machine's noise hits
all of them alike; medians and ratios to Pillow's level 1 come from the same run.
Every output is decoded with Pillow and compared pixel for pixel.
"""

from __future__ import annotations

import argparse
import importlib
import io
import json
import logging
import statistics
import struct
import time
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from app.core.output.png import encode_png
from bench.photo import photo_overlay

Encoder = Callable[[Image.Image], bytes]
SIZES = {"1080p": (1920, 1080), "12MP": (4000, 3000)}
ROUNDS = {"1080p": 11, "12MP": 5}  # 12 MP: Pillow's default level alone takes ~7 s a round
BASELINE = "pillow level 1"
OUT = Path(__file__).resolve().parent / "out" / "png_candidates.json"
logger = logging.getLogger("bench.png_candidates")


def pillow(level: int) -> Encoder:
    def encode(image: Image.Image) -> bytes:
        buffer = io.BytesIO()
        image.save(buffer, format="PNG", compress_level=level)
        return buffer.getvalue()

    return encode


def up_filtered(image: Image.Image) -> np.ndarray:
    """All scanlines with PNG's Up filter, whole image at once (app.core.output.png does it in stripes)."""
    rows = np.asarray(image).reshape(image.height, -1)
    out = np.empty((rows.shape[0], rows.shape[1] + 1), dtype=np.uint8)
    out[:, 0] = 2
    out[0, 1:] = rows[0]
    np.subtract(rows[1:], rows[:-1], out=out[1:, 1:])
    return out


def png_file(image: Image.Image, idat: bytes) -> bytes:
    color_type = {"L": 0, "RGB": 2, "RGBA": 6}[image.mode]
    header = struct.pack(">IIBBBBB", image.width, image.height, 8, color_type, 0, 0, 0)
    chunks = [(b"IHDR", header), (b"IDAT", idat), (b"IEND", b"")]
    body = b"".join(struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d)) for t, d in chunks)
    return b"\x89PNG\r\n\x1a\n" + body


def numpy_up(compress: Callable[[np.ndarray], bytes]) -> Encoder:
    return lambda image: png_file(image, compress(up_filtered(image)))


def striped_up(module_name: str, level: int, stripes: int = 2) -> Encoder:
    """pigz's trick: deflate stripes in parallel, byte-aligned by a full flush, one zlib stream."""
    module = importlib.import_module(module_name)
    pool = ThreadPoolExecutor(stripes)

    def deflate(args: tuple[int, np.ndarray]) -> bytes:
        index, stripe = args
        compressor = module.compressobj(level, zlib.DEFLATED, -15)
        last = index == stripes - 1
        return compressor.compress(stripe) + compressor.flush(zlib.Z_FINISH if last else zlib.Z_FULL_FLUSH)

    def encode(image: Image.Image) -> bytes:
        filtered = up_filtered(image)
        parts = pool.map(deflate, enumerate(np.array_split(filtered, stripes)))
        idat = b"\x78\x01" + b"".join(parts) + struct.pack(">I", zlib.adler32(filtered))
        return png_file(image, idat)

    return encode


def optional_candidates() -> dict[str, Callable[[], Encoder]]:
    """Encoders from packages that are not runtime dependencies: built only if installed."""
    return {
        "numpy Up + zlib-ng 1": lambda: numpy_up(lambda d: importlib.import_module("zlib_ng.zlib_ng").compress(d, 1)),
        "numpy Up + libdeflate 1": lambda: numpy_up(lambda d: importlib.import_module("deflate").zlib_compress(d, 1)),
        "fpng (py-fpng-nb)": lambda: fpng_encoder(),
        "pyspng-seunglab level 1": lambda: spng_encoder(),
        "imagecodecs png level 1": lambda: imagecodecs_encoder(),
    }


def fpng_encoder() -> Encoder:
    importlib.import_module("fpng")  # registers Pillow's "FPNG" format

    def encode(image: Image.Image) -> bytes:
        buffer = io.BytesIO()
        image.save(buffer, format="FPNG")
        return buffer.getvalue()

    return encode


def spng_encoder() -> Encoder:
    pyspng = importlib.import_module("pyspng")
    return lambda image: pyspng.encode(np.asarray(image), compress_level=1)


def imagecodecs_encoder() -> Encoder:
    imagecodecs = importlib.import_module("imagecodecs")
    return lambda image: imagecodecs.png_encode(np.asarray(image), level=1)


def candidates() -> dict[str, Encoder]:
    found: dict[str, Encoder] = {
        "pillow level 6 (default)": pillow(6),
        BASELINE: pillow(1),
        "pillow level 0": pillow(0),
        "numpy Up + stdlib zlib 1": numpy_up(lambda d: zlib.compress(d, 1)),
        "numpy Up + ISA-L 0": numpy_up(lambda d: importlib.import_module("isal.isal_zlib").compress(d, 0)),
        "numpy Up + ISA-L 2": numpy_up(lambda d: importlib.import_module("isal.isal_zlib").compress(d, 2)),
        "app.core.output.png (numpy Up + ISA-L 1, striped)": encode_png,
        "numpy Up + ISA-L 1, 2 stripes in 2 threads": striped_up("isal.isal_zlib", 1),
    }
    for name, build in optional_candidates().items():
        try:
            found[name] = build()
        except ImportError:
            logger.info("skipped %s: not installed", name)
    return found


def measure(encoders: dict[str, Encoder], image: Image.Image, rounds: int) -> dict[str, dict[str, float]]:
    """Median ms and output size per encoder; raises if any output does not decode to the input."""
    expected = np.asarray(image)
    sizes: dict[str, int] = {}
    for name, encode in encoders.items():
        data = encode(image)
        if not np.array_equal(np.asarray(Image.open(io.BytesIO(data)).convert(image.mode)), expected):
            raise AssertionError(f"{name} did not round-trip")
        sizes[name] = len(data)
    times: dict[str, list[float]] = {name: [] for name in encoders}
    for _ in range(rounds):
        for name, encode in encoders.items():
            started = time.perf_counter()
            encode(image)
            times[name].append((time.perf_counter() - started) * 1000.0)
    base = statistics.median(times[BASELINE])
    return {
        name: {
            "median_ms": statistics.median(ts),
            "ratio_to_pillow_1": statistics.median(ts) / base,
            "mb": sizes[name] / 1e6,
            "base64_mb": 4 * ((sizes[name] + 2) // 3) / 1e6,
        }
        for name, ts in times.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    encoders = candidates()
    results = {}
    for label in args.sizes:
        results[label] = measure(encoders, photo_overlay(*SIZES[label]), ROUNDS[label])
        logger.info("== %s %s, median of %d interleaved rounds", label, SIZES[label], ROUNDS[label])
        for name, row in results[label].items():
            logger.info(
                "%-44s %8.1f ms  x%5.2f  %6.2f MB  base64 %6.2f MB",
                name,
                row["median_ms"],
                row["ratio_to_pillow_1"],
                row["mb"],
                row["base64_mb"],
            )
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
