"""The service's work in this process: the model alone, and bytes -> PNG through the one pipeline.

``render`` is ``app.core.pipeline.render``, the function ``POST /predict`` runs on its
worker thread, with the same settings-derived limits and overlay defaults; the model
is loaded by ``app.runtime.load_segmenter``, as every entry point loads it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app.core.decoding.imaging import DecodeLimits
from app.core.inference.segmenter import Segmenter, open_session
from app.core.options import RenderOptions
from app.core.pipeline import Rendered, render
from app.core.resources.memory import configure_malloc
from app.core.settings import Settings
from app.runtime import load_segmenter


@dataclass(frozen=True)
class Pipeline:
    """A loaded model plus the limits and overlay options the route would use."""

    segmenter: Segmenter
    limits: DecodeLimits
    options: RenderOptions


def load_pipeline(model_path: Path) -> Pipeline:
    """The model loaded as the entry points load it, with the default settings' limits and colours, and the C heap
    as every entry's runtime sets it (``app.runtime``: one malloc arena, a fixed mmap threshold)."""
    configure_malloc()
    settings = Settings(MODEL_URI=str(model_path))
    return Pipeline(load_segmenter(settings), *route_defaults(settings))


def route_defaults(settings: Settings) -> tuple[DecodeLimits, RenderOptions]:
    """The decode limits and overlay options POST /predict uses when a request sets no option."""
    return settings.decode_limits(), settings.render_defaults()


def end_to_end(pipeline: Pipeline, data: bytes) -> Rendered:
    """Encoded image bytes -> PNG bytes, with the pipeline's per-stage milliseconds."""
    return render(pipeline.segmenter, data, pipeline.limits, pipeline.options)


def model_alone(model_path: Path, segmenter: Segmenter) -> Callable[[], object]:
    """One onnxruntime run on a fixed 1x3xHxW input, in a session built like the segmenter's."""
    session = open_session(model_path, segmenter.threads)
    info = segmenter.info
    batch = np.random.default_rng(0).standard_normal((1, 3, info.input_height, info.input_width), dtype=np.float32)
    feed = {session.get_inputs()[0].name: batch}
    return lambda: session.run(None, feed)
