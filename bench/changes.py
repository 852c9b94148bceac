"""Issue 22's changes, each beside what it replaced, interleaved round by round in one run (a markdown table).

    python -m bench.changes                 # ~1 minute on 2 cores
    python -m bench.changes --rounds 21

At 1080p (``bench.photo``), with the default model:

- the full-size decode beside the model (``app.core.resources.bands.beside``) against before it,
  for the PNG and JPEG overlays, as ratios to the model alone in the same rounds;
- the row bands on every usable CPU against one CPU, for ``encode_png``, the upsample and the blend;
- the overlay's tint pasted through a mode "1" mask against an "L" mask (the same pixels), and over each band's
  foreground columns against whole rows (a person-like ellipse over 47% of the width);
- the caller working its bands beside the pool's threads against the pool's threads alone, for the
  PNG overlay and the mask, and how late a pool thread idle for 80 ms starts;
- the C heap trimmed after every request against after large ones only (``trim_heap_after``), for the
  PNG overlay and the mask;
- HTTP loopback minus in-process, uvicorn with httptools + uvloop against h11 + asyncio.

The one-CPU and "before" variants are the same code with ``bands.process_cpus`` or
``pipeline.beside`` replaced for the measurement: nothing here is a second implementation.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import requests
from PIL import Image

from app.core import pipeline
from app.core.decoding.imaging import decode_for_model, decode_full
from app.core.inference.segmenter import upsample_mask
from app.core.output import png
from app.core.output.drawing import bilevel, blend_in_place, mask_to_image, tint_table
from app.core.output.png import encode_png
from app.core.pipeline import render
from app.core.resources import bands
from app.core.resources.memory import trim_heap
from bench import REPO
from bench.inprocess import load_pipeline, model_alone
from bench.measure import time_ms
from bench.photo import photo_jpeg
from bench.server import Server

MODEL = REPO / "model" / "weights" / "unet-int8.onnx"
ROUNDS, WARMUP = 15, 2


@contextmanager
def replaced(module: Any, name: str, value: Any) -> Iterator[None]:
    """``module.name`` is ``value`` inside the block (a variant of the same code, for one measurement)."""
    kept = getattr(module, name)
    setattr(module, name, value)
    try:
        yield
    finally:
        setattr(module, name, kept)


def before_the_model(work: Callable[[], Any]) -> Callable[[], Any]:
    """``beside``'s stand-in: the work done at once, before the model, as it was."""
    result = work()
    return lambda: result


def medians(variants: dict[str, Callable[[], object]], rounds: int) -> dict[str, float]:
    """Median ms of each variant, the variants alternating round by round after ``WARMUP`` untimed rounds."""
    samples: dict[str, list[float]] = {name: [] for name in variants}
    for round_index in range(rounds + WARMUP):
        for name, work in variants.items():
            elapsed = time_ms(work)
            if round_index >= WARMUP:
                samples[name].append(elapsed)
    return {name: statistics.median(values) for name, values in samples.items()}


def overlay_variants(rounds: int) -> dict[str, float]:
    """The model alone and each overlay with the full-size decode beside the model or before it."""
    loaded, data = load_pipeline(MODEL), photo_jpeg(1920, 1080)
    jpeg = loaded.options.with_overrides({"format": "jpeg"})

    def overlay(options: Any, decode_first: bool) -> Callable[[], object]:
        def run() -> object:
            with replaced(pipeline, "beside", before_the_model if decode_first else pipeline.beside):
                return render(loaded.segmenter, data, loaded.limits, options)
        return run

    return medians({"model alone": model_alone(MODEL, loaded.segmenter),
                    "PNG overlay, decode beside": overlay(loaded.options, False),
                    "PNG overlay, decode before": overlay(loaded.options, True),
                    "JPEG overlay, decode beside": overlay(jpeg, False),
                    "JPEG overlay, decode before": overlay(jpeg, True)}, rounds)


def pool_only_map(work: Callable[[int, int], Any], height: int, max_rows: int) -> Any:
    """``map_bands``' stand-in: every band on the pool's threads while the caller waits, as it was."""
    workers = bands.process_cpus()
    rows = bands.row_bands(height, workers, max_rows)
    if workers == 1 or len(rows) <= 1:
        return (work(top, bottom) for top, bottom in rows)
    return bands._shared_pool(workers).map(lambda band: work(*band), rows)


