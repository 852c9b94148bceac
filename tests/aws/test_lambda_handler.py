"""app.lambda_handler: dispatch, refusal of unknown events, logs and metrics, models from S3 (moto)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from app.lambda_handler import event_kind, make_handler, server_timing_ms
from app.model_holder import ModelHolder, ModelNotReady
from app.settings import Settings
from aws_lambda_powertools.metrics.provider import cold_start
from mangum import Mangum

from scripts.invoke import LambdaContext
from tests.aws.conftest import BUCKET, SAMPLE_JPEG, load_event, sha256_of

MODEL_KEY = "models/tiny.onnx"


@pytest.fixture
def s3_holder(s3: Any, tiny_model_path: Path, tmp_path: Path) -> Callable[..., ModelHolder]:
    """``s3_holder(sha256=..., publish=True)``: a ModelHolder whose MODEL_URI is the tiny model in moto's S3."""

    def make(sha256: str | None = None, publish: bool = True) -> ModelHolder:
        if publish:
            s3.upload_file(str(tiny_model_path), BUCKET, MODEL_KEY)
        settings = Settings(MODEL_URI=f"s3://{BUCKET}/{MODEL_KEY}", MODEL_SHA256=sha256,
                            MODEL_CACHE_DIR=tmp_path / "cache", MODEL_RETRY_SECONDS=0.05)
        return ModelHolder(settings)

    return make


@pytest.fixture
def app_serving(request: pytest.FixtureRequest) -> Iterator[Callable[[ModelHolder], Any]]:
    """``app_serving(holder)``: the Lambda handler over the real app, its HTTP routes using ``holder`` too."""
    from app import main

    def make(holder: ModelHolder) -> Any:
        main.app.dependency_overrides[main.get_holder] = lambda: holder
        return make_handler(main.app, holder)

    yield make
    main.app.dependency_overrides.clear()


# --- dispatch ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event", "kind"),
    [
        (load_event("http_api_get_root.json"), "http"),
        (load_event("rest_api_post_predict.json"), "http"),
        (load_event("alb_get_root.json"), "http"),
        (load_event("s3_put_upload.json"), "s3"),
        (load_event("s3_put_batch.json"), "s3"),
        (load_event("sqs_message.json"), "unsupported"),
        (load_event("eventbridge_scheduled.json"), "unsupported"),
        ({"Records": []}, "unsupported"),
        ({"Records": [load_event("s3_put_upload.json")["Records"][0], {"eventSource": "aws:sqs"}]}, "unsupported"),
        ({}, "unsupported"),
        ([], "unsupported"),
        ("warm-up", "unsupported"),
        (None, "unsupported"),
    ],
    ids=["http-v2", "rest-v1", "alb", "s3", "s3-batch", "sqs", "eventbridge", "no-records", "mixed-records",
         "empty", "list", "string", "null"],
)
def test_event_kind(event: Any, kind: str) -> None:
    assert event_kind(event, LambdaContext(), Mangum(lambda *_: None, lifespan="off")) == kind


@pytest.mark.parametrize(
    ("headers", "stage", "expected"),
    [
        ({"server-timing": "decode;dur=7.6, infer;dur=225.0, encode;dur=1.4"}, "infer", 225.0),
        ({"Server-Timing": "infer;dur=3"}, "infer", 3.0),
        ({"server-timing": "inference;dur=9, infer_x;dur=1"}, "infer", None),
        ({"content-type": "application/json"}, "infer", None),
    ],
)
def test_server_timing_ms(headers: dict[str, str], stage: str, expected: float | None) -> None:
    assert server_timing_ms({"statusCode": 200, "headers": headers}, stage) == expected


UNSUPPORTED = [load_event("eventbridge_scheduled.json"), ["not", "a", "dict"]]


