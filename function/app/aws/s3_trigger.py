"""The S3 upload trigger: each image put under ``uploads/`` gets an overlay, a mask and a summary.

``uploads/x/cat.jpg`` -> ``overlays/x/cat.jpg.png`` (overlay), ``overlays/x/cat.jpg.mask.png``
(0/255 mask) and ``overlays/x/cat.jpg.json`` (summary, written last, so its presence
means the other two are there). Output keys derive from the input key, so S3's
at-least-once delivery only overwrites. Keys outside ``uploads/`` (our own outputs)
are skipped, so the function never triggers itself. A bad image is logged and
skipped (retrying cannot fix it); S3 and model errors raise so Lambda retries.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Protocol
from urllib.parse import unquote_plus

from app.core.imaging import DecodeLimits, ImageRejected
from app.core.options import RenderOptions
from app.core.pipeline import Rendered, render
from app.core.segmenter import Segmenter
from app.core.settings import Settings

UPLOAD_PREFIX = "uploads/"
OUTPUT_PREFIX = "overlays/"
# Deleted between the event and our GET: nothing to retry. Without s3:ListBucket (the template
# grants none) S3 answers AccessDenied instead, which raises: such an event ends in the failure queue.
GONE_ERROR_CODES = {"NoSuchKey", "404"}
INFERENCE_STAGES = ("resize", "infer", "upsample")  # the segmenter's stages: the InferenceLatency metric

logger = logging.getLogger(__name__)


class UploadUnusable(Exception):
    """An upload that no retry can fix: deleted before we read it, or over the byte limit (unread)."""


class ModelSource(Protocol):
    def get(self) -> Segmenter: ...


@dataclass(frozen=True)
class OutputKeys:
    overlay: str
    mask: str
    summary: str


@dataclass(frozen=True)
class Outcome:
    """What happened to one record: ``processed``, ``skipped`` or ``rejected``."""

    key: str
    status: str
    detail: str = ""
    inference_ms: float | None = None  # the segmenter's resize + infer + upsample


def uploaded_objects(event: dict[str, Any]) -> list[tuple[str, str]]:
    """(bucket, key) per record; S3 URL-encodes keys with a space as '+' and a '+' as '%2B'."""
    return [(r["s3"]["bucket"]["name"], unquote_plus(r["s3"]["object"]["key"])) for r in event["Records"]]


def output_keys(key: str) -> OutputKeys | None:
    """Where the results for an upload go; None for keys this trigger must not process."""
    if not key.startswith(UPLOAD_PREFIX) or key.endswith("/"):
        return None
    stem = OUTPUT_PREFIX + key.removeprefix(UPLOAD_PREFIX)
    return OutputKeys(overlay=f"{stem}.png", mask=f"{stem}.mask.png", summary=f"{stem}.json")


class S3Trigger:
    """Processes S3 ObjectCreated events with the model of this execution environment."""

    def __init__(self, s3: Callable[[], Any], models: ModelSource, settings: Settings) -> None:
        self.s3, self.models = s3, models  # the S3 client is looked up per call: built once, swappable in tests
        self.limits = DecodeLimits.for_stored_objects(settings)
        self.options = RenderOptions.from_settings(settings)

    def handle(self, event: dict[str, Any]) -> list[Outcome]:
        return [self.process(bucket, key) for bucket, key in uploaded_objects(event)]

    def process(self, bucket: str, key: str) -> Outcome:
        keys = output_keys(key)
        if keys is None:
            logger.info("skipping s3://%s/%s: only keys under %s are processed", bucket, key, UPLOAD_PREFIX)
            return Outcome(key, "skipped", f"not under {UPLOAD_PREFIX}")
        segmenter = self.models.get()  # raises while the model is unavailable: Lambda retries the event
        try:
            rendered = render(segmenter, self._read(bucket, key), self.limits, self.options, also=("mask",))
        except (ImageRejected, UploadUnusable) as rejected:
            return self._reject(bucket, key, str(rejected))
        self._write(bucket, keys, rendered, summary_of(rendered, (bucket, key)))
        logger.info("segmented s3://%s/%s -> %s", bucket, key, keys.overlay)
        inference_ms = sum(rendered.timings_ms.get(stage, 0.0) for stage in INFERENCE_STAGES)
        return Outcome(key, "processed", keys.overlay, round(inference_ms, 1))

    def _reject(self, bucket: str, key: str, reason: str) -> Outcome:
        logger.warning("skipping s3://%s/%s: %s", bucket, key, reason)
        return Outcome(key, "rejected", reason)

    def _read(self, bucket: str, key: str) -> bytes:
        """The object's bytes; limits checked on its length before any byte is read."""
        from botocore.exceptions import ClientError  # here: botocore stays out of the HTTP path's start-up

        try:
            response = self.s3().get_object(Bucket=bucket, Key=key)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in GONE_ERROR_CODES:
                raise UploadUnusable(f"{key} no longer exists") from error
            raise
        size = response["ContentLength"]
        if size > self.limits.max_bytes:
            response["Body"].close()
            raise UploadUnusable(f"{size} bytes is over the {self.limits.max_bytes}-byte limit (S3_MAX_UPLOAD_BYTES)")
        return response["Body"].read()

    def _write(self, bucket: str, keys: OutputKeys, rendered: Rendered, summary: dict[str, Any]) -> None:
        """The overlay and the mask, then the summary: its presence means the other two are there."""
        overlay, mask = rendered.outputs
        self._put(bucket, keys.mask, mask.body, mask.media_type)
        self._put(bucket, keys.overlay, overlay.body, overlay.media_type)
        self._put(bucket, keys.summary, json.dumps(summary, indent=2).encode(), "application/json")

    def _put(self, bucket: str, key: str, body: bytes, content_type: str) -> None:
        self.s3().put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type)


def summary_of(rendered: Rendered, source: tuple[str, str]) -> dict[str, Any]:
    """The summary JSON: the source, the image's size, the foreground (fraction, box) and the model."""
    summary, model = rendered.summary, rendered.model
    return {
        "source": {"bucket": source[0], "key": source[1]},
        "image": {"width": summary.width, "height": summary.height},
        "foreground_fraction": summary.foreground_fraction,
        "bounding_box": asdict(summary.bounding_box) if summary.bounding_box else None,
        "model": {"name": model.name, "version": model.version, "sha256": model.sha256},
    }
