"""The model of this process: loaded once, and retried after a back-off if loading failed.

``ModelHolder(settings).get()`` returns the ``Segmenter``; while the model cannot be
loaded (file missing, S3 unreachable, sha256 mismatch, a broken file) it raises
``ModelNotReady``, which the HTTP layer answers with 503 and ``Retry-After``. A
failed load is retried by the first call after ``MODEL_RETRY_SECONDS``, so a model
published late, or a transient S3 error, never wedges the execution environment.
``app.main`` calls ``try_load()`` at import: on Lambda that is the init phase.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable

from app.model_store import fetch_model
from app.segmenter import Segmenter
from app.settings import Settings

logger = logging.getLogger(__name__)


class ModelNotReady(Exception):
    """No model to serve yet; ``retry_after_s`` says when the next load attempt may happen."""

    def __init__(self, detail: str, retry_after_s: float) -> None:
        super().__init__(detail)
        self.detail = detail
        self.retry_after_s = retry_after_s


class ModelHolder:
    """Loads the model named by ``settings`` once; thread-safe."""

    def __init__(self, settings: Settings, clock: Callable[[], float] = time.monotonic) -> None:
        self._settings, self._clock = settings, clock
        self._lock = threading.Lock()
        self._segmenter: Segmenter | None = None
        self._failure: str | None = None
        self._failed_at = -math.inf

    @property
    def loaded(self) -> Segmenter | None:
        """The segmenter if loaded, without attempting a load."""
        return self._segmenter

    def get(self) -> Segmenter:
        """The segmenter; loads it (or retries a failed load after the back-off) if needed."""
        segmenter = self._segmenter
        if segmenter is not None:
            return segmenter
        with self._lock:  # one loader; other callers wait for its outcome
            if self._segmenter is None:
                self._segmenter = self._load_unless_backing_off()
            return self._segmenter

    def try_load(self) -> bool:
        """Loads now if possible; never raises (the failure is logged and kept for ``get``)."""
        try:
            self.get()
        except ModelNotReady:
            return False
        return True

    def _load_unless_backing_off(self) -> Segmenter:
        wait = self._failed_at + self._settings.MODEL_RETRY_SECONDS - self._clock()
        if wait > 0:
            raise ModelNotReady(f"the model is not loaded ({self._failure}); next attempt in {wait:.0f} s", wait)
        try:
            return self._load()
        except Exception as error:  # anything (S3, onnxruntime, metadata): never wedge, retry later
            self._failure, self._failed_at = f"{type(error).__name__}: {error}", self._clock()
            logger.error("model load failed", extra={"model_uri": self._settings.MODEL_URI, "error": self._failure})
            retry = self._settings.MODEL_RETRY_SECONDS
            detail = f"the model could not be loaded ({self._failure}); retry in {retry:.0f} s"
            raise ModelNotReady(detail, retry) from error

    def _load(self) -> Segmenter:
        started = time.perf_counter()
        settings = self._settings
        local = fetch_model(settings.MODEL_URI, settings.MODEL_SHA256, settings.MODEL_CACHE_DIR)
        segmenter = Segmenter(local.path, local.sha256, threads=settings.INFERENCE_THREADS)
        info = segmenter.info
        logger.info(
            "model loaded",
            extra={"model_uri": settings.MODEL_URI, "model_name": info.name, "model_version": info.version,
                   "sha256": info.sha256, "threads": segmenter.threads,
                   "load_ms": round((time.perf_counter() - started) * 1000, 1)},
        )
        self._failure = None
        return segmenter