@pytest.mark.parametrize("event", UNSUPPORTED, ids=["dict", "list"])
def test_unsupported_event_is_an_error_result_and_an_error_log(
    event: Any, context: LambdaContext, json_logs: Callable[[], list[dict[str, Any]]]
) -> None:
    from app.main import handler

    result = handler(event, context)
    assert (result["statusCode"], result["error"]) == (400, "UnsupportedEvent")
    assert "this function handles API Gateway (HTTP API, REST API), ALB and S3 ObjectCreated events" in result["detail"]
    [error] = [line for line in json_logs() if line["level"] == "ERROR"]
    assert error["message"] == result["detail"] and error["function_request_id"] == context.aws_request_id


# --- logs and metrics ----------------------------------------------------------------------


def test_every_log_line_of_a_request_carries_its_request_id(
    context: LambdaContext, json_logs: Callable[[], list[dict[str, Any]]]
) -> None:
    from app.main import handler

    handler(load_event("http_api_post_predict.json"), context)
    lines = json_logs()
    assert {line["message"] for line in lines} >= {"prediction", "http response"}  # the app's line and ours
    assert {line["function_request_id"] for line in lines} == {context.aws_request_id}


def test_metrics_cold_start_then_inference_latency(
    context: LambdaContext, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.main import handler

    monkeypatch.setattr(cold_start, "is_cold_start", True)
    handler(load_event("http_api_post_predict.json"), context)
    handler(load_event("http_api_get_root.json"), context)
    blobs = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"_aws"')]
    names = [[metric["Name"] for metric in blob["_aws"]["CloudWatchMetrics"][0]["Metrics"]] for blob in blobs]
    assert names == [
        ["ColdStart"], ["HttpRequests", "HttpLatency", "InferenceLatency"], ["HttpRequests", "HttpLatency"],
    ]
    assert blobs[0]["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "UnetSegmentation"
    assert blobs[1]["InferenceLatency"][0] > 0


# --- the model from S3 ----------------------------------------------------------------------


def test_model_downloaded_from_s3_serves_the_s3_trigger(
    s3: Any, s3_holder: Callable[..., ModelHolder], app_serving: Callable[[ModelHolder], Any],
    tiny_model_path: Path, context: LambdaContext, tmp_path: Path,
) -> None:
    sha = sha256_of(tiny_model_path)
    handler = app_serving(s3_holder(sha256=sha))
    s3.put_object(Bucket=BUCKET, Key="uploads/my photo+1.jpg", Body=SAMPLE_JPEG.read_bytes())
    handler(load_event("s3_put_upload.json"), context)
    summary = json.loads(s3.get_object(Bucket=BUCKET, Key="overlays/my photo+1.jpg.json")["Body"].read())
    assert summary["model"] == {"name": "tiny-test-unet", "version": "0.0.1", "sha256": sha}
    [cached] = (tmp_path / "cache").iterdir()
    assert cached.read_bytes() == tiny_model_path.read_bytes()


def test_sha_mismatch_refuses_to_serve(
    s3_holder: Callable[..., ModelHolder], app_serving: Callable[[ModelHolder], Any], context: LambdaContext
) -> None:
    handler = app_serving(s3_holder(sha256="0" * 64))
    response = handler(load_event("http_api_post_predict.json"), context)
    assert response["statusCode"] == 503
    assert "ModelIntegrityError" in json.loads(response["body"])["detail"]
    assert handler(load_event("http_api_get_root.json"), context)["statusCode"] == 200  # alive, not ready
    with pytest.raises(ModelNotReady, match="MODEL_SHA256 is 0000"):
        handler(load_event("s3_put_upload.json"), context)


def test_model_published_after_init_is_picked_up_without_a_new_environment(
    s3: Any, s3_holder: Callable[..., ModelHolder], app_serving: Callable[[ModelHolder], Any],
    tiny_model_path: Path, context: LambdaContext,
) -> None:
    holder = s3_holder(publish=False)
    assert not holder.try_load()  # init: nothing published yet
    handler = app_serving(holder)
    assert handler(load_event("http_api_post_predict.json"), context)["statusCode"] == 503
    s3.upload_file(str(tiny_model_path), BUCKET, MODEL_KEY)  # make publish-model
    time.sleep(0.06)  # MODEL_RETRY_SECONDS
    assert handler(load_event("http_api_post_predict.json"), context)["statusCode"] == 200
