"""The image's entries as Lambda's runtime calls them: ``python -m awslambdaric <template.yaml's Command>``,
as AWS's Python base image runs a function, against the Runtime API faked on loopback (tests/lambda_runtime.py);
S3 is moto's server.

What the in-process tests cannot show: each handler string in template.yaml imports and resolves under the
real runtime client, events arrive as JSON over the Runtime API, and results, handler errors and init
errors go back over it in the shapes Lambda relays to API Gateway, S3 and Batch Operations.
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cfnlint.decode import decode
from PIL import Image

from scripts.local_s3 import local_aws_env
from tests.lambda_runtime import Entry, lambda_entry
from tests.support import BUCKET, PNG_SIGNATURE, REPO, SAMPLE_JPEG, SAMPLE_PNG, load_event

FUNCTIONS = ("ApiFunction", "UploadFunction")  # template.yaml's logical ids
API_RESPONSE_KEYS = {"statusCode", "headers", "body", "isBase64Encoded"}  # what API Gateway reads back
UPLOAD_KEY = "uploads/my photo+1.jpg"  # events/s3_put_upload.json's key, "uploads/my+photo%2B1.jpg", decoded
BATCH_KEY = "archive/scans/page 7+8.png"  # events/s3_batch_operations_v2.json's key, "page+7%2B8.png", decoded

pytestmark = pytest.mark.slow  # a runtime process per entry, each loading the app at init


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    parsed, problems = decode(str(REPO / "template.yaml"))
    assert problems == [] and parsed is not None
    return parsed


def command(template: dict[str, Any], function: str) -> str:
    """The handler string of ``function``'s ImageConfig Command: what Lambda passes to awslambdaric."""
    [handler] = template["Resources"][function]["Properties"]["ImageConfig"]["Command"]
    return str(handler)


def lambda_env(template: dict[str, Any], function: str, **overrides: str) -> dict[str, str]:
    """The variables Lambda would give ``function``: its runtime's, the template's literal ones (not those
    built with !Sub or !Ref, which need a stack), S3 sent to no real account, then ``overrides``."""
    properties = template["Resources"][function]["Properties"]
    declared = {**template["Globals"]["Function"]["Environment"]["Variables"],
                **properties.get("Environment", {}).get("Variables", {})}
    return {
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.12",  # the base image's: awslambdaric polls on a thread then
        "AWS_LAMBDA_FUNCTION_NAME": function,
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(properties["MemorySize"]),
        "AWS_REGION": "us-east-1",
        **{name: value for name, value in declared.items() if isinstance(value, str)},
        **local_aws_env("http://127.0.0.1:9"),  # dummy credentials; port 9 (discard) answers nothing
        **overrides,
    }


