"""The service's work in this process: the model alone, and bytes -> PNG through the route's own code.

``render`` is ``app.pipeline.render``, the function ``POST /predict`` runs on its
worker thread, with the same settings-derived limits and overlay defaults; the model
is loaded by ``app.model_holder.ModelHolder`` as ``app.main`` loads it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from app.imaging import DecodeLimits
from app.model_holder import ModelHolder
from app.overlay import parse_color
from app.pipeline import Rendered, RenderOptions, render
from app.segmenter import Segmenter, open_session
from app.settings import Settings


@dataclass(frozen=True)
class Pipeline:
    """A loaded model plus the limits and overlay options the route would use."""

    segmenter: Segmenter
    limits: DecodeLimits
    options: RenderOptions


def load_pipeline(model_path: Path) -> Pipeline:
    """The model loaded as app.main loads it, with the default settings' limits and colours."""
    settings = Settings(MODEL_URI=str(model_path))
    return Pipeline(ModelHolder(settings).get(), *route_defaults(settings))


def route_defaults(settings: Settings) -> tuple[DecodeLimits, RenderOptions]:
    """The decode limits and overlay options POST /predict uses when a request sets no option."""
    limits = DecodeLimits(max_bytes=settings.MAX_UPLOAD_BYTES, max_pixels=settings.MAX_PIXELS)
    options = RenderOptions(color=parse_color(settings.OVERLAY_COLOR), alpha=settings.OVERLAY_ALPHA)
    return limits, options


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
