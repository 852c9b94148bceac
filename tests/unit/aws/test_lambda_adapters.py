"""app.aws.lambda_http and lambda_s3: which events each function takes, and the Server-Timing reader."""

from __future__ import annotations

from typing import Any

import pytest
from mangum import Mangum

from app.aws.batch_operations import is_batch_event
from app.aws.lambda_http import is_http_event, server_timing_ms
from app.aws.lambda_s3 import is_s3_event
from scripts.invoke import LambdaContext
from tests.support import load_event

S3_RECORD = load_event("s3_put_upload.json")["Records"][0]
BATCH = load_event("s3_batch_operations_v2.json")


@pytest.mark.parametrize(
    ("event", "http", "s3", "batch"),
    [
        (load_event("http_api_get_root.json"), True, False, False),
        (load_event("rest_api_post_predict.json"), True, False, False),
        (load_event("alb_get_root.json"), True, False, False),
        (load_event("s3_put_upload.json"), False, True, False),
        (load_event("s3_put_batch.json"), False, True, False),
        (load_event("s3_batch_operations_v1.json"), False, False, True),
        (BATCH, False, False, True),
        ({**BATCH, "invocationSchemaVersion": "3.0"}, False, False, False),  # a schema we do not know
        ({**BATCH, "tasks": "not a list"}, False, False, False),
        ({key: value for key, value in BATCH.items() if key != "invocationId"}, False, False, False),
        ({key: value for key, value in BATCH.items() if key != "job"}, False, False, True),  # job is optional
        ({**BATCH, "job": "not an object"}, False, False, False),
        ({**BATCH, "job": {**BATCH["job"], "userArguments": "not an object"}}, False, False, False),
        ({**BATCH, "job": {"id": "j"}}, False, False, True),  # 1.0's job: no userArguments
        (load_event("sqs_message.json"), False, False, False),
        (load_event("eventbridge_scheduled.json"), False, False, False),
        ({"Records": []}, False, False, False),
        ({"Records": [S3_RECORD, {"eventSource": "aws:sqs"}]}, False, False, False),
        ({"Records": "not a list"}, False, False, False),
        ({}, False, False, False),
        ([], False, False, False),
        ("warm-up", False, False, False),
        (None, False, False, False),
    ],
    ids=["http-v2", "rest-v1", "alb", "s3", "s3-batch", "batch-operations-1.0", "batch-operations-2.0",
         "batch-unknown-schema", "batch-tasks-not-a-list", "batch-no-invocation-id", "batch-no-job",
         "batch-job-not-an-object", "batch-user-arguments-not-an-object", "batch-job-without-arguments", "sqs",
         "eventbridge", "no-records", "mixed-records", "records-not-a-list", "empty", "list", "string", "null"],
)
def test_each_function_recognises_its_events(event: Any, http: bool, s3: bool, batch: bool,
                                             main_thread_event_loop: None) -> None:
    assert is_http_event(event, LambdaContext(), Mangum(lambda *_: None, lifespan="off")) is http
    assert is_s3_event(event) is s3
    assert is_batch_event(event) is batch


@pytest.mark.parametrize(
    ("headers", "stage", "expected"),
    [
        ({"server-timing": "decode;dur=7.6, infer;dur=225.0, encode;dur=1.4"}, "infer", 225.0),
        ({"Server-Timing": "infer;dur=3"}, "infer", 3.0),
        ({"server-timing": "inference;dur=9, infer_x;dur=1"}, "infer", None),
        ({"content-type": "application/json"}, "infer", None),
    ],
)
def test_server_timing_ms(headers: dict[str, str], stage: str, expected: float | None) -> None:
    assert server_timing_ms({"statusCode": 200, "headers": headers}, stage) == expected
