"""Output formats side by side: size and encode time per format at 1080p, 12 MP and 48 MP, and whether a
photo-like JPEG upload of up to 4.4 MB gets a JPEG or WebP result that fits Lambda's response.

    python -m bench.formats                  # -> bench/formats.json and docs/benchmarks.md, "Output formats"
    python -m bench.formats --rounds 3

Encoders are ``app.core.output.encoding.encode_picture`` (what the service runs), timed on
the same photo-like overlay (``bench.photo``) round-robin, median of ``--rounds``.
The upload check runs the whole pipeline (bundled model) on JPEGs made to sit just
under 4.4 MB at several camera qualities: the largest frame each quality fits.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
from functools import partial
from typing import Any

from app.core.decoding.imaging import DecodeLimits
from app.core.options import ImageFormat, RenderOptions
from app.core.output.encoding import encode_picture
from app.core.pipeline import render
from app.core.settings import Settings
from app.runtime import load_segmenter
from bench import REPO
from bench.measure import machine_info, time_ms
from bench.photo import photo_jpeg, photo_overlay
from bench.report import update_docs

SIZES = {"1080p": (1920, 1080), "12MP": (4000, 3000), "48MP": (8000, 6000)}
ENCODINGS: dict[str, tuple[ImageFormat, int | None]] = {"PNG": ("png", None), "JPEG q85": ("jpeg", 85),
                                                        "WebP q80": ("webp", 80)}
RESPONSE_LIMIT = 4_400_000  # template.yaml's MAX_RESPONSE_BYTES: Lambda's 6 MB after base64
# Camera qualities and, for each, the largest 4:3 frame POST /predict takes: its photo-like JPEG just
# under the 4.4 MB upload limit, or 50 MP (MAX_PIXELS) where the bytes would allow more.
UPLOADS = {95: (4360, 3270), 90: (5900, 4425), 75: (8160, 6120), 50: (8160, 6120)}
OUT = REPO / "bench" / "formats.json"
DOCS = REPO / "docs" / "benchmarks.md"
logger = logging.getLogger("bench.formats")


def encode_table(rounds: int) -> dict[str, dict[str, dict[str, float]]]:
    """Per size and encoding: median ms and MB of the same overlay."""
    table: dict[str, dict[str, dict[str, float]]] = {}
    for label, (width, height) in SIZES.items():
        picture = photo_overlay(width, height)
        times: dict[str, list[float]] = {name: [] for name in ENCODINGS}
        for _ in range(rounds):
            for name, (image_format, quality) in ENCODINGS.items():
                times[name].append(time_ms(partial(encode_picture, picture, image_format, quality)))
        sizes = {name: len(encode_picture(picture, *encoding).body) for name, encoding in ENCODINGS.items()}
        table[label] = {name: {"ms": statistics.median(times[name]), "mb": sizes[name] / 1e6} for name in ENCODINGS}
        logger.info("%s: %s", label, table[label])
    return table


def upload_check() -> list[dict[str, Any]]:
    """Each near-limit upload through the pipeline as JPEG and as WebP: does the result fit the response?"""
    settings = Settings()
    segmenter = load_segmenter(settings)
    limits = DecodeLimits(max_bytes=RESPONSE_LIMIT, max_pixels=settings.MAX_PIXELS)
    rows = []
    for quality, (width, height) in UPLOADS.items():
        data = photo_jpeg(width, height, quality=quality)
        row: dict[str, Any] = {"camera_quality": quality, "size": f"{width}x{height}", "upload_mb": len(data) / 1e6}
        for image_format in ("jpeg", "webp"):
            rendered = render(segmenter, data, limits, RenderOptions(format=image_format), fit_within=RESPONSE_LIMIT)
            row[f"{image_format}_mb"] = len(rendered.result.body) / 1e6
            row[f"{image_format}_quality"] = rendered.result.quality
        row["fits"] = all(row[f"{f}_mb"] * 1e6 <= RESPONSE_LIMIT for f in ("jpeg", "webp"))
        logger.info("%s", row)
        rows.append(row)
    return rows


def markdown(results: dict[str, Any]) -> str:
    lines = [f"Measured by `python -m bench.formats` on {results['machine']['cpu']}, load average "
             f"{results['load_average']:.2f} at the start; median of {results['rounds']} rounds, round-robin.", "",
             "| size | " + " | ".join(f"{name} MB | ms" for name in ENCODINGS) + " |",
             "| --- |" + " ---: | ---: |" * len(ENCODINGS)]
    for label, row in results["encodings"].items():
        lines.append(f"| {label} | " + " | ".join(f"{row[n]['mb']:.2f} | {row[n]['ms']:.0f}" for n in ENCODINGS) + " |")
    lines += ["", "Photo-like JPEG uploads just under 4.4 MB, through the whole pipeline, result at the default "
              "quality (goal: both fit the 4.4 MB response limit):", "",
              "| camera quality | frame | upload MB | JPEG result MB (quality) | WebP result MB (quality) | fits |",
              "| ---: | --- | ---: | ---: | ---: | --- |"]
    for row in results["uploads"]:
        lines.append(f"| {row['camera_quality']} | {row['size']} | {row['upload_mb']:.2f} | {row['jpeg_mb']:.2f} "
                     f"({row['jpeg_quality']}) | {row['webp_mb']:.2f} ({row['webp_quality']}) | "
                     f"{'yes' if row['fits'] else 'no'} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    results = {"machine": machine_info(), "load_average": os.getloadavg()[0], "rounds": args.rounds,
               "encodings": encode_table(args.rounds), "uploads": upload_check()}
    OUT.write_text(json.dumps(results, indent=2) + "\n")
    update_docs(DOCS, markdown(results), name="formats")


if __name__ == "__main__":
    main()
