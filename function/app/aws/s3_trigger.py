"""The S3 upload trigger: each image put under ``uploads/`` gets its result, its mask and a summary.

Output keys derive from the input key (``app.aws.keys``), so S3's at-least-once
delivery only overwrites. Options come from the object's ``options`` metadata (the
upload flow signs them into the POST policy), else the server's defaults. The
summary is written last: ``"status": "done"`` means every other output is there;
an upload no retry can fix (corrupt, too large, wrong format, deleted, bad options)
gets ``"status": "rejected"`` with the reason, so a client polling never waits
forever. Keys outside ``uploads/`` (our own outputs) are skipped, so the function
never triggers itself. S3 and model errors raise so Lambda retries.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Protocol
from urllib.parse import unquote_plus

from pydantic import ValidationError

from app.aws.keys import UPLOAD_PREFIX, OutputKeys, is_upload_key, output_keys, summary_key
from app.aws.uploads import OPTIONS_METADATA, OWNER_METADATA
from app.core.imaging import DecodeLimits, ImageRejected
from app.core.options import Output, RenderOptions
from app.core.pipeline import Rendered, render
from app.core.segmenter import Segmenter
from app.core.settings import Settings

# Deleted between the event and our GET: nothing to retry. Without s3:ListBucket (the template
# grants the upload function none) S3 answers AccessDenied instead, which raises: such an event
# ends in the failure queue.
GONE_ERROR_CODES = {"NoSuchKey", "404"}
INFERENCE_STAGES = ("resize", "infer", "upsample")  # the segmenter's stages: the InferenceLatency metric
JSON = "application/json"

logger = logging.getLogger(__name__)


class UploadUnusable(Exception):
    """An upload that no retry can fix: deleted before we read it, over the byte limit (unread), bad options.

    ``owner``: the caller it belongs to, where its metadata was read (the rejected summary keeps it).
    """

    def __init__(self, reason: str, owner: str | None = None) -> None:
        super().__init__(reason)
        self.owner = owner


class ModelSource(Protocol):
    def get(self) -> Segmenter: ...


@dataclass(frozen=True)
class Outcome:
    """What happened to one record: ``processed``, ``skipped`` or ``rejected``."""

    key: str
    status: str
    detail: str = ""
    inference_ms: float | None = None  # the segmenter's resize + infer + upsample


@dataclass(frozen=True)
class StoredImage:
    """An upload's bytes and its metadata (the upload flow's options and owner)."""

    data: bytes
    metadata: dict[str, str]

    @property
    def owner(self) -> str | None:
        return self.metadata.get(OWNER_METADATA)


def uploaded_objects(event: dict[str, Any]) -> list[tuple[str, str]]:
    """(bucket, key) per record; S3 URL-encodes keys with a space as '+' and a '+' as '%2B'."""
    return [(r["s3"]["bucket"]["name"], unquote_plus(r["s3"]["object"]["key"])) for r in event["Records"]]


class S3Trigger:
    """Processes S3 ObjectCreated events with the model of this execution environment."""

    def __init__(self, s3: Callable[[], Any], models: ModelSource, settings: Settings) -> None:
        self.s3, self.models = s3, models  # the S3 client is looked up per call: built once, swappable in tests
        self.limits = DecodeLimits.for_stored_objects(settings)
        self.defaults = RenderOptions.from_settings(settings)

    def handle(self, event: dict[str, Any]) -> list[Outcome]:
        return [self.process(bucket, key) for bucket, key in uploaded_objects(event)]

    def process(self, bucket: str, key: str) -> Outcome:
        if not is_upload_key(key):
            logger.info("skipping s3://%s/%s: only keys under %s are processed", bucket, key, UPLOAD_PREFIX)
            return Outcome(key, "skipped", f"not under {UPLOAD_PREFIX}")
        segmenter = self.models.get()  # raises while the model is unavailable: Lambda retries the event
        try:
            stored = self._read(bucket, key)
            options = self._options(stored)
            keys = output_keys(key, options)
            rendered = render(segmenter, stored.data, self.limits, options, also=extra_outputs(keys))
        except UploadUnusable as unusable:
            return self._reject(bucket, key, str(unusable), unusable.owner)
        except ImageRejected as rejected:
            return self._reject(bucket, key, rejected.detail, stored.owner)
        summary = {**done_summary(rendered, (bucket, key), options, keys), **owned_by(stored.owner)}
        self._write(bucket, keys, rendered, summary)
        logger.info("segmented s3://%s/%s -> %s", bucket, key, keys.summary)
        inference_ms = sum(rendered.timings_ms.get(stage, 0.0) for stage in INFERENCE_STAGES)
        return Outcome(key, "processed", keys.result or keys.summary, round(inference_ms, 1))

    def _reject(self, bucket: str, key: str, reason: str, owner: str | None) -> Outcome:
        logger.warning("skipping s3://%s/%s: %s", bucket, key, reason)
        summary = {"status": "rejected", "reason": reason, "source": {"bucket": bucket, "key": key},
                   **owned_by(owner)}
        self._put(bucket, summary_key(key), json.dumps(summary, indent=2).encode(), JSON)
        return Outcome(key, "rejected", reason)

    def _read(self, bucket: str, key: str) -> StoredImage:
        """The object's bytes and metadata; limits checked on its length before any byte is read."""
        from botocore.exceptions import ClientError  # here: botocore stays out of the HTTP path's start-up

        try:
            response = self.s3().get_object(Bucket=bucket, Key=key)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in GONE_ERROR_CODES:
                raise UploadUnusable(f"{key} no longer exists") from error
            raise
        metadata = response.get("Metadata") or {}
        size = response["ContentLength"]
        if size > self.limits.max_bytes:
            response["Body"].close()
            raise UploadUnusable(f"{size} bytes is over the {self.limits.max_bytes}-byte limit (S3_MAX_UPLOAD_BYTES)",
                                 metadata.get(OWNER_METADATA))
        return StoredImage(response["Body"].read(), metadata)

    def _options(self, stored: StoredImage) -> RenderOptions:
        """The defaults with the upload's own options on top; options no retry can make valid are refused."""
        given = stored.metadata.get(OPTIONS_METADATA)
        if given is None:
            return self.defaults
        try:
            options = json.loads(given)
            if not isinstance(options, dict):
                raise ValueError(f"{given!r} is not a JSON object")
            return self.defaults.with_overrides(options)
        except (ValueError, ValidationError) as invalid:  # JSONDecodeError is a ValueError
            raise UploadUnusable(f"the upload's options are invalid ({invalid})", stored.owner) from None

    def _write(self, bucket: str, keys: OutputKeys, rendered: Rendered, summary: dict[str, Any]) -> None:
        """The mask, then the result, then the summary: its presence means the others are there."""
        result, *mask = rendered.outputs
        self._put(bucket, keys.mask, (mask[0] if mask else result).body, "image/png")
        if keys.result is not None and keys.result != keys.mask:
            self._put(bucket, keys.result, result.body, result.media_type)
        self._put(bucket, keys.summary, json.dumps(summary, indent=2).encode(), JSON)

    def _put(self, bucket: str, key: str, body: bytes, content_type: str) -> None:
        self.s3().put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type)


