"""Peak memory per decoded pixel, per input format, at 40 MP: what one request costs above the warm server.

    python -m bench.bytes_per_pixel                 # -> the table in docs/benchmarks.md ("Memory per pixel")
    python -m bench.bytes_per_pixel --megapixels 12

One fresh uvicorn (the served default model), warmed with two 1080p requests; then for
each format a photo-like image of ``--megapixels`` is posted once (PNG overlay, the
default answer), each after one more 1080p request: its peak RSS (VmHWM, reset before
each request through /proc/PID/clear_refs) minus the warm RSS, divided by the pixels,
is the bytes per pixel. The 1080p request before each row makes every row's warm server
the same: one that has just served a common request, the model's working memory held
(a large request gives it back, ``app.core.inference.segmenter``; the next row would
otherwise count its regrowth). The decoded RGB image alone is 4 B/px in Pillow (RGBX)
and the mask 1 B/px; the rest is decoder buffers and the encoded answer. These figures set
``app.core.resources.budget.BYTES_PER_PIXEL``, what the memory budget admits requests by.
"""

from __future__ import annotations

import argparse
import io
import logging
import os
from collections.abc import Callable
from typing import Any

import requests
from PIL import Image

from bench import REPO
from bench.memory import reset_peak, vmhwm_mb, vmrss_mb
from bench.photo import photo_jpeg
from bench.report import publish
from bench.server import Server

OUT = REPO / "bench" / "out"
# Issue 22: at most 6 B/px at 40 MP for the three formats most uploads come in; the others are reported.
GOAL_FORMATS = ("JPEG q90", "PNG", "TIFF LZW")
GOAL_BYTES_PER_PIXEL = 6.0
RESULTS = REPO / "bench" / "bytes_per_pixel.json"
logger = logging.getLogger("bench.bytes_per_pixel")


def photo(width: int, height: int) -> Image.Image:
    with Image.open(io.BytesIO(photo_jpeg(width, height))) as decoded:
        return decoded.convert("RGB")


def encoders() -> dict[str, Callable[[Image.Image], bytes]]:
    """One encoding per accepted format, as a phone or an editor would save it."""
    def save(**params: Any) -> Callable[[Image.Image], bytes]:
        def encode(image: Image.Image) -> bytes:
            buffer = io.BytesIO()
            image.save(buffer, **params)
            return buffer.getvalue()
        return encode

    found = {"JPEG q90": save(format="JPEG", quality=90), "PNG": save(format="PNG", compress_level=1),
             "WebP q80": save(format="WEBP", quality=80, method=0),
             "TIFF LZW": save(format="TIFF", compression="tiff_lzw"),
             "TIFF raw": save(format="TIFF"), "BMP": save(format="BMP"), "AVIF q60": save(format="AVIF", quality=60)}
    try:
        import pillow_heif  # the tests' encoder (dev requirements): the service only decodes HEIF

        pillow_heif.register_heif_opener()
        found["HEIC q60"] = save(format="HEIF", quality=60)
    except ImportError:
        logger.warning("pillow-heif is not installed: no HEIC row")
    return found


def photo_size(megapixels: float) -> tuple[int, int]:
    """A phone photo's 4:3 frame of about ``megapixels``."""
    width = int((megapixels * 1e6 * 4 / 3) ** 0.5)
    return width, int(width * 3 / 4)


def measure(megapixels: float) -> dict[str, Any]:
    width, height = photo_size(megapixels)
    image, files = photo(width, height), {}
    for name, encode in encoders().items():
        files[name] = encode(image)
    env = {"MAX_UPLOAD_BYTES": str(max(len(data) for data in files.values()) + 1), "MAX_PIXELS": "100000000"}
    rows = {}
    with Server(REPO / "model" / "weights" / "unet-int8.onnx", OUT / "bytes_per_pixel.log", extra_env=env) as server:
        server.wait_ready()
        warm_up = photo_jpeg(1920, 1080)
        for _ in range(2):
            requests.post(server.url, files={"file": warm_up}, timeout=300).raise_for_status()
        pid = server.process.pid  # type: ignore[union-attr]
        for name, data in files.items():
            requests.post(server.url, files={"file": warm_up}, timeout=300).raise_for_status()
            warm = vmrss_mb(pid)
            reset_peak(pid)
            response = requests.post(server.url, files={"file": data}, timeout=600)
            peak = vmhwm_mb(pid)
            rows[name] = {"file_mb": len(data) / 1e6, "status": response.status_code, "warm_rss_mb": warm,
                          "peak_mb": peak, "bytes_per_pixel": (peak - warm) * 1e6 / (width * height)}
            logger.info("%s: %s", name, rows[name])
    return {"size": f"{width}x{height}", "pixels": width * height, "load_average": os.getloadavg()[0], "rows": rows}


def by_format(results: dict[str, Any]) -> dict[str, float]:
    """Bytes per pixel per format: what ``make bench``'s goals read (``GOAL_FORMATS``)."""
    return {name: row["bytes_per_pixel"] for name, row in results["rows"].items()}


def markdown(results: dict[str, Any]) -> str:
    lines = [f"`python -m bench.bytes_per_pixel`: one {results['size']} photo-like image "
             f"({results['pixels'] / 1e6:.1f} MP) per format through POST /predict (PNG overlay), peak RSS above the "
             f"warm server's, per pixel; 1-minute load {results['load_average']:.2f} at the end.", "",
             "| format | file MB | status | warm RSS MB | peak RSS MB | bytes per pixel | goal |",
             "| --- | ---: | ---: | ---: | ---: | ---: | --- |"]
    for name, row in results["rows"].items():
        goal = f"<= {GOAL_BYTES_PER_PIXEL:g}" if name in GOAL_FORMATS else "reported"
        lines.append(f"| {name} | {row['file_mb']:.1f} | {row['status']} | {row['warm_rss_mb']:.0f} | "
                     f"{row['peak_mb']:.0f} | {row['bytes_per_pixel']:.2f} | {goal} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--megapixels", type=float, default=40.0)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    results = measure(args.megapixels)
    publish(results, markdown(results), RESULTS, "bytes_per_pixel", write=not args.no_write)


if __name__ == "__main__":
    main()
