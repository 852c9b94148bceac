"""UploadFlow in-process on moto's S3: the POST it signs, and what ``result`` answers from the bucket as the
trigger leaves it (test_upload_flow.py runs the same through `make serve`, a process of its own)."""

from __future__ import annotations

import base64
import json
import time
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from botocore.exceptions import ClientError

from app.aws.s3_client import get_s3_client
from app.aws.uploads import ResultState, UploadFlow, UploadFlowUnavailable
from tests.support import BUCKET

UPLOAD_ID = "0123456789abcdef0123456789abcdef"
SOURCE = f"uploads/{UPLOAD_ID}/cat.jpg"
SUMMARY = f"overlays/{UPLOAD_ID}/cat.jpg.json"
TTL_S = 600
SIGNATURE_FIELDS = {"x-amz-algorithm", "x-amz-credential", "x-amz-date", "x-amz-security-token"}  # SigV4


@pytest.fixture
def flow(s3: Any) -> UploadFlow:
    return UploadFlow(get_s3_client, BUCKET, ttl_s=TTL_S, max_bytes=1000)


def put_summary(s3: Any, summary: dict[str, Any]) -> None:
    s3.put_object(Bucket=BUCKET, Key=SOURCE, Body=b"jpeg")
    s3.put_object(Bucket=BUCKET, Key=SUMMARY, Body=json.dumps(summary).encode())


def signed_get(url: str | None) -> tuple[str, str]:
    """A presigned GET URL -> (its path, its lifetime in seconds)."""
    assert url is not None
    parts = urlsplit(url)
    return parts.path, parse_qs(parts.query)["X-Amz-Expires"][0]


def test_an_unknown_id_has_no_result(flow: UploadFlow) -> None:
    assert flow.result(UPLOAD_ID) is None


def test_an_upload_without_a_summary_is_pending(s3: Any, flow: UploadFlow) -> None:
    s3.put_object(Bucket=BUCKET, Key=SOURCE, Body=b"jpeg")
    assert flow.result(UPLOAD_ID) == ResultState("pending")


def test_a_rejected_upload_answers_its_summary(s3: Any, flow: UploadFlow) -> None:
    summary = {"status": "rejected", "reason": "not an image"}
    put_summary(s3, summary)
    assert flow.result(UPLOAD_ID) == ResultState("rejected", summary)


def test_a_done_upload_answers_urls_that_last_the_ttl(s3: Any, flow: UploadFlow) -> None:
    outputs = {"result": f"overlays/{UPLOAD_ID}/cat.jpg.png", "mask": f"overlays/{UPLOAD_ID}/cat.jpg.mask.png"}
    put_summary(s3, {"status": "done", "outputs": outputs})
    state = flow.result(UPLOAD_ID)
    assert state is not None and (state.status, state.summary) == ("done", {"status": "done", "outputs": outputs})
    assert signed_get(state.result_url) == (f"/{BUCKET}/{outputs['result']}", str(TTL_S))
    assert signed_get(state.mask_url) == (f"/{BUCKET}/{outputs['mask']}", str(TTL_S))


def test_json_output_has_a_mask_url_and_no_result_url(s3: Any, flow: UploadFlow) -> None:
    outputs = {"result": None, "mask": f"overlays/{UPLOAD_ID}/cat.jpg.mask.png"}
    put_summary(s3, {"status": "done", "outputs": outputs})
    state = flow.result(UPLOAD_ID)
    assert state is not None and state.result_url is None
    assert signed_get(state.mask_url) == (f"/{BUCKET}/{outputs['mask']}", str(TTL_S))


def test_the_post_pins_key_type_size_options_and_owner(s3: Any, flow: UploadFlow) -> None:
    signed_at = time.time()
    upload = flow.create("my cat.jpg", "image/jpeg", {"format": "webp", "alpha": 0.3}, owner="key:abc")
    key = f"uploads/{upload.id}/my cat.jpg"
    policy = json.loads(base64.b64decode(upload.fields["policy"]))
    assert (len(upload.id), upload.expires_in, upload.url) == (32, TTL_S, f"{s3.meta.endpoint_url}/{BUCKET}")
    assert {name: upload.fields[name] for name in ("key", "Content-Type", "x-amz-meta-options", "x-amz-meta-owner")} \
        == {"key": key, "Content-Type": "image/jpeg", "x-amz-meta-options": '{"alpha":0.3,"format":"webp"}',
            "x-amz-meta-owner": "key:abc"}
    assert [c for c in policy["conditions"] if not (isinstance(c, dict) and set(c) <= SIGNATURE_FIELDS)] == [
        {"Content-Type": "image/jpeg"}, {"x-amz-meta-options": '{"alpha":0.3,"format":"webp"}'},
        {"x-amz-meta-owner": "key:abc"}, ["content-length-range", 1, 1000], {"bucket": BUCKET}, {"key": key}]
    expires = datetime.fromisoformat(policy["expiration"]).timestamp()  # the policy lasts the TTL (whole seconds)
    assert signed_at + TTL_S - 2 <= expires <= time.time() + TTL_S + 2


class FailingGets:
    """The app's S3 client, except that GetObject answers ``code`` (None: an error without an Error entry)."""

    def __init__(self, code: str | None) -> None:
        self.code = code

    def __getattr__(self, name: str) -> Any:
        return getattr(get_s3_client(), name)

    def get_object(self, **_: Any) -> Any:
        response = {"Error": {"Code": self.code, "Message": "m"}} if self.code is not None else {}
        raise ClientError(response, "GetObject")  # type: ignore[arg-type]


@pytest.mark.parametrize("code", ["NoSuchKey", "404"])
def test_a_summary_not_found_is_pending(s3: Any, code: str) -> None:
    s3.put_object(Bucket=BUCKET, Key=SOURCE, Body=b"jpeg")
    flow = UploadFlow(lambda: FailingGets(code), BUCKET, ttl_s=TTL_S, max_bytes=1000)
    assert flow.result(UPLOAD_ID) == ResultState("pending")


@pytest.mark.parametrize(
    ("code", "said"), [("InternalError", "An error occurred (InternalError) when calling the GetObject operation: m"),
                       (None, "An error occurred (Unknown) when calling the GetObject operation: Unknown")],
    ids=["internal-error", "no-error-entry"],
)
def test_other_s3_errors_make_the_flow_unavailable(s3: Any, code: str | None, said: str) -> None:
    s3.put_object(Bucket=BUCKET, Key=SOURCE, Body=b"jpeg")
    flow = UploadFlow(lambda: FailingGets(code), BUCKET, ttl_s=TTL_S, max_bytes=1000)
    with pytest.raises(UploadFlowUnavailable) as raised:
        flow.result(UPLOAD_ID)
    assert str(raised.value) == f"the upload flow cannot use S3 now ({said}): retry shortly"


def test_a_done_summary_without_outputs_answers_done_without_urls(s3: Any, flow: UploadFlow) -> None:
    put_summary(s3, {"status": "done"})  # not what the trigger writes: still no 500
    assert flow.result(UPLOAD_ID) == ResultState("done", {"status": "done"})
