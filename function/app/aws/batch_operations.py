"""S3 Batch Operations: stored objects, named in a manifest, through the same processing as an upload.

Batch Operations invokes the upload function synchronously with one event per call
(https://docs.aws.amazon.com/AmazonS3/latest/userguide/batch-ops-invoke-lambda.html):
``invocationSchemaVersion`` 1.0 names each task's bucket by ``s3BucketArn``, 2.0 by
``s3Bucket`` and may carry the job's ``userArguments`` (here: render options, such as
``{"format": "webp"}``, applied over each object's own). Task keys are URL-encoded as in
the manifest (``%20`` or ``+`` for a space, ``%2B`` for a plus), decoded with ``unquote_plus``
as the page's own example does. Every task gets one result, and no task raises:

- ``Succeeded``: the output key (the result's, or the summary's for ``output=json``);
- ``PermanentFailure``: what no retry can fix: a key under ``overlays/`` (our own outputs,
  never a source), a folder marker, a deleted object, one that is not an accepted image
  or over the limits (those also get a ``rejected`` summary, as uploads do), access denied
  (outside the prefix the function may read, or missing), invalid options;
- ``TemporaryFailure``: throttling, S3 or network errors, the model not loaded yet: Batch
  Operations retries the task.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import unquote_plus

from pydantic import ValidationError

from app.aws.keys import OUTPUT_PREFIX, is_source_key
from app.aws.s3_trigger import S3Trigger, StoredObject
from app.core.inference.holder import ModelNotReady

SCHEMA_VERSIONS = ("1.0", "2.0")
# Keys missing from our response are a bug of ours: failing them shows it in the completion report.
TREAT_MISSING_KEYS_AS = "PermanentFailure"
# Worth retrying: S3 throttling and its 5xx answers (https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html).
TEMPORARY_ERROR_CODES = frozenset({
    "SlowDown", "Throttling", "ThrottlingException", "RequestTimeout", "RequestLimitExceeded",
    "ServiceUnavailable", "InternalError", "OperationAborted",
})

# Without s3:ListBucket (least privilege) S3 answers a missing key with AccessDenied too, not NoSuchKey.
ACCESS_DENIED_HINT = (": the object is outside the prefix the stack's BatchSourcePrefix parameter lets the upload "
                      "function read (docs/deploy.md), or it does not exist")

ResultCode = Literal["Succeeded", "TemporaryFailure", "PermanentFailure"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Task:
    """One task of the event: its id and the object it names."""

    id: str
    source: StoredObject


@dataclass(frozen=True)
class TaskResult:
    """A task's result code, the string the completion report shows, and its inference time if it ran."""

    task_id: str
    code: ResultCode
    detail: str
    inference_ms: float | None = None

    def as_response(self) -> dict[str, str]:
        return {"taskId": self.task_id, "resultCode": self.code, "resultString": self.detail}


def is_batch_event(event: Any) -> bool:
    """An S3 Batch Operations invocation of a schema this function knows, every task and the job well formed
    (a malformed one is refused whole: answering it task by task needs the ids it may lack; ``make fuzz``)."""
    return (isinstance(event, dict) and event.get("invocationSchemaVersion") in SCHEMA_VERSIONS
            and isinstance(event.get("invocationId"), str) and isinstance(event.get("tasks"), list)
            and all(is_task(task) for task in event["tasks"]) and _is_job(event.get("job")))


def is_task(task: Any) -> bool:
    """A task with its id, a key and a bucket (2.0's name or 1.0's ARN) as strings, and a version id or null."""
    return (isinstance(task, dict) and isinstance(task.get("taskId"), str) and isinstance(task.get("s3Key"), str)
            and isinstance(task.get("s3VersionId"), str | None) and bool(task_bucket(task)))


def _is_job(job: Any) -> bool:
    return job is None or (isinstance(job, dict) and isinstance(job.get("userArguments"), dict | None))


def batch_tasks(event: dict[str, Any]) -> list[Task]:
    """The event's tasks with their keys decoded."""
    return [Task(task["taskId"], StoredObject(task_bucket(task), unquote_plus(task["s3Key"]), task.get("s3VersionId")))
            for task in event["tasks"]]