def caller_variants(rounds: int) -> dict[str, float]:
    """The PNG overlay and the mask with the caller working bands beside the pool, and with the pool alone."""
    loaded, data = load_pipeline(MODEL), photo_jpeg(1920, 1080)
    mask = loaded.options.with_overrides({"output": "mask"})

    def rendered(options: Any, pool_only: bool) -> Callable[[], object]:
        def run() -> object:
            with replaced(bands, "map_bands", pool_only_map if pool_only else bands.map_bands), \
                    replaced(png, "map_bands", pool_only_map if pool_only else png.map_bands):
                return render(loaded.segmenter, data, loaded.limits, options)
        return run

    timed = medians({"PNG overlay, the caller works bands too": rendered(loaded.options, False),
                     "PNG overlay, bands on the pool alone": rendered(loaded.options, True),
                     "mask, the caller works bands too": rendered(mask, False),
                     "mask, bands on the pool alone": rendered(mask, True)}, rounds)
    return timed | {"a pool thread idle 80 ms: submit to start": pool_wake_ms(rounds)}


def pool_wake_ms(rounds: int, idle_s: float = 0.08) -> float:
    """Median ms from submitting a call to the shared pool, idle for ``idle_s``, to the call starting."""
    pool, delays = bands._shared_pool(bands.process_cpus()), []
    for _ in range(rounds):
        time.sleep(idle_s)
        submitted = time.perf_counter()
        delays.append((pool.submit(time.perf_counter).result() - submitted) * 1000)
    return statistics.median(delays)


def trim_variants(rounds: int) -> dict[str, float]:
    """The PNG overlay and the mask with the heap trimmed after every request, and after large ones only.

    A trim changes the request after it, so each variant's timed render follows an untimed one of its own."""
    loaded, data = load_pipeline(MODEL), photo_jpeg(1920, 1080)
    mask = loaded.options.with_overrides({"output": "mask"})

    def rendered(options: Any, trim_always: bool) -> Callable[[], float]:
        def run() -> float:
            with replaced(pipeline, "trim_heap_after", always_trim if trim_always else pipeline.trim_heap_after):
                render(loaded.segmenter, data, loaded.limits, options)  # the heap as this variant leaves it
                return time_ms(lambda: render(loaded.segmenter, data, loaded.limits, options))
        return run

    variants = {"PNG overlay, heap trimmed after every request": rendered(loaded.options, True),
                "PNG overlay, heap trimmed after large requests only": rendered(loaded.options, False),
                "mask, heap trimmed after every request": rendered(mask, True),
                "mask, heap trimmed after large requests only": rendered(mask, False)}
    samples: dict[str, list[float]] = {name: [] for name in variants}
    for round_index in range(rounds + WARMUP):
        for name, run in variants.items():
            elapsed = run()
            if round_index >= WARMUP:
                samples[name].append(elapsed)
    return {name: statistics.median(values) for name, values in samples.items()}


def always_trim(pixels: int) -> None:
    """``trim_heap_after``'s stand-in: the heap trimmed after every request, as it was."""
    trim_heap()


def band_variants(rounds: int) -> dict[str, float]:
    """encode_png, the upsample and the blend on every usable CPU and on one; the tint through an "L" and a "1" mask."""
    loaded, data = load_pipeline(MODEL), photo_jpeg(1920, 1080)
    image = decode_full(data, loaded.limits, decode_for_model(data, loaded.limits, (256, 256)))
    logits = np.linspace(-6, 6, 256 * 256, dtype=np.float32).reshape(256, 256)
    mask = upsample_mask(logits, image.size, 0.5)
    work = {"encode_png": lambda: encode_png(image), "upsample": lambda: upsample_mask(logits, image.size, 0.5),
            "blend": lambda: blend_in_place(image.copy(), mask, (255, 59, 48), 0.5)}
    cpus = bands.process_cpus()
    variants: dict[str, Callable[[], object]] = {}
    for name, call in work.items():
        variants[f"{name}, {cpus} CPUs"] = call
        variants[f"{name}, 1 CPU"] = lambda call=call: _on_one_cpu(call)
    table = tint_table((255, 59, 48), 0.5)
    tinted = image.point(table)
    variants["tint pasted through an 'L' mask"] = lambda: image.copy().paste(tinted, None, mask_to_image(mask))
    variants["tint pasted through a '1' mask"] = lambda: image.copy().paste(tinted, None, bilevel(mask))
    figure = person_like_mask(image.width, image.height)
    variants["blend, each band's foreground columns"] = lambda: blend_in_place(image.copy(), figure, (255, 59, 48), 0.5)
    variants["blend, whole rows"] = lambda: whole_rows_blend(image.copy(), figure, (255, 59, 48), 0.5)
    return medians(variants, rounds)


