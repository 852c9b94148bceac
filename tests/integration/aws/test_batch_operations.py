"""S3 Batch Operations through the upload function's handler against moto's server: every result code, per task."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from botocore.config import Config

from app.aws.batch_operations import BatchOperations, Task
from app.aws.lambda_s3 import make_upload_handler
from app.aws.observability import LambdaHandler
from app.aws.s3_client import get_s3_client
from app.aws.s3_trigger import S3Trigger, StoredObject
from app.core.decoding.imaging import ACCEPTED
from app.core.settings import Settings
from app.runtime import build_holder
from scripts.invoke import LambdaContext
from scripts.local_s3 import free_port
from tests.support import BUCKET, SAMPLE_JPEG, SAMPLE_PNG, load_event

NOT_A_SOURCE = "keys under overlays/ are this service's outputs and keys ending in / are folders"


def batch_event(schema: str, *keys: str, versions: tuple[str | None, ...] = (),
                options: dict[str, str] | None = None) -> dict[str, Any]:
    """events/s3_batch_operations_v<schema>.json with one task per (URL-encoded) key, named t0, t1, ..."""
    event = load_event(f"s3_batch_operations_v{schema[0]}.json")
    bucket = {"s3BucketArn": f"arn:aws:s3:::{BUCKET}"} if schema == "1.0" else {"s3Bucket": BUCKET}
    event["tasks"] = [{"taskId": f"t{index}", "s3Key": key, "s3VersionId": (versions or (None,) * len(keys))[index],
                       **bucket} for index, key in enumerate(keys)]
    if schema == "2.0":
        event["job"]["userArguments"] = options or {}
    return event


def results(answer: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(result["taskId"], result["resultCode"], result["resultString"]) for result in answer["results"]]


def keys_in(s3: Any, prefix: str) -> list[str]:
    return sorted(item["Key"] for item in s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", []))


def summary(s3: Any, key: str) -> dict[str, Any]:
    return dict(json.loads(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()))


def upload_handler(model: Path, s3: Any = get_s3_client) -> LambdaHandler:
    settings = Settings(MODEL_URI=str(model))
    return make_upload_handler(S3Trigger(s3, build_holder(settings), settings))


@pytest.fixture
def handler(tiny_model_path: Path) -> LambdaHandler:
    return upload_handler(tiny_model_path)


@pytest.mark.parametrize("schema", ["1.0", "2.0"])
def test_each_task_gets_its_result_and_none_fails_the_others(
    s3: Any, handler: LambdaHandler, lambda_context: LambdaContext, schema: str
) -> None:
    # GIVEN stored images under any prefix, with spaces and "+" in their keys, a corrupt one and our own output
    s3.put_object(Bucket=BUCKET, Key="photos/2019/my cat+dog 1.jpg", Body=SAMPLE_JPEG.read_bytes())
    s3.put_object(Bucket=BUCKET, Key="scans/page 7.png", Body=SAMPLE_PNG.read_bytes())
    s3.put_object(Bucket=BUCKET, Key="photos/notes.txt", Body=b"not an image at all")
    s3.put_object(Bucket=BUCKET, Key="overlays/old/x.jpg.png", Body=SAMPLE_PNG.read_bytes())
    # WHEN one invocation names them (keys URL-encoded, as in a CSV manifest), and a deleted one and a folder
    event = batch_event(schema, "photos/2019/my%20cat%2Bdog%201.jpg", "scans/page+7.png", "photos/notes.txt",
                        "photos/gone.jpg", "overlays/old/x.jpg.png", "photos/")
    answer = handler(event, lambda_context)
    # THEN every task is answered, in order, in the event's schema
    assert (answer["invocationSchemaVersion"], answer["invocationId"]) == (schema, event["invocationId"])
    assert answer["treatMissingKeysAs"] == "PermanentFailure"
    assert results(answer) == [
        ("t0", "Succeeded", "overlays/photos/2019/my cat+dog 1.jpg.png"),
        ("t1", "Succeeded", "overlays/scans/page 7.png.png"),
        ("t2", "PermanentFailure", f"the file is not a recognised image: send a {ACCEPTED} image"),
        ("t3", "PermanentFailure", "photos/gone.jpg no longer exists"),
        ("t4", "PermanentFailure", f"'overlays/old/x.jpg.png' is not a source: {NOT_A_SOURCE}"),
        ("t5", "PermanentFailure", f"'photos/' is not a source: {NOT_A_SOURCE}"),
    ]
    # and the outputs are the upload path's: mask, result, summary; a rejected summary for what failed to decode
    assert keys_in(s3, "overlays/") == sorted([
        "overlays/old/x.jpg.png",  # untouched
        *(f"overlays/photos/2019/my cat+dog 1.jpg{suffix}" for suffix in (".png", ".mask.png", ".json")),
        *(f"overlays/scans/page 7.png{suffix}" for suffix in (".png", ".mask.png", ".json")),
        "overlays/photos/notes.txt.json", "overlays/photos/gone.jpg.json",
    ])
    assert summary(s3, "overlays/photos/gone.jpg.json") == {
        "status": "rejected", "reason": "photos/gone.jpg no longer exists",
        "source": {"bucket": BUCKET, "key": "photos/gone.jpg"},
    }


def inject(code: str, status: int) -> None:
    """The app's S3 client answers every GetObject with this error, as S3 would (no request is sent)."""

    def answer(**_: Any) -> tuple[Any, dict[str, Any]]:
        error = {"Error": {"Code": code, "Message": "injected"}, "ResponseMetadata": {"HTTPStatusCode": status}}
        return SimpleNamespace(status_code=status, headers={}), error

    get_s3_client().meta.events.register("before-call.s3.GetObject", answer)


