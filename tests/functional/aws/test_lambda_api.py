"""The HTTP function's entry (app.lambda_api.handler) in-process: refusals, request ids in logs, metrics."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aws_lambda_powertools.metrics.provider import cold_start
from PIL import Image

from app.aws.lambda_http import make_http_handler
from app.core.settings import Settings
from app.http.factory import create_app
from app.http.work_queue import WorkQueue
from app.runtime import build_holder
from bench.photo import photo_jpeg
from scripts.invoke import LambdaContext, with_image
from tests.support import load_event

UNSUPPORTED = [load_event("eventbridge_scheduled.json"), load_event("s3_put_upload.json"), ["not", "a", "dict"]]


@pytest.fixture
def handler(main_thread_event_loop: None) -> Any:
    """The real entry; its init (the bundled model; Mangum, on this test's loop) runs at its first import."""
    from app.lambda_api import handler

    return handler


@pytest.mark.parametrize("event", UNSUPPORTED, ids=["eventbridge", "s3", "list"])
def test_other_events_get_an_error_result_and_an_error_log(
    handler: Any, event: Any, lambda_context: LambdaContext, json_logs: Callable[[], list[dict[str, Any]]]
) -> None:
    result = handler(event, lambda_context)
    assert (result["statusCode"], result["error"]) == (400, "UnsupportedEvent")
    assert "this function handles API Gateway (HTTP API, REST API) and ALB events" in result["detail"]
    [error] = [line for line in json_logs() if line["level"] == "ERROR"]
    assert error["message"] == result["detail"] and error["function_request_id"] == lambda_context.aws_request_id


def test_every_log_line_of_a_request_carries_its_request_id(
    handler: Any, lambda_context: LambdaContext, json_logs: Callable[[], list[dict[str, Any]]]
) -> None:
    handler(load_event("http_api_post_predict.json"), lambda_context)
    lines = json_logs()
    assert {line["message"] for line in lines} >= {"prediction", "http response"}  # the app's line and ours
    assert {line["function_request_id"] for line in lines} == {lambda_context.aws_request_id}


def test_metrics_cold_start_then_inference_latency(
    handler: Any, lambda_context: LambdaContext, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cold_start, "is_cold_start", True)
    handler(load_event("http_api_post_predict.json"), lambda_context)
    handler(load_event("http_api_get_root.json"), lambda_context)
    blobs = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"_aws"')]
    names = [[metric["Name"] for metric in blob["_aws"]["CloudWatchMetrics"][0]["Metrics"]] for blob in blobs]
    assert names == [
        ["ColdStart"], ["HttpRequests", "HttpLatency", "InferenceLatency"], ["HttpRequests", "HttpLatency"],
    ]
    assert blobs[0]["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "UnetSegmentation"
    assert blobs[1]["InferenceLatency"][0] > 0


@pytest.mark.slow
def test_a_12_mp_phone_photo_fits_through_api_gateway_as_jpeg(
    tmp_path: Path, bundled_model_path: Path, lambda_context: LambdaContext
) -> None:
    """The first user's case: a 12 MP photo through the HTTP API, as the template configures the function."""
    # GIVEN a 12 MP photo-like JPEG (under the 4.4 MB upload limit) in an HTTP API v2 event asking for format=jpeg
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(photo_jpeg(4000, 3000))
    assert photo.stat().st_size < 4_400_000
    event = {**with_image(load_event("http_api_post_predict.json"), photo), "rawQueryString": "format=jpeg"}
    settings = Settings(MODEL_URI=str(bundled_model_path), MAX_RESPONSE_BYTES=4_400_000)  # template.yaml's
    handler = make_http_handler(create_app(settings, build_holder(settings), WorkQueue.from_settings(settings)))
    # WHEN the function answers it
    response = handler(event, lambda_context)
    # THEN a 4000x3000 JPEG that API Gateway can carry: base64'd, under Lambda's 6 MB response
    assert response["statusCode"] == 200, response["body"][:500]
    assert response["isBase64Encoded"] and len(response["body"]) < 6_000_000
    assert response["headers"]["content-type"] == "image/jpeg"
    with Image.open(io.BytesIO(base64.b64decode(response["body"]))) as result:
        assert (result.format, result.size) == ("JPEG", (4000, 3000))
