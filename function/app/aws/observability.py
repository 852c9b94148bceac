"""Structured JSON logs and CloudWatch metrics (Powertools), shared by every entry point.

Modules log with ``logging.getLogger(__name__)`` and pass fields in ``extra``;
``configure_logging`` gives the ``app`` logger the handler of a Powertools
``Logger`` (https://docs.powertools.aws.dev/lambda/python/latest/core/logger/), so
locally under uvicorn and on Lambda alike each line is one JSON object. The Lambda
entries wrap their handler in ``instrument``: the request id on every line (the
same Powertools service, so the ``app.*`` loggers carry it too), a ColdStart metric,
and metrics flushed as EMF at the end of each invocation. Nothing here ever logs
image bytes: only sizes, options, timings and model identity.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.metrics import MetricUnit

SERVICE = os.getenv("POWERTOOLS_SERVICE_NAME", "unet-segmentation")
NAMESPACE = os.getenv("POWERTOOLS_METRICS_NAMESPACE", "UnetSegmentation")
APP_LOGGER = "app"

LambdaHandler = Callable[[Any, Any], dict[str, Any]]

logger = Logger(service=SERVICE)
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)


def configure_logging(level: str) -> Logger:
    """JSON output at ``level`` for the ``app`` logger tree; returns the Powertools logger."""
    powertools = Logger(service=SERVICE, level=level)
    logging.getLogger(APP_LOGGER)  # registered, so the copy below finds it
    copy_config_to_registered_loggers(source_logger=powertools, include={APP_LOGGER})
    return powertools


def instrument(handler: LambdaHandler) -> LambdaHandler:
    """``handler`` with the request id in every log line and metrics (ColdStart included) flushed per call."""
    with_metrics = metrics.log_metrics(capture_cold_start_metric=True)(handler)
    return logger.inject_lambda_context(clear_state=True)(with_metrics)  # type: ignore[no-any-return]


def refuse(event: Any, supported: str) -> dict[str, Any]:
    """An error result, not an exception: a retried unknown event would fail the same way forever."""
    metrics.add_metric(name="UnsupportedEvents", unit=MetricUnit.Count, value=1)
    shape = f"top-level keys {sorted(map(str, event))[:10]}" if isinstance(event, dict) else type(event).__name__
    detail = (
        f"unsupported event ({shape}): this function handles {supported}. "
        "Invoke it through the API or the bucket, or locally with an events/*.json payload."
    )
    logger.error(detail)
    return {"statusCode": 400, "error": "UnsupportedEvent", "detail": detail}
