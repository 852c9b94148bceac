"""S3 misbehaving, at the HTTP level: tests.faults' proxy between the app's S3 client and moto's server.

The fault matrix (docs/reliability.md): for the S3 trigger, Batch Operations, the upload flow's results and
the model store, throttling and 500s are retried by botocore's standard mode (app.aws.s3_client) and, when
they outlast its attempts, raise (Lambda retries), fail the task temporarily or answer 503; a body cut off
mid-answer is a retry, never a ``rejected`` image or a partial model file; outputs come before the summary,
so an interrupted run is redone whole on redelivery, and duplicate or out-of-order deliveries converge.
No object is ever lost: every source is still in the bucket afterwards.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import pytest
from botocore.exceptions import BotoCoreError, ClientError

from app.aws.lambda_s3 import make_upload_handler
from app.aws.model_store import ModelUnavailable, fetch_model
from app.aws.observability import LambdaHandler
from app.aws.s3_client import TOTAL_ATTEMPTS, get_s3_client
from app.aws.s3_trigger import S3Trigger
from app.core.settings import Settings
from app.runtime import build_holder
from scripts.invoke import LambdaContext
from tests.faults import Drop, Fault, FaultProxy, Reset, Short, Status, fault_proxy
from tests.support import BUCKET, SAMPLE_JPEG, SAMPLE_PNG, load_event, sha256_of

UPLOAD_ID = "0123456789abcdef0123456789abcdef"
UPLOAD_KEY = f"uploads/{UPLOAD_ID}/cat.jpg"
STEM = f"overlays/{UPLOAD_ID}/cat.jpg"
OUTPUTS = [f"{STEM}.json", f"{STEM}.mask.png", f"{STEM}.png"]
SOURCE = f"/{BUCKET}/{UPLOAD_KEY}$"  # the proxy matches decoded paths: /bucket/key
SLOW_DOWN, INTERNAL_ERROR = Status(503, "SlowDown"), Status(500, "InternalError")
HALF_OF_THE_SAMPLE = SAMPLE_JPEG.stat().st_size // 2
CUT_OFF = rf"IncompleteRead\({HALF_OF_THE_SAMPLE} bytes read, {SAMPLE_JPEG.stat().st_size - HALF_OF_THE_SAMPLE} more"


@pytest.fixture(scope="session")
def proxy(moto_endpoint: str) -> Iterator[FaultProxy]:
    with fault_proxy(moto_endpoint) as running:
        yield running


@pytest.fixture
def faults(s3: Any, proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch) -> Iterator[FaultProxy]:
    """The app's S3 client through the proxy (AWS_ENDPOINT_URL_S3); the test's own ``s3`` straight to moto."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", proxy.endpoint)
    get_s3_client.cache_clear()
    proxy.clear()
    yield proxy
    proxy.clear()


@pytest.fixture
def handler(tiny_model_path: Path, main_thread_event_loop: None) -> LambdaHandler:
    """The upload function's handler (S3 events and Batch Operations) with the tiny model, over the app's client."""
    settings = Settings(MODEL_URI=str(tiny_model_path))
    return make_upload_handler(S3Trigger(get_s3_client, build_holder(settings), settings))


def upload_event(key: str = UPLOAD_KEY) -> dict[str, Any]:
    event = load_event("s3_put_upload.json")
    event["Records"][0]["s3"]["object"]["key"] = quote_plus(key)
    return event


def batch_event(key: str = UPLOAD_KEY) -> dict[str, Any]:
    event = load_event("s3_batch_operations_v2.json")
    event["tasks"] = [{"taskId": "t0", "s3Bucket": BUCKET, "s3Key": quote_plus(key), "s3VersionId": None}]
    event["job"]["userArguments"] = {}  # the object's own options: the outputs an upload gets
    return event


def objects(s3: Any, prefix: str = "") -> dict[str, bytes]:
    """Every object under ``prefix`` and its bytes, read straight from moto."""
    listing = s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])
    return {item["Key"]: s3.get_object(Bucket=BUCKET, Key=item["Key"])["Body"].read() for item in listing}