def person_like_mask(width: int, height: int) -> np.ndarray:
    """An upright ellipse: 36% of the frame, 47% of its width, from a third of the way down to the bottom."""
    rows, columns = np.mgrid[0:height, 0:width]
    return ((columns - width / 2) / (0.234 * width)) ** 2 + ((rows - 0.65 * height) / (0.56 * height)) ** 2 < 1


def whole_rows_blend(image: Image.Image, mask: np.ndarray, color: tuple[int, int, int], alpha: float) -> Image.Image:
    """``blend_in_place``'s stand-in: every band with foreground tinted and pasted across its whole width, as it was."""
    table = tint_table(color, alpha)

    def tint_band(top: int, bottom: int) -> None:
        if mask[top:bottom].any():
            box = (0, top, image.width, bottom)
            image.paste(image.crop(box).point(table), box, mask=bilevel(mask[top:bottom]))

    bands.run_bands(tint_band, image.height, bands.rows_per_band(image.width))
    return image


def _on_one_cpu(call: Callable[[], object]) -> object:
    with replaced(bands, "process_cpus", lambda: 1):
        return call()


def http_variants(rounds: int) -> dict[str, float]:
    """In-process and over HTTP loopback to two servers, h11 + asyncio and httptools + uvloop, interleaved."""
    loaded, data = load_pipeline(MODEL), photo_jpeg(1920, 1080)
    logs, session = REPO / "bench" / "out", requests.Session()
    with Server(MODEL, logs / "changes-h11.log", uvicorn_args=("--http", "h11", "--loop", "asyncio")) as plain, \
            Server(MODEL, logs / "changes-httptools.log", uvicorn_args=("--http", "httptools", "--loop", "uvloop")) \
            as fast:
        plain.wait_ready()
        fast.wait_ready()

        def post(url: str) -> Callable[[], object]:
            return lambda: session.post(url, files={"file": ("p.jpg", data, "image/jpeg")}).content
        return medians({"in-process": lambda: render(loaded.segmenter, data, loaded.limits, loaded.options),
                        "HTTP, h11 + asyncio": post(plain.url), "HTTP, httptools + uvloop": post(fast.url)}, rounds)


def markdown(overlays: dict[str, float], banded: dict[str, float], http: dict[str, float],
             callers: dict[str, float], trims: dict[str, float]) -> str:
    model = overlays["model alone"]
    lines = [f"`python -m bench.changes`: 1080p, medians of interleaved rounds, 1-minute load "
             f"{os.getloadavg()[0]:.2f} at the end.", "", "| variant | median ms | note |", "| --- | ---: | --- |"]
    lines += [f"| {name} | {ms:.1f} | {ms / model:.2f}x the model alone |" for name, ms in overlays.items()]
    lines += [f"| {name} | {ms:.1f} | |" for name, ms in banded.items()]
    lines += [f"| {name} | {ms:.2f} | |" for name, ms in callers.items()]
    lines += [f"| {name} | {ms:.1f} | |" for name, ms in trims.items()]
    lines += [f"| {name} | {ms:.1f} | {ms - http['in-process']:+.1f} ms over in-process |" if name != "in-process"
              else f"| {name} | {ms:.1f} | |" for name, ms in http.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    args = parser.parse_args(argv)
    tables = (overlay_variants(args.rounds), band_variants(args.rounds), http_variants(args.rounds),
              caller_variants(args.rounds), trim_variants(args.rounds))
    sys.stdout.write(markdown(*tables) + "\n")


if __name__ == "__main__":
    main()
