"""Memory knobs vs peak RSS, speed and start-up: the evidence behind docs/benchmarks.md's memory table.

    python -m bench.session_options

For each variant, the serving code as it is plus one change: a fresh uvicorn serving
``app.main`` (start to its first answer, then its peak RSS after 1 + 5 requests of
the 1080p and 12 MP photos) and, for the variants that change the onnxruntime
session, the model's inference time in this process, round-robin with the served
session. A change is made by patching onnxruntime or ``app`` in the experiment's
processes only (or by an environment variable); the serving code is not modified.
"""

from __future__ import annotations

import logging
import os
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnxruntime as ort

from bench.measure import time_ms
from bench.run import MODEL, OUT_DIR, write_images
from bench.server import Server, post_image

Tweak = Callable[[ort.SessionOptions], None]
VARIANT_ENV = "BENCH_SESSION_VARIANT"
REQUESTS = 5  # after the first: onnxruntime's memory pattern allocates on the second run
ROUNDS = 25
logger = logging.getLogger("bench.session_options")


@dataclass(frozen=True)
class Variant:
    """One change to the served configuration: session options, patches of ``app``, environment."""

    tweak: Tweak | None = None  # applied to every SessionOptions; None: the session is as served
    patch: Callable[[], None] = lambda: None  # run in the server before it imports app.main
    env: dict[str, str] = field(default_factory=dict)


def _set(**attributes: Any) -> Tweak:
    def tweak(options: ort.SessionOptions) -> None:
        for name, value in attributes.items():
            setattr(options, name, value)

    return tweak


def _config(key: str, value: str) -> Tweak:
    return lambda options: options.add_session_config_entry(key, value)


def _no_trim() -> None:
    import app.core.inference.segmenter
    import app.core.pipeline

    app.core.inference.segmenter.trim_heap = app.core.pipeline.trim_heap = lambda: None  # type: ignore[assignment]


def shrinking_runs() -> ort.RunOptions:
    """Run options that free the arena's unused memory after each run (the key and "cpu:0" value:
    https://github.com/microsoft/onnxruntime/blob/main/include/onnxruntime/core/session/onnxruntime_run_options_config_keys.h)."""
    options = ort.RunOptions()
    options.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
    return options


def _arena_shrinkage() -> None:
    """The served session's every run with ``shrinking_runs()``."""
    import app.core.inference.segmenter

    open_session = app.core.inference.segmenter.open_session

    def open_shrinking(path: Any, threads: int) -> ort.InferenceSession:
        session = open_session(path, threads)
        run, options = session.run, shrinking_runs()
        session.run = lambda names, feed, run_options=None: run(names, feed, options)  # type: ignore[method-assign]
        return session

    app.core.inference.segmenter.open_session = open_shrinking  # type: ignore[assignment]


def _copying_blend() -> None:
    import app.core.pipeline
    from app.core.output.drawing import blend_in_place

    def blend_into_a_copy(image: Any, mask: Any, color: Any, alpha: float) -> Any:  # the former draw
        return blend_in_place(image.copy(), mask, color, alpha)

    app.core.pipeline.blend_in_place = blend_into_a_copy  # type: ignore[assignment]


def _before() -> None:
    _no_trim()
    _copying_blend()


VARIANTS: dict[str, Variant] = {
    "as served": Variant(),
    "enable_mem_pattern=True (the default)": Variant(_set(enable_mem_pattern=True)),
    "no malloc_trim": Variant(patch=_no_trim),
    "arena shrinkage after each run": Variant(patch=_arena_shrinkage),
    "blend into a copy (former draw)": Variant(patch=_copying_blend),
    "pattern on, no trim, copying blend (the former setup, less the PNG stripes)": Variant(
        _set(enable_mem_pattern=True), _before),
    "enable_cpu_mem_arena=False": Variant(_set(enable_cpu_mem_arena=False)),
    "session.disable_prepacking=1": Variant(_config("session.disable_prepacking", "1")),
    "ORT_ENABLE_EXTENDED (logits differ by ~1e-4)": Variant(
        _set(graph_optimization_level=ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED)),
    "MALLOC_ARENA_MAX=2": Variant(env={"MALLOC_ARENA_MAX": "2"}),
    "1 worker thread (MAX_CONCURRENCY=1)": Variant(env={"MAX_CONCURRENCY": "1"}),
}


def tweak_sessions(tweak: Tweak) -> None:
    """Every InferenceSession built from now on in this process gets ``tweak`` applied to its options."""
    original = ort.InferenceSession

    def build(path: str, options: ort.SessionOptions, providers: list[str]) -> ort.InferenceSession:
        tweak(options)
        return original(path, options, providers=providers)

    ort.InferenceSession = build  # type: ignore[misc,assignment]


def __getattr__(name: str) -> Any:
    """``uvicorn bench.session_options:app``: app.main's app, served with the variant's changes."""
    if name != "app":
        raise AttributeError(name)
    variant = VARIANTS[os.environ[VARIANT_ENV]]
    if variant.tweak is not None:
        tweak_sessions(variant.tweak)
    variant.patch()
    from app.main import app

    return app


def serve(variant: str, image: Any, label: str) -> tuple[float, float]:
    """A fresh server: seconds from launch to its first answer, and its peak RSS in MB after all requests."""
    extra_env = {VARIANT_ENV: variant, **VARIANTS[variant].env}
    with Server(MODEL, OUT_DIR / f"session_options_{label}.log", "bench.session_options", extra_env) as server:
        first_s, _ = server.first_answer(image)
        for _ in range(REQUESTS):
            post_image(server.url, image)
        return first_s, server.peak_rss_mb()


def inference_ms(rounds: int) -> dict[str, float]:
    """Median ms per variant that changes the session or its runs: all in this process, round-robin."""
    from app.core.inference.segmenter import open_session

    original = ort.InferenceSession
    runs: dict[str, tuple[ort.InferenceSession, ort.RunOptions]] = {}
    for name, variant in VARIANTS.items():
        if name == "as served" or variant.tweak is not None or variant.patch is _arena_shrinkage:
            tweak_sessions(variant.tweak or (lambda options: None))
            options = shrinking_runs() if variant.patch is _arena_shrinkage else ort.RunOptions()
            runs[name] = (open_session(MODEL, 2), options)
            ort.InferenceSession = original  # type: ignore[misc]
    batch = np.random.default_rng(0).standard_normal((1, 3, 256, 256), dtype=np.float32)
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, (session, options) in runs.items():
            feed = {session.get_inputs()[0].name: batch}
            times[name].append(time_ms(lambda s=session, f=feed, o=options: s.run(None, f, o)))
    return {name: statistics.median(samples) for name, samples in times.items()}


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    images = write_images(OUT_DIR)
    speed = inference_ms(ROUNDS)
    base = speed["as served"]
    logger.info("| variant | infer ms | ratio | start to first answer s 1080p | peak MB 1080p | peak MB 12MP |")
    for name in VARIANTS:
        (first_s, peak_1080p), (_, peak_12mp) = (serve(name, images[label], label) for label in ("1080p", "12MP"))
        ms = f"{speed[name]:.0f} | {speed[name] / base:.2f}" if name in speed else "(as served) |"
        logger.info("| %s | %s | %.2f | %.0f | %.0f |", name, ms, first_s, peak_1080p, peak_12mp)


if __name__ == "__main__":
    main()