@pytest.mark.parametrize(
    ("code", "status", "result", "reason"),
    [
        ("SlowDown", 503, "TemporaryFailure", "An error occurred (SlowDown) when calling the GetObject operation"),
        ("InternalError", 500, "TemporaryFailure", "(InternalError)"),
        ("AccessDenied", 403, "PermanentFailure", "outside the prefix the stack's BatchSourcePrefix parameter"),
    ],
)
def test_s3_errors_are_retried_or_not_by_what_they_are(
    s3: Any, handler: LambdaHandler, lambda_context: LambdaContext, code: str, status: int, result: str, reason: str
) -> None:
    s3.put_object(Bucket=BUCKET, Key="photos/a.jpg", Body=SAMPLE_JPEG.read_bytes())
    inject(code, status)
    [(_, found, detail)] = results(handler(batch_event("2.0", "photos/a.jpg"), lambda_context))
    assert (found, reason in detail) == (result, True), detail
    assert keys_in(s3, "overlays/") == []  # nothing written: a retry starts clean


def test_s3_out_of_reach_is_a_temporary_failure(s3: Any, tiny_model_path: Path, lambda_context: LambdaContext) -> None:
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens there: connection refused at once
    client = boto3.client("s3", endpoint_url=closed, config=Config(retries={"max_attempts": 1}))
    handler = upload_handler(tiny_model_path, s3=lambda: client)
    [(_, code, detail)] = results(handler(batch_event("1.0", "photos/a.jpg"), lambda_context))
    assert (code, detail.startswith("S3 could not be reached (Could not connect to the endpoint URL")) == (
        "TemporaryFailure", True), detail


def test_no_model_is_a_temporary_failure(s3: Any, tmp_path: Path, lambda_context: LambdaContext) -> None:
    s3.put_object(Bucket=BUCKET, Key="photos/a.jpg", Body=SAMPLE_JPEG.read_bytes())
    handler = upload_handler(tmp_path / "absent.onnx")
    [(_, code, detail)] = results(handler(batch_event("2.0", "photos/a.jpg"), lambda_context))
    assert (code, "no model file at" in detail) == ("TemporaryFailure", True), detail