@pytest.fixture
def clean_outputs(s3: Any, faults: FaultProxy, handler: LambdaHandler,
                  lambda_context: LambdaContext) -> dict[str, bytes]:
    """The outputs of the sample upload processed once with no fault; the bucket left with the source only,
    the proxy with no request seen yet."""
    s3.put_object(Bucket=BUCKET, Key=UPLOAD_KEY, Body=SAMPLE_JPEG.read_bytes())
    handler(upload_event(), lambda_context)
    outputs = objects(s3, "overlays/")
    assert sorted(outputs) == OUTPUTS
    for key in outputs:
        s3.delete_object(Bucket=BUCKET, Key=key)
    faults.clear()
    return outputs


# --- the S3 trigger --------------------------------------------------------------------------------------

RETRIED = {  # id: (method, path, fault) that botocore's retries get past
    "slowdown-on-the-get": ("GET", SOURCE, SLOW_DOWN),
    "500-on-the-get": ("GET", SOURCE, INTERNAL_ERROR),
    "slowdown-on-the-mask-put": ("PUT", r"\.mask\.png$", SLOW_DOWN),
    "500-on-the-summary-put": ("PUT", r"\.json$", INTERNAL_ERROR),
}


@pytest.mark.parametrize(("method", "path", "fault"), RETRIED.values(), ids=RETRIED)
def test_throttling_and_500s_are_retried_in_place(
    s3: Any, faults: FaultProxy, handler: LambdaHandler, lambda_context: LambdaContext,
    clean_outputs: dict[str, bytes],
    method: str, path: str, fault: Fault,
) -> None:
    faults.inject(method, path, fault, times=TOTAL_ATTEMPTS - 1)
    [record] = handler(upload_event(), lambda_context)["records"]
    assert record["status"] == "processed"
    assert [seen.fault for seen in faults.seen(method, path)] == [fault, fault, None]  # two retries, then through
    assert objects(s3, "overlays/") == clean_outputs


LASTING = {  # id: (method, path, fault, times, attempts, what the handler raises)
    "slowdown-outlasting-the-retries": ("GET", SOURCE, SLOW_DOWN, None, TOTAL_ATTEMPTS, "SlowDown"),
    "500-outlasting-the-retries": ("GET", SOURCE, INTERNAL_ERROR, None, TOTAL_ATTEMPTS, "InternalError"),
    # a body cut off is not botocore's to retry: the event is
    "get-cut-short": ("GET", SOURCE, Short(HALF_OF_THE_SAMPLE), 1, 1, CUT_OFF),
    "get-reset-mid-body": ("GET", SOURCE, Reset(HALF_OF_THE_SAMPLE), 1, 1, CUT_OFF),
    "mask-put-dropped": ("PUT", r"\.mask\.png$", Drop(), None, TOTAL_ATTEMPTS, "Connection was closed"),
    "result-put-failing": ("PUT", rf"{STEM}\.png$", INTERNAL_ERROR, None, TOTAL_ATTEMPTS, "InternalError"),
    "summary-put-failing": ("PUT", r"\.json$", SLOW_DOWN, None, TOTAL_ATTEMPTS, "SlowDown"),
}


@pytest.mark.parametrize(("method", "path", "fault", "times", "attempts", "raised"), LASTING.values(), ids=LASTING)
def test_what_retries_cannot_fix_raises_and_the_redelivery_completes(
    s3: Any, faults: FaultProxy, handler: LambdaHandler, lambda_context: LambdaContext,
    clean_outputs: dict[str, bytes],
    method: str, path: str, fault: Fault, times: int | None, attempts: int, raised: str,
) -> None:
    # GIVEN S3 failing one request of the run WHEN the event is delivered THEN the handler raises (Lambda retries)
    faults.inject(method, path, fault, times)
    with pytest.raises((ClientError, BotoCoreError), match=raised):
        handler(upload_event(), lambda_context)
    assert [seen.fault for seen in faults.seen(method, path)] == [fault] * attempts
    # no summary: a poller still sees "pending", not a corrupt image "rejected"; the source is still there
    assert f"{STEM}.json" not in objects(s3, "overlays/")
    assert objects(s3, "uploads/") == {UPLOAD_KEY: SAMPLE_JPEG.read_bytes()}
    # WHEN Lambda delivers the event again, S3 healthy THEN every output is there, as a clean run leaves them
    faults.clear()
    [record] = handler(upload_event(), lambda_context)["records"]
    assert record["status"] == "processed"
    assert objects(s3, "overlays/") == clean_outputs


