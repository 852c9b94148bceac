"""app.aws.batch_operations' pure parts: tasks read from both schemas, errors classified, the response's shape."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, ParamValidationError, ReadTimeoutError

from app.aws.batch_operations import (
    Task,
    TaskResult,
    batch_tasks,
    classify,
    failed,
    job_options,
    response,
    task_bucket,
)
from app.aws.s3_trigger import StoredObject
from app.core.inference.holder import ModelNotReady
from tests.support import BUCKET, load_event


@pytest.mark.parametrize(
    ("event", "tasks", "options"),
    [
        ("s3_batch_operations_v1.json",
         [Task("dGFza2lkZ29lc2hlcmUK", StoredObject(BUCKET, "photos/2019/summer holiday/cat+dog 1.jpg"))], {}),
        ("s3_batch_operations_v2.json",
         [Task("eTVSM2Eya2laMjlsYzJobGNtN01TWERz", StoredObject(BUCKET, "archive/scans/page 7+8.png"))],
         {"output": "cutout", "format": "webp"}),
    ],
)
def test_tasks_and_job_options_of_each_schema(event: str, tasks: list[Task], options: dict[str, str]) -> None:
    loaded = load_event(event)
    assert (batch_tasks(loaded), job_options(loaded)) == (tasks, options)


@pytest.mark.parametrize(
    ("task", "bucket"),
    [
        ({"s3BucketArn": "arn:aws:s3:::my-bucket"}, "my-bucket"),  # 1.0
        ({"s3BucketArn": "arn:aws-cn:s3:::cn-bucket"}, "cn-bucket"),  # another partition
        ({"s3Bucket": "my-bucket"}, "my-bucket"),  # 2.0
        ({"s3Bucket": "two", "s3BucketArn": None}, "two"),
        ({"s3Bucket": "", "s3BucketArn": "arn:aws:s3:::from-arn"}, "from-arn"),  # an empty name is no name
        ({"s3Bucket": 7, "s3BucketArn": "arn:aws:s3:::from-arn"}, "from-arn"),  # nor is a number
        ({}, ""),  # neither: S3 refuses the empty name (ParamValidationError, a PermanentFailure)
        ({"s3BucketArn": 7}, ""),
    ],
)
def test_task_bucket(task: dict[str, Any], bucket: str) -> None:
    assert task_bucket(task) == bucket


@pytest.mark.parametrize(
    ("key", "decoded"),
    [("a%20b.jpg", "a b.jpg"), ("a+b.jpg", "a b.jpg"), ("a%2Bb.jpg", "a+b.jpg"), ("%E7%8C%AB.jpg", "猫.jpg"),
     ("photos/x%2Fy.jpg", "photos/x/y.jpg")],
)
def test_task_keys_are_url_decoded(key: str, decoded: str) -> None:
    event = {"tasks": [{"taskId": "t", "s3Key": key, "s3Bucket": BUCKET}]}
    assert batch_tasks(event)[0].source.key == decoded


def client_error(code: str, status: int | None) -> ClientError:
    body: dict[str, Any] = {"Error": {"Code": code, "Message": "m"}}
    if status is not None:  # botocore leaves ResponseMetadata out of some errors (a connection that broke)
        body["ResponseMetadata"] = {"HTTPStatusCode": status}
    return ClientError(body, "GetObject")  # type: ignore[arg-type]


def answered(code: str) -> str:
    return f"S3 answered An error occurred ({code}) when calling the GetObject operation: m"


@pytest.mark.parametrize(
    ("error", "code", "reason"),
    [
        (ModelNotReady("the model is not loaded (x); next attempt in 3 s", 3.0), "TemporaryFailure",
         "the model is not loaded (x); next attempt in 3 s"),
        (client_error("SlowDown", 503), "TemporaryFailure", answered("SlowDown")),
        (client_error("RequestTimeout", 400), "TemporaryFailure", answered("RequestTimeout")),  # by its code
        (client_error("InternalError", 500), "TemporaryFailure", answered("InternalError")),
        (client_error("SomethingNew", 502), "TemporaryFailure", answered("SomethingNew")),  # any 5xx
        (client_error("SomethingNew", 500), "TemporaryFailure", answered("SomethingNew")),  # 500 is one
        (client_error("SomethingNew", 499), "PermanentFailure", answered("SomethingNew")),  # no hint either
        (client_error("SomethingNew", None), "PermanentFailure", answered("SomethingNew")),  # no status at all
        (EndpointConnectionError(endpoint_url="https://s3.amazonaws.com"), "TemporaryFailure",
         'S3 could not be reached (Could not connect to the endpoint URL: "https://s3.amazonaws.com")'),
        (ReadTimeoutError(endpoint_url="https://s3.amazonaws.com"), "TemporaryFailure",
         'S3 could not be reached (Read timeout on endpoint URL: "https://s3.amazonaws.com")'),
        (client_error("AccessDenied", 403), "PermanentFailure",
         answered("AccessDenied") + ": the object is outside the prefix the stack's BatchSourcePrefix parameter "
         "lets the upload function read (docs/deploy.md), or it does not exist"),
        (client_error("NoSuchBucket", 404), "PermanentFailure", answered("NoSuchBucket")),
        (client_error("InvalidObjectState", 403), "PermanentFailure", answered("InvalidObjectState")),  # Glacier
        (RuntimeError("a bug"), "PermanentFailure", "internal error (RuntimeError: a bug): it has been logged"),
        (ParamValidationError(report='Invalid bucket name ""'), "PermanentFailure",
         'the task names no valid S3 object (Parameter validation failed:\nInvalid bucket name "")'),
        # no Error entry (a bare 503 from a proxy): the status decides
        (ClientError({"ResponseMetadata": {"HTTPStatusCode": 503}}, "GetObject"), "TemporaryFailure",  # type: ignore[arg-type]
         "S3 answered An error occurred (Unknown) when calling the GetObject operation: Unknown"),
    ],
)
def test_errors_are_classified(error: Exception, code: str, reason: str) -> None:
    assert classify(error) == (code, reason)


def test_an_unexpected_error_is_logged_with_its_traceback(caplog: pytest.LogCaptureFixture) -> None:
    bug = RuntimeError("a bug")
    try:
        raise bug
    except RuntimeError:  # classify runs in an except block: BatchOperations.run's
        classify(bug)
    [record] = [r for r in caplog.records if r.name == "app.aws.batch_operations"]
    assert (record.levelname, record.getMessage()) == ("ERROR", "batch task failed unexpectedly")
    assert record.exc_info is not None and record.exc_info[1] is bug


def test_the_response_answers_every_task_in_the_events_schema() -> None:
    event = load_event("s3_batch_operations_v2.json")
    results = [TaskResult("a", "Succeeded", "overlays/x.png", 12.5), TaskResult("b", "TemporaryFailure", "slow")]
    assert response(event, results) == {
        "invocationSchemaVersion": "2.0",
        "treatMissingKeysAs": "PermanentFailure",
        "invocationId": "Jr3s8KZqYWRmaiBhc2RmdW9hZHNmZGpmaGFzbGtkaGZza2RmaAo",
        "results": [{"taskId": "a", "resultCode": "Succeeded", "resultString": "overlays/x.png"},
                    {"taskId": "b", "resultCode": "TemporaryFailure", "resultString": "slow"}],
    }


def test_a_failed_task_is_logged_with_its_object_code_and_reason(caplog: pytest.LogCaptureFixture) -> None:
    task = Task("t-1", StoredObject(BUCKET, "photos/cat.jpg"))
    assert failed(task, "TemporaryFailure", "S3 is slow") == TaskResult("t-1", "TemporaryFailure", "S3 is slow")
    [record] = [r for r in caplog.records if r.name == "app.aws.batch_operations"]
    assert (record.levelname, record.getMessage()) == (
        "WARNING", f"batch task t-1 s3://{BUCKET}/photos/cat.jpg: TemporaryFailure: S3 is slow")
