"""Photos as phones save them: decoding a 12 MP HEIC and AVIF next to the same JPEG, and the cost of sRGB.

    python -m bench.phone_photos               # -> the log (markdown), pasted into docs/benchmarks.md
    python -m bench.phone_photos --rounds 3

1. Decode: ``app.core.decoding.imaging.decode_image`` (what the service runs: limits, decode,
   orientation, RGB) on one photo-like 12 MP frame (``bench.photo``) saved as a phone
   would: JPEG quality 90, HEIC quality 65 (about the JPEG's size) in 512x512 tiles as
   an iPhone writes it (pillow-heif, x265), AVIF quality 75 (Pillow, libaom). Medians, round-robin, with the
   decoders' threads at the usable CPUs and at 1 (Lambda below 1769 MB has one vCPU); and
   how much a fresh process's peak RSS grows while each decodes.
2. sRGB: a Display P3 profile (``tests.samples``) through ``app.core.decoding.colour``: building
   the transform, converting the 12 MP frame, converting the model-size frame the
   segmenter converts; and how far the bundled model's mask moves when converting after
   the resize (what the segmenter does) or not at all, against converting first.
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import pi_heif
import pillow_heif
from PIL import AvifImagePlugin, Image

from app.core.decoding import colour
from app.core.decoding.imaging import DecodeLimits, decode_image
from app.core.resources.cpus import usable_cpus
from app.core.settings import Settings
from app.runtime import load_segmenter
from bench import REPO
from bench.measure import machine_info, time_ms
from bench.photo import photo_jpeg
from tests.samples import DISPLAY_P3_ICC
from tests.support import PERSON_JPEG

SIZE = (4000, 3000)
LIMITS = DecodeLimits(max_bytes=10**9, max_pixels=10**9)
HEIC_QUALITY, HEIC_TILE = 65, 512  # ~2 MB like the JPEG and an iPhone's 12 MP HEIC; a grid of 512x512 tiles
MODEL_SIZE = (256, 256)  # the bundled model's input (its metadata)
AVIF_QUALITY, AVIF_SPEED = 75, 8  # Pillow's default quality; speed only changes the encoding time
# VmHWM, not ru_maxrss: Linux keeps ru_maxrss across fork+exec (bench/run.py says more).
DECODE_CHILD = """
import os, sys
from pathlib import Path
from app.core.decoding.imaging import DecodeLimits, decode_image
from bench.memory import vmhwm_mb
data = Path(sys.argv[1]).read_bytes()
before = vmhwm_mb(os.getpid())
decode_image(data, DecodeLimits(max_bytes=10**9, max_pixels=10**9))
print(vmhwm_mb(os.getpid()) - before)
"""
logger = logging.getLogger("bench.phone_photos")


def encodings(jpeg: bytes) -> dict[str, bytes]:
    """The same frame as JPEG (as made), HEIC and AVIF."""
    frame = Image.open(io.BytesIO(jpeg)).convert("RGB")
    heic, avif = io.BytesIO(), io.BytesIO()
    pillow_heif.from_pillow(frame).save(heic, quality=HEIC_QUALITY, tile_size=HEIC_TILE)
    frame.save(avif, format="AVIF", quality=AVIF_QUALITY, speed=AVIF_SPEED)
    return {"JPEG q90": jpeg, f"HEIC q{HEIC_QUALITY}": heic.getvalue(), f"AVIF q{AVIF_QUALITY}": avif.getvalue()}


def decode_peaks_mb(files: dict[str, bytes]) -> dict[str, float]:
    """Per file: how much a fresh process's peak RSS grows while ``decode_image`` runs (the decoders' buffers)."""
    peaks = {}
    with tempfile.TemporaryDirectory(prefix="phone-photos-") as folder:
        for name, data in files.items():
            path = Path(folder) / "image"
            path.write_bytes(data)
            child = subprocess.run([sys.executable, "-c", DECODE_CHILD, str(path)], capture_output=True, text=True,
                                   check=True, cwd=REPO, timeout=300)
            peaks[name] = float(child.stdout.strip())
    return peaks


def set_decoder_threads(threads: int) -> None:
    pi_heif.options.DECODE_THREADS = threads
    AvifImagePlugin.DEFAULT_MAX_THREADS = threads


def decode_table(files: dict[str, bytes], rounds: int) -> dict[str, dict[str, float]]:
    """Per file: MB and the median decode ms at each thread count, round-robin."""
    table: dict[str, dict[str, float]] = {name: {"mb": len(data) / 1e6} for name, data in files.items()}
    for threads in sorted({usable_cpus(), 1}, reverse=True):
        set_decoder_threads(threads)
        times = rounds_of({name: partial(decode_image, data, LIMITS) for name, data in files.items()}, rounds)
        for name, samples in times.items():
            table[name][f"ms_{threads}_threads"] = statistics.median(samples)
    set_decoder_threads(usable_cpus())
    return table


def rounds_of(work: dict[str, Callable[[], object]], rounds: int) -> dict[str, list[float]]:
    """``rounds`` timings of each, one of each per round, after one untimed warm-up round."""
    for run in work.values():
        run()
    times: dict[str, list[float]] = {name: [] for name in work}
    for _ in range(rounds):
        for name, run in work.items():
            times[name].append(time_ms(run))
    return times


def srgb_costs(jpeg: bytes, rounds: int) -> dict[str, float]:
    """Building the P3 -> sRGB transform (uncached), converting the 12 MP frame and the model-size one."""
    image = decode_image(jpeg, LIMITS)
    small = image.resize(MODEL_SIZE, Image.Resampling.BILINEAR)
    transform = colour._srgb_transform(DISPLAY_P3_ICC)  # noqa: SLF001 - measured apart from its cache
    assert transform is not None
    build = [time_ms(partial(uncached_check, DISPLAY_P3_ICC)) for _ in range(rounds)]
    times = rounds_of({"full": partial(transform.apply, image), "small": partial(transform.apply, small)}, rounds)
    return {"check_and_build_ms": statistics.median(build), "full_ms": statistics.median(times["full"]),
            "small_ms": statistics.median(times["small"]), "full_mb": image.width * image.height * 3 / 1e6}


def mask_agreement(images: dict[str, Image.Image]) -> dict[str, dict[str, float]]:
    """IoU with the bundled model's mask of the image converted first: converted after the resize, not at all."""
    segmenter = load_segmenter(Settings())
    transform = colour._srgb_transform(DISPLAY_P3_ICC)  # noqa: SLF001
    assert transform is not None
    table = {}
    for name, image in images.items():
        exact = segmenter.segment(transform.apply(image)).mask  # untagged: taken as sRGB
        unconverted = segmenter.segment(image).mask
        image.info["icc_profile"] = DISPLAY_P3_ICC
        ours = segmenter.segment(image).mask
        table[name] = {"after_resize": iou(ours, exact), "not_converted": iou(unconverted, exact)}
    return table


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def agreement_images(jpeg: bytes) -> dict[str, Image.Image]:
    """The photo-like frame (random colours: many outside sRGB) and the model's own kind of photo at ~12 MP."""
    with Image.open(PERSON_JPEG) as sample:  # a test photo of the person model's split, 550x829
        person = sample.convert("RGB").resize((550 * 5, 829 * 5), Image.Resampling.BICUBIC)
    return {"photo-like frame (bench.photo)": decode_image(jpeg, LIMITS),
            "events/images/person.jpg x5 (the model's domain)": person}