def test_the_summary_is_put_only_after_every_other_output(
    s3: Any, faults: FaultProxy, handler: LambdaHandler, lambda_context: LambdaContext,
    clean_outputs: dict[str, bytes],
) -> None:
    handler(upload_event(), lambda_context)
    puts = [seen.path.removeprefix(f"/{BUCKET}/") for seen in faults.requests if seen.method == "PUT"]
    assert puts == [f"{STEM}.mask.png", f"{STEM}.png", f"{STEM}.json"]


DELIVERIES = {  # id: the order in which S3 delivers the events of the first and the second upload
    "in-order": ("first", "second"),
    "out-of-order": ("second", "first"),
    "duplicated": ("first", "second", "second", "first"),
}


@pytest.mark.parametrize("order", DELIVERIES.values(), ids=DELIVERIES)
def test_duplicate_and_out_of_order_deliveries_give_the_same_objects(
    s3: Any, faults: FaultProxy, handler: LambdaHandler, lambda_context: LambdaContext,
    clean_outputs: dict[str, bytes],
    order: tuple[str, ...],
) -> None:
    # GIVEN the key uploaded twice (a PNG, then the sample JPEG): two events, the object now the JPEG
    s3.put_object(Bucket=BUCKET, Key=UPLOAD_KEY, Body=SAMPLE_PNG.read_bytes())
    s3.put_object(Bucket=BUCKET, Key=UPLOAD_KEY, Body=SAMPLE_JPEG.read_bytes())
    # WHEN the events arrive in any order, any number of times THEN the outputs are the latest object's
    for _ in order:  # S3 events name the key, not the bytes: each delivery reads the object as it is now
        handler(upload_event(), lambda_context)
    assert objects(s3, "overlays/") == clean_outputs


# --- S3 Batch Operations ---------------------------------------------------------------------------------

TASKS = {  # id: (method, path, fault, times, the task's result code)
    "slowdown-retried": ("GET", SOURCE, SLOW_DOWN, TOTAL_ATTEMPTS - 1, "Succeeded"),
    "slowdown-outlasting-the-retries": ("GET", SOURCE, SLOW_DOWN, None, "TemporaryFailure"),
    "500-outlasting-the-retries": ("PUT", r"\.json$", INTERNAL_ERROR, None, "TemporaryFailure"),
    "get-cut-short": ("GET", SOURCE, Short(HALF_OF_THE_SAMPLE), 1, "TemporaryFailure"),
    "result-put-dropped": ("PUT", rf"{STEM}\.png$", Drop(), None, "TemporaryFailure"),
}


@pytest.mark.parametrize(("method", "path", "fault", "times", "code"), TASKS.values(), ids=TASKS)
def test_a_batch_task_s3_fails_is_retried_not_failed_for_good(
    s3: Any, faults: FaultProxy, handler: LambdaHandler, lambda_context: LambdaContext,
    clean_outputs: dict[str, bytes],
    method: str, path: str, fault: Fault, times: int | None, code: str,
) -> None:
    faults.inject(method, path, fault, times)
    [result] = handler(batch_event(), lambda_context)["results"]
    assert result["resultCode"] == code, result["resultString"]
    assert (f"{STEM}.json" in objects(s3, "overlays/")) == (code == "Succeeded")  # the summary means done
    # WHEN Batch Operations retries the task (or a job runs it again) THEN the same objects as a clean run
    faults.clear()
    [again] = handler(batch_event(), lambda_context)["results"]
    assert again["resultCode"] == "Succeeded"
    assert objects(s3, "overlays/") == clean_outputs
    assert objects(s3, "uploads/") == {UPLOAD_KEY: SAMPLE_JPEG.read_bytes()}


# --- the upload flow: GET /results/{id} ------------------------------------------------------------------

