"""The upload function's Lambda adapter: S3 ObjectCreated events to the upload trigger, and S3 Batch
Operations invocations to ``app.aws.batch_operations``.

``make_upload_handler(trigger)`` is called once per execution environment by
``app.lambda_upload``. It imports nothing of the web stack (FastAPI, Starlette,
Mangum), so the upload function's cold start does not pay for it. For S3 events, S3
and model errors raise, so Lambda retries the event and then sends it to the failure
queue; a Batch Operations invocation always gets its per-task answer (the service
retries ``TemporaryFailure`` tasks itself); other events get an error result, logged.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from app.aws.batch_operations import BatchOperations, TaskResult, is_batch_event, response
from app.aws.observability import LambdaHandler, instrument, logger, metrics, refuse
from app.aws.s3_trigger import Outcome, S3Trigger

SUPPORTED = "S3 ObjectCreated events and S3 Batch Operations invocations (schema 1.0 or 2.0)"


def make_upload_handler(trigger: S3Trigger) -> LambdaHandler:
    """The ``handler(event, context)`` that runs S3 events and Batch Operations tasks through ``trigger``."""
    batch = BatchOperations(trigger)

    def handler(event: Any, context: Any) -> dict[str, Any]:
        if is_s3_event(event):
            return handle_s3(trigger, event)
        if is_batch_event(event):
            return handle_batch(batch, event)
        return refuse(event, SUPPORTED)

    return instrument(handler)


def is_s3_event(event: Any) -> bool:
    """Records of S3 events, each naming its bucket and key as strings; anything else is refused, not retried
    (a record without them fails the same way on every retry: found by ``make fuzz``, tests/corpus/fuzz/)."""
    records = event.get("Records") if isinstance(event, dict) else None
    return isinstance(records, list) and bool(records) and all(_is_s3_record(record) for record in records)


def _is_s3_record(record: Any) -> bool:
    return (isinstance(record, dict) and record.get("eventSource") == "aws:s3"
            and isinstance(value_at(record, "s3", "bucket", "name"), str)
            and isinstance(value_at(record, "s3", "object", "key"), str))


def value_at(node: Any, *path: str) -> Any:
    """``node[path[0]][path[1]]...``, or None where a step is missing or not an object."""
    for name in path:
        node = node.get(name) if isinstance(node, dict) else None
    return node


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


def handle_batch(batch: BatchOperations, event: dict[str, Any]) -> dict[str, Any]:
    """One result per task, in the event's schema: Batch Operations reads nothing else."""
    results = batch.handle(event)
    record_task_results(results)
    return response(event, results)


def record_outcomes(outcomes: list[Outcome]) -> None:
    for outcome in outcomes:
        metrics.add_metric(name=f"Images{outcome.status.capitalize()}", unit=MetricUnit.Count, value=1)
        if outcome.inference_ms is not None:
            metrics.add_metric(name="InferenceLatency", unit=MetricUnit.Milliseconds, value=outcome.inference_ms)


def record_task_results(results: list[TaskResult]) -> None:
    for result in results:
        metrics.add_metric(name=f"BatchTasks{result.code}", unit=MetricUnit.Count, value=1)
        if result.inference_ms is not None:
            metrics.add_metric(name="InferenceLatency", unit=MetricUnit.Milliseconds, value=result.inference_ms)
