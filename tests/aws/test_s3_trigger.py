"""The S3 upload trigger against moto's server: uploads/ in, overlay + mask + summary out, the rest skipped."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from app.model_holder import ModelHolder, ModelNotReady
from app.overlay import blend, parse_color
from app.s3_trigger import OutputKeys, S3Trigger, output_keys, summarise, uploaded_objects
from app.settings import Settings
from botocore.exceptions import ClientError
from PIL import Image

from scripts.invoke import LambdaContext
from tests.aws.conftest import BUCKET, SAMPLE_JPEG, SAMPLE_PNG, load_event

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
UPLOAD_KEY = "uploads/my photo+1.jpg"  # events/s3_put_upload.json's key, "uploads/my+photo%2B1.jpg", decoded
HELDOUT_SAMPLE = 2  # events/images/blobs.jpg is model.synthetic's held-out sample 2, saved at JPEG quality 85


def keys_in(s3: Any, prefix: str = "") -> list[str]:
    return sorted(item["Key"] for item in s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", []))


def sample(path: Path) -> Image.Image:
    with Image.open(path) as image:
        return image.convert("RGB")


def box(left: int, top: int, right: int, bottom: int) -> dict[str, int]:
    return {"left": left, "top": top, "right": right, "bottom": bottom}


def read_image(s3: Any, key: str) -> Image.Image:
    body = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    assert body.startswith(PNG_SIGNATURE)
    return Image.open(io.BytesIO(body))


@pytest.fixture
def handler() -> Any:
    """The real entry point, with the bundled model loaded at its import."""
    from app.main import handler

    return handler


@pytest.fixture
def tiny_trigger(tiny_model_path: Path) -> Any:
    """An S3Trigger with the tiny model and the given settings (limits) over the app's S3 client."""
    from app.s3_client import get_s3_client

    def make(**settings: Any) -> S3Trigger:
        configured = Settings(MODEL_URI=str(tiny_model_path), **settings)
        return S3Trigger(get_s3_client, ModelHolder(configured), configured)

    return make


# --- pure parts ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        ("s3_put_upload.json", [(BUCKET, "uploads/my photo+1.jpg")]),
        ("s3_put_overlay.json", [(BUCKET, "overlays/my photo+1.jpg.png")]),
        ("s3_put_batch.json", [(BUCKET, "uploads/batch/blobs.jpg"), (BUCKET, "uploads/batch/blobs(2).png"),
                               (BUCKET, "overlays/batch/blobs.jpg.json")]),
    ],
)
def test_keys_are_decoded_per_record(event: str, expected: list[tuple[str, str]]) -> None:
    assert uploaded_objects(load_event(event)) == expected


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("uploads/x/cat.jpg",
         OutputKeys("overlays/x/cat.jpg.png", "overlays/x/cat.jpg.mask.png", "overlays/x/cat.jpg.json")),
        ("uploads/cat", OutputKeys("overlays/cat.png", "overlays/cat.mask.png", "overlays/cat.json")),
        ("uploads/my photo+1.jpg",
         OutputKeys("overlays/my photo+1.jpg.png", "overlays/my photo+1.jpg.mask.png", "overlays/my photo+1.jpg.json")),
        ("overlays/x/cat.jpg.png", None),  # our own output: never processed, so never a loop
        ("uploads/", None),  # the console's folder marker
        ("uploads/x/", None),
        ("Uploads/cat.jpg", None),  # S3 keys are case-sensitive, and so is the trigger's filter
        ("uploadsx/cat.jpg", None),
        ("models/unet.onnx", None),
    ],
)
def test_output_keys(key: str, expected: OutputKeys | None) -> None:
    assert output_keys(key) == expected


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        ([], {"foreground_fraction": 0.0, "bounding_box": None}),
        ([(1, 2)], {"foreground_fraction": 1 / 20, "bounding_box": box(2, 1, 3, 2)}),
        ([(0, 0), (3, 4)], {"foreground_fraction": 2 / 20, "bounding_box": box(0, 0, 5, 4)}),
    ],
)
def test_summarise(rows: list[tuple[int, int]], expected: dict[str, Any]) -> None:
    mask = np.zeros((4, 5), dtype=bool)
    for y, x in rows:
        mask[y, x] = True
    assert summarise(mask) == expected


# --- the flow through the real handler and the bundled model -------------------------------


