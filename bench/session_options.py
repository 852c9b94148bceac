"""onnxruntime session options vs memory and speed: the evidence behind docs/benchmarks.md's memory advice.

    python -m bench.session_options

For each variant, the serving code's own session options plus one change: a fresh
uvicorn serving ``app.main`` (its peak RSS after 1 + 5 requests of the 1080p and
12 MP photos) and, in this process, the model's inference time interleaved round
by round with the unchanged options. The change is applied by wrapping
``onnxruntime.InferenceSession`` in the experiment's processes only; the serving
code is not modified.
"""

from __future__ import annotations

import logging
import os
import statistics
from collections.abc import Callable
from typing import Any

import numpy as np
import onnxruntime as ort

from bench import REPO
from bench.measure import time_ms
from bench.run import MODEL, OUT_DIR, write_images
from bench.server import Server, post_image

Tweak = Callable[[ort.SessionOptions], None]
VARIANT_ENV = "BENCH_SESSION_VARIANT"
REQUESTS = 5  # after the first: onnxruntime's memory pattern allocates on the second run
ROUNDS = 25
logger = logging.getLogger("bench.session_options")


def _no_pattern(options: ort.SessionOptions) -> None:
    options.enable_mem_pattern = False


def _no_pattern_basic(options: ort.SessionOptions) -> None:
    options.enable_mem_pattern = False
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC


VARIANTS: dict[str, Tweak] = {
    "as served": lambda options: None,
    "enable_mem_pattern=False": _no_pattern,
    "enable_mem_pattern=False + ORT_ENABLE_BASIC": _no_pattern_basic,
}


def tweak_sessions(tweak: Tweak) -> None:
    """Every InferenceSession built from now on in this process gets ``tweak`` applied to its options."""
    original = ort.InferenceSession

    def build(path: str, options: ort.SessionOptions, providers: list[str]) -> ort.InferenceSession:
        tweak(options)
        return original(path, options, providers=providers)

    ort.InferenceSession = build  # type: ignore[misc,assignment]


def __getattr__(name: str) -> Any:
    """``uvicorn bench.session_options:app``: app.main's app, its session built with the variant's options."""
    if name != "app":
        raise AttributeError(name)
    tweak_sessions(VARIANTS[os.environ[VARIANT_ENV]])
    from app.main import app

    return app


def served_peak_rss(variant: str, image: Any, label: str) -> float:
    extra_env = {VARIANT_ENV: variant, "PYTHONPATH": str(REPO)}
    with Server(MODEL, OUT_DIR / f"session_options_{label}.log", "bench.session_options", extra_env) as server:
        server.first_answer(image)
        for _ in range(REQUESTS):
            post_image(server.url, image)
        return server.peak_rss_mb()


def inference_ms(rounds: int) -> dict[str, float]:
    """Median ms per variant, all sessions in this process, run round-robin on one input."""
    from app.segmenter import open_session

    original = ort.InferenceSession
    sessions = {}
    for name, tweak in VARIANTS.items():
        tweak_sessions(tweak)
        sessions[name] = open_session(MODEL, 2)
        ort.InferenceSession = original  # type: ignore[misc]
    batch = np.random.default_rng(0).standard_normal((1, 3, 256, 256), dtype=np.float32)
    times: dict[str, list[float]] = {name: [] for name in sessions}
    for _ in range(rounds):
        for name, session in sessions.items():
            times[name].append(time_ms(lambda s=session: s.run(None, {s.get_inputs()[0].name: batch})))
    return {name: statistics.median(samples) for name, samples in times.items()}


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    images = write_images(OUT_DIR)
    speed = inference_ms(ROUNDS)
    base = speed["as served"]
    logger.info("%-46s %10s %7s %14s %13s", "variant", "infer ms", "ratio", "peak MB 1080p", "peak MB 12MP")
    for variant in VARIANTS:
        peaks = [served_peak_rss(variant, images[label], label) for label in ("1080p", "12MP")]
        logger.info("%-46s %10.1f %7.2f %14.0f %13.0f", variant, speed[variant], speed[variant] / base, *peaks)


if __name__ == "__main__":
    main()