RESULTS = {  # id: (method, path, fault, times, status)
    "list-slowdown-retried": ("GET", rf"/{BUCKET}/?$", SLOW_DOWN, TOTAL_ATTEMPTS - 1, 200),
    "list-500-outlasting-the-retries": ("GET", rf"/{BUCKET}/?$", INTERNAL_ERROR, None, 503),
    "summary-slowdown-outlasting-the-retries": ("GET", r"\.json$", SLOW_DOWN, None, 503),
    "summary-cut-short": ("GET", r"\.json$", Short(10), 1, 503),
}


@pytest.mark.parametrize(("method", "path", "fault", "times", "status"), RESULTS.values(), ids=RESULTS)
def test_results_answer_503_with_retry_after_while_s3_fails(
    s3: Any, faults: FaultProxy, handler: LambdaHandler, lambda_context: LambdaContext,
    clean_outputs: dict[str, bytes],
    make_client: Callable[..., Any], method: str, path: str, fault: Fault, times: int | None, status: int,
) -> None:
    handler(upload_event(), lambda_context)
    client = make_client(UPLOAD_BUCKET=BUCKET)
    faults.inject(method, path, fault, times)
    response = client.get(f"/results/{UPLOAD_ID}")
    assert response.status_code == status, response.text
    if status == 503:
        assert response.headers["retry-after"] == "1"
        assert response.json()["detail"].startswith("the upload flow cannot use S3 now (")
        assert response.json()["detail"].endswith("): retry shortly")
    faults.clear()
    assert client.get(f"/results/{UPLOAD_ID}").json()["status"] == "done"


# --- the model store -------------------------------------------------------------------------------------

MODEL_KEY = "models/tiny.onnx"
MODEL_URI = f"s3://{BUCKET}/{MODEL_KEY}"
MODEL_PATH = f"/{BUCKET}/{MODEL_KEY}$"


@pytest.fixture
def published(s3: Any, tiny_model_path: Path) -> str:
    s3.upload_file(str(tiny_model_path), BUCKET, MODEL_KEY)
    return sha256_of(tiny_model_path)


@pytest.mark.parametrize(
    ("method", "fault"),
    [("HEAD", SLOW_DOWN), ("GET", SLOW_DOWN), ("GET", INTERNAL_ERROR)],
    ids=["head-slowdown", "get-slowdown", "get-500"],
)
def test_model_fetch_gets_past_throttling_and_500s(
    faults: FaultProxy, published: str, tmp_path: Path, method: str, fault: Fault
) -> None:
    faults.inject(method, MODEL_PATH, fault, times=TOTAL_ATTEMPTS - 1)
    assert fetch_model(MODEL_URI, published, tmp_path).sha256 == published
    assert len(faults.seen(method, MODEL_PATH)) == TOTAL_ATTEMPTS


MODEL_FAULTS = {  # id: (fault, times, the message ModelUnavailable carries)
    "reset-mid-download": (Reset(2000), 1, "total bytes expected is"),
    "cut-short": (Short(2000), 1, "total bytes expected is"),
    "500-outlasting-the-retries": (INTERNAL_ERROR, None, "InternalError"),
}


@pytest.mark.parametrize(("fault", "times", "message"), MODEL_FAULTS.values(), ids=MODEL_FAULTS)
def test_a_failed_model_download_leaves_no_partial_file(
    faults: FaultProxy, published: str, tmp_path: Path, fault: Fault, times: int | None, message: str
) -> None:
    faults.inject("GET", MODEL_PATH, fault, times)
    with pytest.raises(ModelUnavailable, match=message):
        fetch_model(MODEL_URI, published, tmp_path)
    assert list(tmp_path.iterdir()) == []  # nothing half-written that a later init could load
    # WHEN the next init fetches it, S3 healthy THEN the whole file, verified
    faults.clear()
    model = fetch_model(MODEL_URI, published, tmp_path)
    assert (model.sha256, [path.name for path in tmp_path.iterdir()]) == (published, [model.path.name])


def test_every_fault_was_seen_by_the_app_not_the_test(faults: FaultProxy, s3: Any) -> None:
    """The proxy sits on the app's path only: the test's own client reads moto directly."""
    s3.list_objects_v2(Bucket=BUCKET)
    get_s3_client().list_objects_v2(Bucket=BUCKET)
    assert [(seen.method, seen.path) for seen in faults.requests] == [("GET", f"/{BUCKET}")]
    assert get_s3_client().meta.endpoint_url == faults.endpoint