@pytest.fixture(scope="module")
def api_entry(template: dict[str, Any], tiny_model_path: Path,
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[Entry]:
    folder = tmp_path_factory.mktemp("api-entry")
    env = lambda_env(template, "ApiFunction", MODEL_URI=str(tiny_model_path), MODEL_CACHE_DIR=str(folder / "cache"))
    with lambda_entry(command(template, "ApiFunction"), env, folder / "runtime.log") as entry:
        yield entry


@pytest.fixture(scope="module")
def upload_entry(template: dict[str, Any], tiny_model_path: Path, moto_endpoint: str,
                 tmp_path_factory: pytest.TempPathFactory) -> Iterator[Entry]:
    folder = tmp_path_factory.mktemp("upload-entry")
    env = lambda_env(template, "UploadFunction", MODEL_URI=str(tiny_model_path),
                     MODEL_CACHE_DIR=str(folder / "cache"), **local_aws_env(moto_endpoint))
    with lambda_entry(command(template, "UploadFunction"), env, folder / "runtime.log") as entry:
        yield entry


@pytest.mark.parametrize("entry_fixture", ["api_entry", "upload_entry"])
def test_init_succeeds_and_the_runtime_asks_for_an_invocation(entry_fixture: str,
                                                              request: pytest.FixtureRequest) -> None:
    entry: Entry = request.getfixturevalue(entry_fixture)
    entry.wait_for_poll()  # GET .../invocation/next: the handler string resolved and init returned
    assert entry.api.replies.empty(), f"posted before any invocation: {entry.api.replies.get()}"
    assert entry.process.poll() is None


@pytest.mark.parametrize(("event_name", "status", "content_type"), [
    ("http_api_get_root.json", 200, "application/json"),
    ("http_api_post_predict.json", 200, "image/png"),
])
def test_http_api_event_gets_an_api_gateway_response(api_entry: Entry, event_name: str, status: int,
                                                     content_type: str) -> None:
    reply = api_entry.invoke(load_event(event_name))
    assert reply.kind == "response"
    assert set(reply.body) == API_RESPONSE_KEYS
    assert (reply.body["statusCode"], reply.body["headers"]["content-type"]) == (status, content_type)
    assert reply.body["isBase64Encoded"] is (content_type == "image/png")  # binary bodies base64'd, JSON as is


def test_predict_response_is_an_overlay_of_the_posted_image(api_entry: Entry) -> None:
    event = load_event("http_api_post_predict.json")
    assert SAMPLE_JPEG.read_bytes() in base64.b64decode(event["body"])  # the event's multipart form carries it
    overlay = base64.b64decode(api_entry.invoke(event).body["body"])
    assert overlay.startswith(PNG_SIGNATURE)
    with Image.open(SAMPLE_JPEG) as posted, Image.open(io.BytesIO(overlay)) as out:
        assert out.size == posted.size


def test_s3_put_event_gets_the_handlers_result(upload_entry: Entry, s3: Any) -> None:
    # GIVEN the object the event names, in moto's S3
    s3.put_object(Bucket=BUCKET, Key=UPLOAD_KEY, Body=SAMPLE_JPEG.read_bytes())
    # WHEN the runtime gets the event
    reply = upload_entry.invoke(load_event("s3_put_upload.json"))
    # THEN the handler's per-record result comes back as the invocation's response, the outputs in S3
    assert reply.kind == "response"
    [record] = reply.body["records"]
    assert record == {"key": UPLOAD_KEY, "status": "processed", "detail": "overlays/my photo+1.jpg.png",
                      "inference_ms": record["inference_ms"]}
    summary = json.loads(s3.get_object(Bucket=BUCKET, Key="overlays/my photo+1.jpg.json")["Body"].read())
    assert summary["status"] == "done"


def test_batch_operations_event_gets_one_result_per_task(upload_entry: Entry, s3: Any) -> None:
    event = load_event("s3_batch_operations_v2.json")
    s3.put_object(Bucket=BUCKET, Key=BATCH_KEY, Body=SAMPLE_PNG.read_bytes())
    reply = upload_entry.invoke(event)
    assert reply.kind == "response"
    [task] = event["tasks"]
    assert reply.body == {
        "invocationSchemaVersion": "2.0", "treatMissingKeysAs": "PermanentFailure",
        "invocationId": event["invocationId"],
        "results": [{"taskId": task["taskId"], "resultCode": "Succeeded",
                     "resultString": f"overlays/{BATCH_KEY}.cutout.webp"}],  # as the job's userArguments ask
    }


def test_handler_error_comes_back_on_the_error_endpoint(template: dict[str, Any], tmp_path: Path) -> None:
    # GIVEN the upload entry with no model to load: init still succeeds (the load is retried per invocation)
    env = lambda_env(template, "UploadFunction", MODEL_URI=str(tmp_path / "missing.onnx"),
                     MODEL_CACHE_DIR=str(tmp_path / "cache"))
    with lambda_entry(command(template, "UploadFunction"), env, tmp_path / "runtime.log") as entry:
        # WHEN an S3 event arrives: the handler raises, so that Lambda retries the event
        reply = entry.invoke(load_event("s3_put_upload.json"))
        # THEN the exception is posted to .../invocation/{id}/error, as Lambda records a function error
        assert reply.kind == "error"
        assert reply.body["errorType"] == "ModelNotReady"
        assert reply.body["errorMessage"].startswith("the model is not loaded (ModelUnavailable: no model file at")
        assert reply.body["requestId"] == reply.request_id
        assert any("s3_trigger.py" in frame for frame in reply.body["stackTrace"])
        cause = json.loads(reply.headers["lambda-runtime-function-xray-error-cause"])
        assert cause["exceptions"][0]["type"] == "ModelNotReady"
        # and the execution environment lives on: the next invocation is answered
        assert entry.invoke(load_event("http_api_get_root.json")).body["error"] == "UnsupportedEvent"


@pytest.mark.parametrize(("handler", "error_type", "message"), [
    ("app.no_such_entry.handler", "Runtime.ImportModuleError",
     "Unable to import module 'app.no_such_entry': No module named 'app.no_such_entry'"),
    ("{module}.no_such_handler", "Runtime.HandlerNotFound", "Handler 'no_such_handler' missing on module '{module}'"),
], ids=["no-module", "no-handler"])
def test_a_handler_string_that_does_not_resolve_is_an_init_error(
    template: dict[str, Any], tiny_model_path: Path, tmp_path: Path, handler: str, error_type: str, message: str,
) -> None:
    module = command(template, "UploadFunction").rsplit(".", 1)[0]  # the upload entry's module, for "{module}"
    handler, message = handler.format(module=module), message.format(module=module)
    env = lambda_env(template, "UploadFunction", MODEL_URI=str(tiny_model_path), MODEL_CACHE_DIR=str(tmp_path))
    with lambda_entry(handler, env, tmp_path / "runtime.log") as entry:
        reply = entry.next_reply()
        assert (reply.kind, reply.error_type) == ("init_error", error_type)
        assert (reply.body["errorType"], reply.body["errorMessage"]) == (error_type, message)
        assert entry.process.wait(timeout=30) == 1  # the runtime exits: Lambda reports Runtime.ExitError
        assert entry.api.polls.empty()  # and never asked for an invocation
