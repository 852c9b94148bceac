"""The HTTP function's Lambda adapter: API Gateway (HTTP API v2/v1, REST API) and ALB events through Mangum.

``make_http_handler(asgi_app)`` is called once per execution environment by
``app.lambda_api``. Mangum gets ``lifespan="off"`` because it would run the ASGI
lifespan on every invocation (https://github.com/Kludex/mangum/issues/342); the
model is loaded at init by the composition root, never in a startup hook. Any
other event gets an error result, logged; an HTTP event Mangum cannot read (a body
that is not base64 though it says so, a header that is not a string: ``make fuzz``)
gets a 400 in API Gateway's response shape instead of an exception (a 502).
"""

from __future__ import annotations

import json
import time
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from mangum import Mangum
from mangum.handlers import ALB, APIGateway, HTTPGateway

from app.aws.observability import LambdaHandler, instrument, logger, metrics, refuse

HTTP_EVENT_TYPES = (HTTPGateway, APIGateway, ALB)  # HTTP API v1/v2 payloads, REST API, ALB
SUPPORTED = "API Gateway (HTTP API, REST API) and ALB events"
# What Mangum raises reading an event's fields (binascii.Error and UnicodeError are ValueErrors). The app's own
# exceptions never get here: Mangum's HTTPCycle answers them with a 500 itself (mangum/protocols/http.py).
MALFORMED_EVENT_ERRORS = (KeyError, TypeError, ValueError, AttributeError)


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
    try:
        response = mangum(event, context)
    except MALFORMED_EVENT_ERRORS as error:
        return malformed(error)
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


def malformed(error: Exception) -> dict[str, Any]:
    """A 400 in API Gateway's shape, for an HTTP event whose fields cannot be read."""
    logger.warning("malformed HTTP event", extra={"error": f"{type(error).__name__}: {error}"})
    detail = f"the request could not be read ({type(error).__name__}): send a well-formed HTTP request"
    return {"statusCode": 400, "headers": {"content-type": "application/json"}, "isBase64Encoded": False,
            "body": json.dumps({"detail": detail})}
