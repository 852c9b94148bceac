"""The composition root's shared part: settings, JSON logging and the model holder, once per process.

Every entry point (``app.main`` for uvicorn and the HTTP function, ``app.lambda_upload``)
calls ``build_runtime()`` at import: on Lambda that is the init phase, so the model
is loaded before the first event (and retried later if it could not be). Nothing
here imports the web stack, so the upload function's init does not pay for it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from functools import partial

import onnxruntime as ort

from app.aws.model_store import fetch_model
from app.aws.observability import configure_logging
from app.core.inference import providers
from app.core.inference.holder import ModelHolder
from app.core.inference.segmenter import Segmenter
from app.core.resources.memory import configure_malloc
from app.core.settings import Settings, get_settings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Runtime:
    """What every entry point shares: the settings read once, and the model holder built from them."""

    settings: Settings
    holder: ModelHolder


def build_runtime(settings: Settings | None = None) -> Runtime:
    """Reads the settings (unless given), configures logging and loads the model now (a failure is retried later)."""
    settings = settings or get_settings()
    configure_malloc()
    configure_logging(settings.LOG_LEVEL)
    holder = build_holder(settings)
    holder.try_load()
    return Runtime(settings, holder)


def build_holder(settings: Settings) -> ModelHolder:
    """The holder of the model MODEL_URI names (not loaded yet), retried after MODEL_RETRY_SECONDS."""
    return ModelHolder(partial(load_segmenter, settings), settings.MODEL_RETRY_SECONDS)


def load_segmenter(settings: Settings) -> Segmenter:
    """The model MODEL_URI names, fetched (and cached, if in S3), verified, in an onnxruntime session."""
    started = time.perf_counter()
    local = fetch_model(settings.MODEL_URI, settings.MODEL_SHA256, settings.MODEL_CACHE_DIR)
    chosen = providers.choose(settings.providers, ort.get_available_providers())
    segmenter = Segmenter(local.path, local.sha256, threads=settings.INFERENCE_THREADS,
                          providers=providers.with_options(chosen, settings.cuda_options))
    info, load_ms = segmenter.info, round((time.perf_counter() - started) * 1000, 1)
    logger.info("model loaded", extra={
        "model_uri": settings.MODEL_URI, "model_name": info.name, "model_version": info.version,
        "sha256": info.sha256, "threads": segmenter.threads, "provider": segmenter.provider, "load_ms": load_ms,
    })
    return segmenter