def owned_by(owner: str | None) -> dict[str, str]:
    """The summary's ``owner`` field, when the upload has one: GET /results/{id} answers only that caller."""
    return {OWNER_METADATA: owner} if owner is not None else {}


def extra_outputs(keys: OutputKeys) -> tuple[Output, ...]:
    """The mask PNG beside the result, unless the result is that same PNG."""
    return () if keys.result == keys.mask else ("mask",)


def done_summary(rendered: Rendered, source: tuple[str, str], options: RenderOptions,
                 keys: OutputKeys) -> dict[str, Any]:
    """The summary of a processed upload: source, size, foreground, model, options, output keys (and the RLE
    for ``output=json``, whose result is this summary)."""
    summary, model = rendered.summary, rendered.model
    document = {
        "status": "done",
        "source": {"bucket": source[0], "key": source[1]},
        "image": {"width": summary.width, "height": summary.height},
        "foreground_fraction": summary.foreground_fraction,
        "bounding_box": asdict(summary.bounding_box) if summary.bounding_box else None,
        "model": {"name": model.name, "version": model.version, "sha256": model.sha256},
        "options": options.model_dump(mode="json"),
        "outputs": {"result": keys.result, "mask": keys.mask},
    }
    if options.output == "json":
        document["mask_rle"] = json.loads(rendered.result.body)["mask"]
    return document