def task_bucket(task: dict[str, Any]) -> str:
    """Schema 2.0's ``s3Bucket``, else the last part of 1.0's ``s3BucketArn`` (``arn:aws:s3:::name``)."""
    bucket, arn = task.get("s3Bucket"), task.get("s3BucketArn")
    if isinstance(bucket, str) and bucket:
        return bucket
    return arn.rpartition(":")[2] if isinstance(arn, str) else ""


def job_options(event: dict[str, Any]) -> dict[str, Any]:
    """The job's ``userArguments`` (schema 2.0): render options for every task of the job."""
    return dict((event.get("job") or {}).get("userArguments") or {})


def response(event: dict[str, Any], results: list[TaskResult]) -> dict[str, Any]:
    """The answer Batch Operations expects: the event's schema and invocation id, one result per task."""
    return {
        "invocationSchemaVersion": event["invocationSchemaVersion"],
        "treatMissingKeysAs": TREAT_MISSING_KEYS_AS,
        "invocationId": event["invocationId"],
        "results": [result.as_response() for result in results],
    }


class BatchOperations:
    """Runs each task of a Batch Operations event through the trigger's processing; never raises for a task."""

    def __init__(self, trigger: S3Trigger) -> None:
        self.trigger = trigger

    def handle(self, event: dict[str, Any]) -> list[TaskResult]:
        options, tasks = job_options(event), batch_tasks(event)
        invalid = self.invalid_options(options)
        if invalid is not None:
            return [failed(task, "PermanentFailure", invalid) for task in tasks]
        return [self.run(task, options) for task in tasks]

    def run(self, task: Task, options: Mapping[str, Any]) -> TaskResult:
        key = task.source.key
        if not is_source_key(key):
            return failed(task, "PermanentFailure", f"{key!r} is not a source: keys under {OUTPUT_PREFIX} are this "
                                                    "service's outputs and keys ending in / are folders")
        try:
            outcome = self.trigger.segment(task.source, options)
        except Exception as error:  # one task's trouble never fails the others
            return failed(task, *classify(error))
        if outcome.status != "processed":  # rejected, and logged as such by the trigger
            return TaskResult(task.id, "PermanentFailure", outcome.detail)
        return TaskResult(task.id, "Succeeded", outcome.detail, outcome.inference_ms)

    def invalid_options(self, options: Mapping[str, Any]) -> str | None:
        """Why the job's options are invalid (every task fails the same way), or None."""
        try:
            self.trigger.defaults.with_overrides(options)
        except ValidationError as invalid:
            return f"the job's userArguments are not valid options ({invalid})"
        return None


def classify(error: Exception) -> tuple[ResultCode, str]:
    """An exception from one task -> its result code and reason: retry what time can fix."""
    from botocore.exceptions import BotoCoreError, ClientError, ParamValidationError  # here, as in the trigger

    if isinstance(error, ModelNotReady):
        return "TemporaryFailure", error.detail
    if isinstance(error, ParamValidationError):  # a bucket name or key S3 can never have: no retry fixes it
        return "PermanentFailure", f"the task names no valid S3 object ({error})"
    if isinstance(error, BotoCoreError):  # connection refused or reset, timeouts: the network
        return "TemporaryFailure", f"S3 could not be reached ({error})"
    if isinstance(error, ClientError):
        details = error.response.get("Error", {})
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if details.get("Code") in TEMPORARY_ERROR_CODES or status >= 500:
            return "TemporaryFailure", f"S3 answered {error}"
        hint = ACCESS_DENIED_HINT if details.get("Code") == "AccessDenied" else ""
        return "PermanentFailure", f"S3 answered {error}{hint}"
    logger.exception("batch task failed unexpectedly")  # a bug: its traceback in the logs
    return "PermanentFailure", f"internal error ({type(error).__name__}: {error}): it has been logged"


def failed(task: Task, code: ResultCode, reason: str) -> TaskResult:
    logger.warning("batch task %s s3://%s/%s: %s: %s", task.id, task.source.bucket, task.source.key, code, reason)
    return TaskResult(task.id, code, reason)