def test_upload_gets_overlay_mask_and_summary(s3: Any, handler: Any, context: LambdaContext) -> None:
    from app.main import holder

    # GIVEN a photo uploaded under a key S3 URL-encodes ("+" and a space)
    s3.put_object(Bucket=BUCKET, Key=UPLOAD_KEY, Body=SAMPLE_JPEG.read_bytes())
    # WHEN S3's event reaches the handler
    result = handler(load_event("s3_put_upload.json"), context)
    # THEN the overlay, mask and summary sit next to each other under overlays/
    stem = "overlays/my photo+1.jpg"
    assert result == {"records": [{"key": UPLOAD_KEY, "status": "processed", "detail": f"{stem}.png",
                                   "inference_ms": result["records"][0]["inference_ms"]}]}
    assert keys_in(s3, "overlays/") == [f"{stem}.json", f"{stem}.mask.png", f"{stem}.png"]
    image = sample(SAMPLE_JPEG)
    expected_mask = holder.get().predict(image)
    mask = np.asarray(read_image(s3, f"{stem}.mask.png"))
    assert mask.shape == (231, 447) and set(np.unique(mask)) == {0, 255}
    np.testing.assert_array_equal(mask == 255, expected_mask)
    overlay = read_image(s3, f"{stem}.png")
    assert overlay.mode == "RGB" and overlay.size == (447, 231)
    settings = Settings()
    tinted = blend(image, expected_mask, parse_color(settings.OVERLAY_COLOR), settings.OVERLAY_ALPHA)
    np.testing.assert_array_equal(np.asarray(overlay), np.asarray(tinted))
    assert s3.head_object(Bucket=BUCKET, Key=f"{stem}.png")["ContentType"] == "image/png"


def test_summary_describes_the_mask_and_the_model(s3: Any, handler: Any, context: LambdaContext) -> None:
    from app.main import holder

    s3.put_object(Bucket=BUCKET, Key=UPLOAD_KEY, Body=SAMPLE_JPEG.read_bytes())
    handler(load_event("s3_put_upload.json"), context)
    summary = json.loads(s3.get_object(Bucket=BUCKET, Key="overlays/my photo+1.jpg.json")["Body"].read())
    mask = holder.get().predict(sample(SAMPLE_JPEG))
    info = holder.get().info
    assert summary == {
        "source": {"bucket": BUCKET, "key": UPLOAD_KEY},
        "image": {"width": 447, "height": 231},
        **summarise(mask),
        "model": {"name": info.name, "version": info.version, "sha256": info.sha256},
    }


def test_the_bundled_model_finds_the_real_foreground(s3: Any, handler: Any, context: LambdaContext) -> None:
    """Realism: against model.synthetic's ground truth for the uploaded sample, the S3 mask scores IoU >= 0.95."""
    from model.synthetic import HELDOUT_SEED, generate_sample

    _, truth = generate_sample(np.random.default_rng([HELDOUT_SEED, HELDOUT_SAMPLE]))
    s3.put_object(Bucket=BUCKET, Key=UPLOAD_KEY, Body=SAMPLE_JPEG.read_bytes())
    handler(load_event("s3_put_upload.json"), context)
    mask = np.asarray(read_image(s3, "overlays/my photo+1.jpg.mask.png")) == 255
    iou = np.logical_and(mask, truth).sum() / np.logical_or(mask, truth).sum()
    assert iou >= 0.95, f"IoU {iou:.3f}"


def test_several_records_in_one_event(s3: Any, handler: Any, context: LambdaContext) -> None:
    s3.put_object(Bucket=BUCKET, Key="uploads/batch/blobs.jpg", Body=SAMPLE_JPEG.read_bytes())
    s3.put_object(Bucket=BUCKET, Key="uploads/batch/blobs(2).png", Body=SAMPLE_PNG.read_bytes())
    result = handler(load_event("s3_put_batch.json"), context)
    assert [(r["key"], r["status"]) for r in result["records"]] == [
        ("uploads/batch/blobs.jpg", "processed"),
        ("uploads/batch/blobs(2).png", "processed"),
        ("overlays/batch/blobs.jpg.json", "skipped"),
    ]
    assert keys_in(s3, "overlays/") == [
        "overlays/batch/blobs(2).png.json", "overlays/batch/blobs(2).png.mask.png", "overlays/batch/blobs(2).png.png",
        "overlays/batch/blobs.jpg.json", "overlays/batch/blobs.jpg.mask.png", "overlays/batch/blobs.jpg.png",
    ]
    assert read_image(s3, "overlays/batch/blobs(2).png.png").size == sample(SAMPLE_PNG).size


def test_redelivered_event_overwrites_the_same_outputs(s3: Any, handler: Any, context: LambdaContext) -> None:
    s3.put_object(Bucket=BUCKET, Key=UPLOAD_KEY, Body=SAMPLE_JPEG.read_bytes())
    handler(load_event("s3_put_upload.json"), context)
    first = {key: s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() for key in keys_in(s3, "overlays/")}
    handler(load_event("s3_put_upload.json"), context)  # S3 delivers at least once
    again = {key: s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() for key in keys_in(s3, "overlays/")}
    assert again == first


