"""The HTTP function's entry (app.lambda_api.handler) in-process: refusals, request ids in logs, metrics."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from aws_lambda_powertools.metrics.provider import cold_start

from scripts.invoke import LambdaContext
from tests.support import load_event

UNSUPPORTED = [load_event("eventbridge_scheduled.json"), load_event("s3_put_upload.json"), ["not", "a", "dict"]]


@pytest.fixture
def handler(main_thread_event_loop: None) -> Any:
    """The real entry; its init (the bundled model; Mangum, on this test's loop) runs at its first import."""
    from app.lambda_api import handler

    return handler


@pytest.mark.parametrize("event", UNSUPPORTED, ids=["eventbridge", "s3", "list"])
def test_other_events_get_an_error_result_and_an_error_log(
    handler: Any, event: Any, context: LambdaContext, json_logs: Callable[[], list[dict[str, Any]]]
) -> None:
    result = handler(event, context)
    assert (result["statusCode"], result["error"]) == (400, "UnsupportedEvent")
    assert "this function handles API Gateway (HTTP API, REST API) and ALB events" in result["detail"]
    [error] = [line for line in json_logs() if line["level"] == "ERROR"]
    assert error["message"] == result["detail"] and error["function_request_id"] == context.aws_request_id


def test_every_log_line_of_a_request_carries_its_request_id(
    handler: Any, context: LambdaContext, json_logs: Callable[[], list[dict[str, Any]]]
) -> None:
    handler(load_event("http_api_post_predict.json"), context)
    lines = json_logs()
    assert {line["message"] for line in lines} >= {"prediction", "http response"}  # the app's line and ours
    assert {line["function_request_id"] for line in lines} == {context.aws_request_id}


def test_metrics_cold_start_then_inference_latency(
    handler: Any, context: LambdaContext, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
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