def uncached_check(profile: bytes) -> bool:
    colour._srgb_transform.cache_clear()  # noqa: SLF001 - the first request with a new profile pays this
    return colour.is_srgb(profile)


def markdown(results: dict) -> str:
    machine = results["machine"]
    lines = [f"Measured by `python -m bench.phone_photos` on {machine['cpu']} ({machine['affinity_cpus']} CPUs), "
             f"load average {results['load_average'][0]:.2f} at the start and {results['load_average'][1]:.2f} at "
             f"the end; median of {results['rounds']} rounds, round-robin.", "",
             "| 12 MP file | MB | " + " | ".join(f"decode ms, {t} thread(s)" for t in results["threads"])
             + " | peak RSS growth while decoding, MB |",
             "| --- | ---: |" + " ---: |" * (len(results["threads"]) + 1)]
    for name, row in results["decode"].items():
        cells = " | ".join(f"{row[f'ms_{t}_threads']:.0f}" for t in results["threads"])
        lines.append(f"| {name} | {row['mb']:.2f} | {cells} | {results['peaks'][name]:.0f} |")
    srgb = results["srgb"]
    lines += ["", "Display P3 -> sRGB: first sight of a profile (sRGB check + transform) "
              f"{srgb['check_and_build_ms']:.1f} ms; converting the 12 MP frame {srgb['full_ms']:.0f} ms and "
              f"{srgb['full_mb']:.0f} MB more; converting the model's 256x256 input {srgb['small_ms']:.2f} ms.", "",
              "| P3-tagged 12 MP image | mask IoU, converted after the resize | not converted |",
              "| --- | ---: | ---: |"]
    for name, row in results["masks"].items():
        lines.append(f"| {name} | {row['after_resize']:.4f} | {row['not_converted']:.4f} |")
    lines += ["", "(IoU against the mask of the image converted at full size, then resized.)"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    started = os.getloadavg()[0]
    jpeg = photo_jpeg(*SIZE)
    files = encodings(jpeg)
    results = {"machine": machine_info(), "rounds": args.rounds, "threads": sorted({usable_cpus(), 1}, reverse=True),
               "decode": decode_table(files, args.rounds), "peaks": decode_peaks_mb(files),
               "srgb": srgb_costs(jpeg, args.rounds),
               "masks": mask_agreement(agreement_images(jpeg))}
    results["load_average"] = (started, os.getloadavg()[0])
    logger.info("%s", markdown(results))


if __name__ == "__main__":
    main()