def test_our_own_outputs_are_refused_without_a_model(s3: Any, tmp_path: Path, lambda_context: LambdaContext) -> None:
    """A key under overlays/ is a PermanentFailure at once: no model, no S3 request."""
    handler = upload_handler(tmp_path / "absent.onnx")
    [(_, code, _)] = results(handler(batch_event("2.0", "overlays/a.jpg.png"), lambda_context))
    assert code == "PermanentFailure"


def test_the_version_the_manifest_names_is_processed(
    s3: Any, handler: LambdaHandler, lambda_context: LambdaContext
) -> None:
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    first = s3.put_object(Bucket=BUCKET, Key="photos/a.jpg", Body=SAMPLE_JPEG.read_bytes())["VersionId"]
    s3.put_object(Bucket=BUCKET, Key="photos/a.jpg", Body=b"a later version that is no image")
    answer = handler(batch_event("1.0", "photos/a.jpg", "photos/a.jpg", versions=(first, None)), lambda_context)
    assert [code for _, code, _ in results(answer)] == ["Succeeded", "PermanentFailure"]  # latest: corrupt


@pytest.mark.parametrize(
    ("metadata", "job", "result"),
    [
        (None, {}, "overlays/photos/a.jpg.png"),
        (None, {"format": "webp", "quality": "60"}, "overlays/photos/a.jpg.webp"),  # strings, as userArguments are
        ('{"output": "cutout", "format": "webp"}', {}, "overlays/photos/a.jpg.cutout.webp"),
        ('{"output": "cutout", "format": "webp"}', {"output": "mask"}, "overlays/photos/a.jpg.mask.webp"),  # job wins
    ],
)
def test_the_jobs_options_apply_over_the_objects(
    s3: Any, handler: LambdaHandler, lambda_context: LambdaContext, metadata: str | None, job: dict[str, str],
    result: str,
) -> None:
    extra = {"Metadata": {"options": metadata}} if metadata else {}
    s3.put_object(Bucket=BUCKET, Key="photos/a.jpg", Body=SAMPLE_JPEG.read_bytes(), **extra)
    answer = handler(batch_event("2.0", "photos/a.jpg", options=job), lambda_context)
    assert results(answer) == [("t0", "Succeeded", result)]


@pytest.mark.parametrize("job", [{"alpha": "7"}, {"k1": "v1"}, {"output": "cutout", "format": "jpeg"}])
def test_invalid_job_options_fail_every_task(
    s3: Any, handler: LambdaHandler, lambda_context: LambdaContext, job: dict[str, str]
) -> None:
    s3.put_object(Bucket=BUCKET, Key="photos/a.jpg", Body=SAMPLE_JPEG.read_bytes())
    answer = handler(batch_event("2.0", "photos/a.jpg", "photos/b.jpg", options=job), lambda_context)
    assert [code for _, code, _ in results(answer)] == ["PermanentFailure", "PermanentFailure"]
    assert all(detail.startswith("the job's userArguments are not valid options") for _, _, detail in results(answer))
    assert keys_in(s3, "overlays/") == []


def test_a_succeeded_task_carries_its_inference_time(s3: Any, tiny_model_path: Path) -> None:
    s3.put_object(Bucket=BUCKET, Key="photos/a.jpg", Body=SAMPLE_JPEG.read_bytes())
    settings = Settings(MODEL_URI=str(tiny_model_path))
    batch = BatchOperations(S3Trigger(get_s3_client, build_holder(settings), settings))
    result = batch.run(Task("t0", StoredObject(BUCKET, "photos/a.jpg")), {})
    assert (result.task_id, result.code, result.detail) == ("t0", "Succeeded", "overlays/photos/a.jpg.png")
    assert isinstance(result.inference_ms, float) and result.inference_ms > 0  # the metric's value, not a speed
