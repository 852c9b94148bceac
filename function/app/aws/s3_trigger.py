"""The upload trigger, and the processing every stored object gets: its result, its mask and a summary.

``S3Trigger.process`` takes S3 ObjectCreated events for ``uploads/``; keys elsewhere
(our own outputs) are skipped, so the function never triggers itself. ``segment`` is
the processing itself, shared with S3 Batch Operations (``app.aws.batch_operations``),
which may name a stored object under any prefix but ``overlays/``. Output keys derive
from the source key (``app.aws.keys``), so S3's at-least-once delivery only overwrites.
Options come from the object's ``options`` metadata (the upload flow signs them into
the POST policy), over the server's defaults, and under a Batch Operations job's own.
The summary is written last: ``"status": "done"`` means every other output is there;
an object no retry can fix (corrupt, too large, wrong format, deleted, bad options)
gets ``"status": "rejected"`` with the reason, so a client polling never waits forever.
S3 and model errors raise: Lambda retries the event, Batch Operations the task.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, Protocol
from urllib.parse import unquote_plus

from pydantic import ValidationError

from app.aws.keys import UPLOAD_PREFIX, OutputKeys, is_upload_key, output_keys, summary_key
from app.aws.uploads import OPTIONS_METADATA, OWNER_METADATA
from app.core.decoding.imaging import ImageRejected
from app.core.inference.segmenter import Segmenter
from app.core.options import Output, RenderOptions
from app.core.pipeline import Rendered, render
from app.core.settings import Settings

# Deleted between the event and our GET, or a version that is gone: nothing to retry. Without
# s3:ListBucket (the template grants the upload function none) S3 answers AccessDenied instead,
# which raises: such an event ends in the failure queue, such a task a PermanentFailure.
GONE_ERROR_CODES = {"NoSuchKey", "NoSuchVersion", "404"}
INFERENCE_STAGES = ("resize", "infer", "upsample")  # the segmenter's stages: the InferenceLatency metric
JSON = "application/json"

logger = logging.getLogger(__name__)


class SourceUnusable(Exception):
    """A stored object that no retry can fix: deleted before we read it, over the byte limit (unread), bad options.

    ``owner``: the caller it belongs to, where its metadata was read (the rejected summary keeps it).
    """

    def __init__(self, reason: str, owner: str | None = None) -> None:
        super().__init__(reason)
        self.owner = owner


class ModelSource(Protocol):
    def get(self) -> Segmenter: ...


@dataclass(frozen=True)
class StoredObject:
    """An object to process: where it is, and which version (None: the latest)."""

    bucket: str
    key: str
    version_id: str | None = None


@dataclass(frozen=True)
class Outcome:
    """What happened to one object: ``processed``, ``skipped`` or ``rejected``."""

    key: str
    status: str
    detail: str = ""
    inference_ms: float | None = None  # the segmenter's resize + infer + upsample


@dataclass(frozen=True)
class StoredImage:
    """An object's bytes and its metadata (the upload flow's options and owner)."""

    data: bytes
    metadata: dict[str, str]

    @property
    def owner(self) -> str | None:
        return self.metadata.get(OWNER_METADATA)


def uploaded_objects(event: dict[str, Any]) -> list[tuple[str, str]]:
    """(bucket, key) per record; S3 URL-encodes keys with a space as '+' and a '+' as '%2B'."""
    return [(r["s3"]["bucket"]["name"], unquote_plus(r["s3"]["object"]["key"])) for r in event["Records"]]


class S3Trigger:
    """Processes S3 ObjectCreated events, and stored objects, with the model of this execution environment."""

    def __init__(self, s3: Callable[[], Any], models: ModelSource, settings: Settings) -> None:
        self.s3, self.models = s3, models  # the S3 client is looked up per call: built once, swappable in tests
        self.limits = settings.stored_object_limits()
        self.defaults = settings.render_defaults()

    def handle(self, event: dict[str, Any]) -> list[Outcome]:
        return [self.process(bucket, key) for bucket, key in uploaded_objects(event)]

    def process(self, bucket: str, key: str) -> Outcome:
        """An upload event's object: segmented if it is under ``uploads/``, else skipped (needs no model)."""
        if not is_upload_key(key):
            logger.info("skipping s3://%s/%s: only keys under %s are processed", bucket, key, UPLOAD_PREFIX)
            return Outcome(key, "skipped", f"not under {UPLOAD_PREFIX}")
        return self.segment(StoredObject(bucket, key))

    def segment(self, source: StoredObject, job_options: Mapping[str, Any] | None = None) -> Outcome:
        """``source`` through the pipeline into its outputs; ``job_options`` (a Batch Operations job's) win over
        the object's own. Rejections are summarised; S3 and model errors raise."""
        segmenter = self.models.get()  # raises while the model is unavailable: the event or task is retried
        try:
            stored = self._read(source)
            options = self._options(stored, job_options or {})
            keys = output_keys(source.key, options)
            rendered = render(segmenter, stored.data, self.limits, options, also=extra_outputs(keys))
        except SourceUnusable as unusable:
            return self._reject(source, str(unusable), unusable.owner)
        except ImageRejected as rejected:
            return self._reject(source, rejected.detail, stored.owner)
        summary = {**done_summary(rendered, source, options, keys), **owned_by(stored.owner)}
        self._write(source.bucket, keys, rendered, summary)
        logger.info("segmented s3://%s/%s -> %s", source.bucket, source.key, keys.summary)
        inference_ms = sum(rendered.timings_ms.get(stage, 0.0) for stage in INFERENCE_STAGES)
        return Outcome(source.key, "processed", keys.result or keys.summary, round(inference_ms, 1))

    def _reject(self, source: StoredObject, reason: str, owner: str | None) -> Outcome:
        logger.warning("skipping s3://%s/%s: %s", source.bucket, source.key, reason)
        summary = {"status": "rejected", "reason": reason, "source": source_document(source), **owned_by(owner)}
        self._put(source.bucket, summary_key(source.key), json.dumps(summary, indent=2).encode(), JSON)
        return Outcome(source.key, "rejected", reason)

    def _read(self, source: StoredObject) -> StoredImage:
        """The object's bytes and metadata; limits checked on its length before any byte is read."""
        from botocore.exceptions import ClientError  # here: botocore stays out of the HTTP path's start-up

        version = {"VersionId": source.version_id} if source.version_id else {}
        try:
            response = self.s3().get_object(Bucket=source.bucket, Key=source.key, **version)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in GONE_ERROR_CODES:
                raise SourceUnusable(f"{source.key} no longer exists") from error
            raise
        metadata = response.get("Metadata") or {}
        size = response["ContentLength"]
        if size > self.limits.max_bytes:
            response["Body"].close()
            raise SourceUnusable(f"{size} bytes is over the {self.limits.max_bytes}-byte limit (S3_MAX_UPLOAD_BYTES)",
                                 metadata.get(OWNER_METADATA))
        # Read whole here, not streamed into the decoder: a body cut off before its Content-Length raises now
        # (botocore's IncompleteRead), so the event is retried instead of the image ending "rejected" as corrupt
        # (tests/integration/aws/test_s3_faults.py).
        return StoredImage(response["Body"].read(), metadata)

    def _options(self, stored: StoredImage, job_options: Mapping[str, Any]) -> RenderOptions:
        """The defaults, the object's own options on top, a job's on top of those; invalid ones are refused."""
        given = stored.metadata.get(OPTIONS_METADATA)
        try:
            options = json.loads(given) if given is not None else {}
            if not isinstance(options, dict):
                raise ValueError(f"{given!r} is not a JSON object")
            return self.defaults.with_overrides({**options, **job_options})
        except (ValueError, ValidationError) as invalid:  # JSONDecodeError is a ValueError
            raise SourceUnusable(f"the upload's options are invalid ({invalid})", stored.owner) from None

    def _write(self, bucket: str, keys: OutputKeys, rendered: Rendered, summary: dict[str, Any]) -> None:
        """The mask, then the result, then the summary: its presence means the others are there."""
        result, *mask = rendered.outputs
        self._put(bucket, keys.mask, (mask[0] if mask else result).body, "image/png")
        if keys.result is not None and keys.result != keys.mask:
            self._put(bucket, keys.result, result.body, result.media_type)
        self._put(bucket, keys.summary, json.dumps(summary, indent=2).encode(), JSON)

    def _put(self, bucket: str, key: str, body: bytes | bytearray, content_type: str) -> None:
        self.s3().put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type)


def source_document(source: StoredObject) -> dict[str, str]:
    """The summary's ``source``: bucket and key, and the version when one was asked for."""
    document = {"bucket": source.bucket, "key": source.key}
    if source.version_id:
        document["version_id"] = source.version_id
    return document


def owned_by(owner: str | None) -> dict[str, str]:
    """The summary's ``owner`` field, when the upload has one: GET /results/{id} answers only that caller."""
    return {OWNER_METADATA: owner} if owner is not None else {}


def extra_outputs(keys: OutputKeys) -> tuple[Output, ...]:
    """The mask PNG beside the result, unless the result is that same PNG."""
    return () if keys.result == keys.mask else ("mask",)


def done_summary(rendered: Rendered, source: StoredObject, options: RenderOptions,
                 keys: OutputKeys) -> dict[str, Any]:
    """The summary of a processed object: source, size, foreground, model, options, output keys (and the RLE
    for ``output=json``, whose result is this summary)."""
    summary, model = rendered.summary, rendered.model
    document = {
        "status": "done",
        "source": source_document(source),
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
