"""The HTTP function's Lambda adapter: API Gateway (HTTP API v2/v1, REST API) and ALB events through Mangum.

``make_http_handler(asgi_app)`` is called once per execution environment by
``app.lambda_api``. Mangum gets ``lifespan="off"`` because it would run the ASGI
lifespan on every invocation (https://github.com/Kludex/mangum/issues/342); the
model is loaded at init by the composition root, never in a startup hook. Any
other event gets an error result, logged.
"""

from __future__ import annotations

import time
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from mangum import Mangum
from mangum.handlers import ALB, APIGateway, HTTPGateway

from app.aws.observability import LambdaHandler, instrument, logger, metrics, refuse

HTTP_EVENT_TYPES = (HTTPGateway, APIGateway, ALB)  # HTTP API v1/v2 payloads, REST API, ALB
SUPPORTED = "API Gateway (HTTP API, REST API) and ALB events"


def make_http_handler(asgi_app: Any) -> LambdaHandler:
    """The ``handler(event, context)`` that answers HTTP events with ``asgi_app``."""
    mangum = Mangum(asgi_app, lifespan="off")

    def handler(event: Any, context: Any) -> dict[str, Any]:
        if not is_http_event(event, context, mangum):
            return refuse(event, SUPPORTED)
        return handle_http(mangum, event, context)

    return instrument(handler)


def is_http_event(event: Any, context: Any, mangum: Mangum) -> bool:
    return isinstance(event, dict) and any(kind.infer(event, context, mangum.config) for kind in HTTP_EVENT_TYPES)


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