# --- what is skipped, what is rejected, what raises -----------------------------------------


def test_own_outputs_never_trigger_work(s3: Any, handler: Any, context: LambdaContext) -> None:
    from app.s3_client import get_s3_client

    requests: list[str] = []
    get_s3_client().meta.events.register("before-call.s3", lambda model, **_: requests.append(model.name))
    result = handler(load_event("s3_put_overlay.json"), context)
    assert result == {"records": [{"key": "overlays/my photo+1.jpg.png", "status": "skipped",
                                   "detail": "not under uploads/", "inference_ms": None}]}
    assert requests == [] and keys_in(s3) == []


def test_skipping_needs_no_model(s3: Any, tiny_model_path: Path, tmp_path: Path) -> None:
    """A key outside uploads/ is skipped even while the model cannot load: no retry storm on our own writes."""
    from app.s3_client import get_s3_client

    settings = Settings(MODEL_URI=str(tmp_path / "absent.onnx"))
    trigger = S3Trigger(get_s3_client, ModelHolder(settings), settings)
    assert [o.status for o in trigger.handle(load_event("s3_put_overlay.json"))] == ["skipped"]


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b"not an image at all", "the file is not a recognised image"),
        (SAMPLE_JPEG.read_bytes()[:400], "truncated"),
        (b"8BPS\x00\x01" + bytes(64), "psd images are not accepted"),
        (b"", "empty"),
    ],
    ids=["garbage", "truncated-jpeg", "psd", "empty"],
)
def test_bad_upload_is_logged_and_skipped(
    s3: Any, handler: Any, context: LambdaContext, body: bytes, detail: str,
    json_logs: Callable[[], list[dict[str, Any]]],
) -> None:
    s3.put_object(Bucket=BUCKET, Key=UPLOAD_KEY, Body=body)
    result = handler(load_event("s3_put_upload.json"), context)  # no exception: a retry could not help
    [record] = result["records"]
    assert record["status"] == "rejected" and detail in record["detail"].lower()
    assert keys_in(s3, "overlays/") == []
    [warning] = [line for line in json_logs() if line["level"] == "WARNING"]
    assert warning["message"].startswith(f"skipping s3://{BUCKET}/{UPLOAD_KEY}: ")
    assert warning["function_request_id"] == context.aws_request_id


@pytest.mark.parametrize(
    ("limits", "status", "detail"),
    [
        ({"S3_MAX_UPLOAD_BYTES": 10_000}, "rejected", "21210 bytes is over the 10000-byte limit (s3_max_upload_bytes)"),
        ({"S3_MAX_PIXELS": 100_000}, "rejected", "103257 pixels"),
        # the HTTP limits do not apply to S3 uploads
        ({"MAX_UPLOAD_BYTES": 1_000, "MAX_PIXELS": 1_000}, "processed", "overlays/my photo+1.jpg.png"),
    ],
    ids=["bytes-over-s3-limit", "pixels-over-s3-limit", "http-limits-do-not-apply"],
)
def test_s3_limits_apply(s3: Any, tiny_trigger: Any, limits: dict[str, int], status: str, detail: str) -> None:
    s3.put_object(Bucket=BUCKET, Key=UPLOAD_KEY, Body=SAMPLE_JPEG.read_bytes())
    [outcome] = tiny_trigger(**limits).handle(load_event("s3_put_upload.json"))
    assert (outcome.status, detail in outcome.detail.lower()) == (status, True), outcome.detail


def test_upload_deleted_before_processing_is_skipped(s3: Any, tiny_trigger: Any) -> None:
    [outcome] = tiny_trigger().handle(load_event("s3_put_upload.json"))  # never put: gone
    assert (outcome.status, outcome.detail) == ("rejected", "uploads/my photo+1.jpg no longer exists")


def test_s3_errors_raise_so_lambda_retries(s3: Any, handler: Any, context: LambdaContext) -> None:
    event = load_event("s3_put_upload.json")
    event["Records"][0]["s3"]["bucket"]["name"] = "bucket-that-does-not-exist"
    with pytest.raises(ClientError, match="NoSuchBucket"):
        handler(event, context)


def test_unloadable_model_raises_on_s3_events(s3: Any, tmp_path: Path) -> None:
    from app.s3_client import get_s3_client

    s3.put_object(Bucket=BUCKET, Key=UPLOAD_KEY, Body=SAMPLE_JPEG.read_bytes())
    settings = Settings(MODEL_URI=str(tmp_path / "absent.onnx"))
    trigger = S3Trigger(get_s3_client, ModelHolder(settings), settings)
    with pytest.raises(ModelNotReady, match="no model file at"):
        trigger.handle(load_event("s3_put_upload.json"))
    assert keys_in(s3, "overlays/") == []
