"""The Lambda entry: S3 events to the upload trigger, HTTP events through Mangum, anything else refused.

``make_handler`` is called once, at import of ``app.main``: one Mangum and one S3
trigger per execution environment. Mangum gets ``lifespan="off"`` because it would
run the ASGI lifespan on every invocation (https://github.com/Kludex/mangum/issues/342);
the model is loaded at init by ``app.main``, never in a startup hook.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from mangum import Mangum
from mangum.handlers import ALB, APIGateway, HTTPGateway

from app.logging_setup import SERVICE
from app.s3_client import get_s3_client
from app.s3_trigger import ModelSource, Outcome, S3Trigger
from app.settings import get_settings

NAMESPACE = os.getenv("POWERTOOLS_METRICS_NAMESPACE", "UnetSegmentation")
HTTP_EVENT_TYPES = (HTTPGateway, APIGateway, ALB)  # HTTP API v1/v2 payloads, REST API, ALB
SUPPORTED = "API Gateway (HTTP API, REST API), ALB and S3 ObjectCreated events"

LambdaHandler = Callable[[Any, Any], dict[str, Any]]

# The same Powertools logger (same service) whose handler app.logging_setup gives every
# "app.*" logger: the request id that inject_lambda_context appends reaches all their lines.
logger = Logger(service=SERVICE)
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)


def make_handler(asgi_app: Any, models: ModelSource) -> LambdaHandler:
    """The ``handler(event, context)`` for ``asgi_app`` and the model it shares with the S3 trigger."""
    mangum = Mangum(asgi_app, lifespan="off")
    trigger = S3Trigger(get_s3_client, models, get_settings())

    @logger.inject_lambda_context(clear_state=True)
    @metrics.log_metrics(capture_cold_start_metric=True)
    def handler(event: Any, context: Any) -> dict[str, Any]:
        kind = event_kind(event, context, mangum)
        if kind == "s3":
            return handle_s3(trigger, event)
        if kind == "http":
            return handle_http(mangum, event, context)
        return refuse(event)

    return handler


def event_kind(event: Any, context: Any, mangum: Mangum) -> str:
    """The event's kind: ``s3``, ``http`` or ``unsupported``."""
    if not isinstance(event, dict):
        return "unsupported"
    records = event.get("Records")
    if isinstance(records, list) and records and all(_is_s3_record(record) for record in records):
        return "s3"
    if any(kind.infer(event, context, mangum.config) for kind in HTTP_EVENT_TYPES):
        return "http"
    return "unsupported"


def _is_s3_record(record: Any) -> bool:
    return isinstance(record, dict) and record.get("eventSource") == "aws:s3"


def handle_http(mangum: Mangum, event: dict[str, Any], context: Any) -> dict[str, Any]:
    metrics.add_metric(name="HttpRequests", unit=MetricUnit.Count, value=1)
    started = time.perf_counter()
    response = mangum(event, context)
    metrics.add_metric(name="HttpLatency", unit=MetricUnit.Milliseconds, value=(time.perf_counter() - started) * 1000)
    inference_ms = server_timing_ms(response, "infer")
    if inference_ms is not None:
        metrics.add_metric(name="InferenceLatency", unit=MetricUnit.Milliseconds, value=inference_ms)
    logger.info("http response", extra={"status": response.get("statusCode")})
    return response


def server_timing_ms(response: dict[str, Any], stage: str) -> float | None:
    """A stage's duration from the app's ``Server-Timing: decode;dur=1.2, infer;dur=40.1`` header."""
    headers = {name.lower(): value for name, value in (response.get("headers") or {}).items()}
    for entry in headers.get("server-timing", "").split(","):
        name, _, params = entry.strip().partition(";dur=")
        if name == stage and params:
            return float(params)
    return None


def handle_s3(trigger: S3Trigger, event: dict[str, Any]) -> dict[str, Any]:
    """Per-record outcomes; raises (so Lambda retries) on S3 errors and while the model is unavailable."""
    metrics.add_metric(name="S3Records", unit=MetricUnit.Count, value=len(event["Records"]))
    try:
        outcomes = trigger.handle(event)
    except Exception:
        logger.exception("S3 event failed: Lambda will retry it, then send it to the failure queue")
        raise
    record_outcomes(outcomes)
    return {"records": [asdict(outcome) for outcome in outcomes]}


def record_outcomes(outcomes: list[Outcome]) -> None:
    for outcome in outcomes:
        metrics.add_metric(name=f"Images{outcome.status.capitalize()}", unit=MetricUnit.Count, value=1)
        if outcome.inference_ms is not None:
            metrics.add_metric(name="InferenceLatency", unit=MetricUnit.Milliseconds, value=outcome.inference_ms)


def refuse(event: Any) -> dict[str, Any]:
    """An error result, not an exception: a retried unknown event would fail the same way forever."""
    metrics.add_metric(name="UnsupportedEvents", unit=MetricUnit.Count, value=1)
    shape = f"top-level keys {sorted(map(str, event))[:10]}" if isinstance(event, dict) else type(event).__name__
    detail = (
        f"unsupported event ({shape}): this function handles {SUPPORTED}. "
        "Invoke it through the API or the bucket, or locally with an events/*.json payload."
    )
    logger.error(detail)
    return {"statusCode": 400, "error": "UnsupportedEvent", "detail": detail}
