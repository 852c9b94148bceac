"""app.aws.batch_operations' pure parts: tasks read from both schemas, errors classified, the response's shape."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError

from app.aws.batch_operations import Task, TaskResult, batch_tasks, classify, job_options, response, task_bucket
from app.aws.s3_trigger import StoredObject
from app.core.model_holder import ModelNotReady
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


def client_error(code: str, status: int) -> ClientError:
    body = {"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}}
    return ClientError(body, "GetObject")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("error", "code", "phrase"),
    [
        (ModelNotReady("the model is not loaded (x); next attempt in 3 s", 3.0), "TemporaryFailure",
         "the model is not loaded"),
        (client_error("SlowDown", 503), "TemporaryFailure", "SlowDown"),
        (client_error("RequestTimeout", 400), "TemporaryFailure", "RequestTimeout"),
        (client_error("InternalError", 500), "TemporaryFailure", "InternalError"),
        (client_error("SomethingNew", 502), "TemporaryFailure", "SomethingNew"),  # any 5xx
        (EndpointConnectionError(endpoint_url="https://s3.amazonaws.com"), "TemporaryFailure", "could not be reached"),
        (ReadTimeoutError(endpoint_url="https://s3.amazonaws.com"), "TemporaryFailure", "could not be reached"),
        (client_error("AccessDenied", 403), "PermanentFailure", "BatchSourcePrefix parameter"),
        (client_error("NoSuchBucket", 404), "PermanentFailure", "NoSuchBucket"),
        (client_error("InvalidObjectState", 403), "PermanentFailure", "InvalidObjectState"),  # archived (Glacier)
        (RuntimeError("a bug"), "PermanentFailure", "internal error (RuntimeError: a bug)"),
    ],
)
def test_errors_are_classified(error: Exception, code: str, phrase: str) -> None:
    found, reason = classify(error)
    assert (found, phrase in reason) == (code, True), reason


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
