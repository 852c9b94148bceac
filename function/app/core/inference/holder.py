"""The model of this process: loaded once, and retried after a back-off if loading failed.

``ModelHolder(load, retry_seconds).get()`` returns the ``Segmenter`` that ``load()``
built; while the model cannot be loaded (file missing, S3 unreachable, sha256
mismatch, a broken file) it raises ``ModelNotReady``, which the HTTP layer answers
with 503 and ``Retry-After`` and the S3 entries raise so Lambda retries. A failed
load is retried by the first call after ``retry_seconds``, so a model published
late, or a transient S3 error, never wedges the execution environment. Where the
model comes from (a file, S3) is the loader's business: the composition root
(``app.runtime``) passes one in.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable

from app.core.inference.segmenter import Segmenter

logger = logging.getLogger(__name__)


class ModelNotReady(Exception):
    """No model to serve yet; ``retry_after_s`` says when the next load attempt may happen."""

    def __init__(self, detail: str, retry_after_s: float) -> None:
        super().__init__(detail)
        self.detail = detail
        self.retry_after_s = retry_after_s


class ModelHolder:
    """Loads the model once with ``load``; thread-safe."""

    def __init__(self, load: Callable[[], Segmenter], retry_seconds: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._load, self._retry_seconds, self._clock = load, retry_seconds, clock
        self._lock = threading.Lock()
        self._segmenter: Segmenter | None = None
        self._failure: str | None = None
        self._failed_at = -math.inf

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
        wait = self._failed_at + self._retry_seconds - self._clock()
        if wait > 0:
            raise ModelNotReady(f"the model is not loaded ({self._failure}); next attempt in {wait:.0f} s", wait)
        try:
            segmenter = self._load()
        except Exception as error:  # anything (S3, onnxruntime, metadata): never wedge, retry later
            self._failure, self._failed_at = f"{type(error).__name__}: {error}", self._clock()
            logger.error("model load failed", extra={"error": self._failure})
            detail = f"the model could not be loaded ({self._failure}); retry in {self._retry_seconds:.0f} s"
            raise ModelNotReady(detail, self._retry_seconds) from error
        self._failure = None
        return segmenter
