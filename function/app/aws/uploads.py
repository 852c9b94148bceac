"""The upload flow: a presigned S3 POST for images of any size, and where their results stand.

``create`` signs a browser-style POST (not a PUT: a POST policy can pin a size range,
https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-HTTPPOSTConstructPolicy.html)
whose policy fixes the key ``uploads/<id>/<sanitised name>``, the Content-Type, the
size (1 byte to ``max_bytes``) and the options, as the ``x-amz-meta-options`` field:
the client cannot change them after signing. The upload trigger reads the options
back from the object's metadata. ``result`` finds the upload by its id (a listing
of ``uploads/<id>/``: the only key under it) and answers from the summary the
trigger writes last: absent means pending.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

from app.aws.keys import summary_key, upload_key, uploads_of

OPTIONS_FIELD = "x-amz-meta-options"  # S3 hands it back as Metadata["options"]
OPTIONS_METADATA = "options"
OWNER_FIELD = "x-amz-meta-owner"  # the caller's id (app.http.auth: a hash, never a key); Metadata["owner"]
OWNER_METADATA = "owner"


NO_CREDENTIALS = ("the upload flow cannot use S3 now (no AWS credentials to sign with): give the server "
                  "credentials or a role that may put objects under uploads/")


class UploadFlowUnavailable(Exception):
    """S3 cannot be reached or signed for now (no credentials, network, throttling): retry later."""


@dataclass(frozen=True)
class Upload:
    """What a client needs to upload: the POST's URL and form fields, where to poll, and for how long it may."""

    id: str
    url: str
    fields: dict[str, str]
    expires_in: int


@dataclass(frozen=True)
class ResultState:
    """An upload's result: ``pending`` (no summary yet), ``done`` or ``rejected`` (the summary, with URLs if done)."""

    status: Literal["pending", "done", "rejected"]
    summary: dict[str, Any] | None = None
    result_url: str | None = None
    mask_url: str | None = None


class UploadFlow:
    """Signs uploads into ``bucket`` and reads their results, with the S3 client ``s3()`` gives."""

    def __init__(self, s3: Callable[[], Any], bucket: str, ttl_s: int, max_bytes: int) -> None:
        self.s3, self.bucket, self.ttl_s, self.max_bytes = s3, bucket, ttl_s, max_bytes

    def create(self, filename: str, content_type: str, options: dict[str, Any], owner: str | None = None) -> Upload:
        """A new id and a POST policy for it; ``options`` are the ones the client gave (already validated),
        ``owner`` the caller's id, if one was identified (signed in too: only that caller reads the result)."""
        with _s3_errors_as_unavailable():
            return self._sign(filename, content_type, options, owner)

    def result(self, upload_id: str, caller: str | None = None) -> ResultState | None:
        """None when no upload has this id, or its result belongs to another caller; else pending, done or
        rejected, from the summary. A result without an owner (uploaded to an open server) is anyone's."""
        with _s3_errors_as_unavailable():
            state = self._look_up(upload_id)
        owner = (state.summary or {}).get(OWNER_METADATA) if state else None
        return None if owner is not None and owner != caller else state

    def _sign(self, filename: str, content_type: str, options: dict[str, Any], owner: str | None) -> Upload:
        upload_id = uuid.uuid4().hex
        encoded_options = json.dumps(options, separators=(",", ":"), sort_keys=True)
        fields = {"Content-Type": content_type, OPTIONS_FIELD: encoded_options}
        if owner is not None:
            fields[OWNER_FIELD] = owner
        conditions: list[Any] = [*({name: value} for name, value in fields.items()),
                                 ["content-length-range", 1, self.max_bytes]]
        try:
            signed = self.s3().generate_presigned_post(
                Bucket=self.bucket, Key=upload_key(upload_id, filename), Fields=fields, Conditions=conditions,
                ExpiresIn=self.ttl_s,
            )
        except AttributeError as missing:  # botocore signs with credentials None and trips on .access_key
            # (the same code path: https://github.com/aio-libs/aiobotocore/issues/820)
            raise UploadFlowUnavailable(NO_CREDENTIALS) from missing
        return Upload(upload_id, signed["url"], signed["fields"], self.ttl_s)

    def _look_up(self, upload_id: str) -> ResultState | None:
        listing = self.s3().list_objects_v2(Bucket=self.bucket, Prefix=uploads_of(upload_id), MaxKeys=1)
        contents = listing.get("Contents") or []
        if not contents:
            return None
        summary = self._summary(summary_key(contents[0]["Key"]))
        if summary is None:
            return ResultState("pending")
        if summary.get("status") != "done":
            return ResultState("rejected", summary)
        outputs = summary.get("outputs", {})
        return ResultState("done", summary, self._url(outputs.get("result")), self._url(outputs.get("mask")))

    def _summary(self, key: str) -> dict[str, Any] | None:
        from botocore.exceptions import ClientError

        try:
            body = self.s3().get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in {"NoSuchKey", "404"}:
                return None
            raise
        return dict(json.loads(body))

    def _url(self, key: str | None) -> str | None:
        if key is None:
            return None
        return str(self.s3().generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=self.ttl_s))


@contextmanager
def _s3_errors_as_unavailable() -> Iterator[None]:
    """botocore's errors (imported here: botocore stays out of start-up) -> ``UploadFlowUnavailable``."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except (BotoCoreError, ClientError) as error:
        raise UploadFlowUnavailable(f"the upload flow cannot use S3 now ({error}): retry shortly") from error
