"""The upload function (app.lambda_upload) against moto's server: uploads/ in, overlay + mask + summary out."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from botocore.exceptions import ClientError
from PIL import Image
from pycocotools import mask as coco_mask

from app.aws.s3_client import get_s3_client
from app.aws.s3_trigger import S3Trigger
from app.core.decoding.imaging import DecodeLimits, decode_image
from app.core.inference.holder import ModelNotReady
from app.core.settings import Settings
from app.runtime import build_holder
from scripts.invoke import LambdaContext
from tests.samples import DISPLAY_P3_ICC, oriented
from tests.support import (
    BUCKET,
    DEFAULT_MODEL,
    REPO,
    SAMPLE_JPEG,
    SAMPLE_PNG,
    expected_overlay,
    load_event,
    model_card,
    sha256_of,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
UPLOAD_KEY = "uploads/my photo+1.jpg"  # events/s3_put_upload.json's key, "uploads/my+photo%2B1.jpg", decoded
PERSON = REPO / "events" / "images" / "person.jpg"  # test photo 0534 of model.ccp's split (tests/photos)
PERSON_TRUTH = REPO / "tests" / "photos" / "masks" / "0534.png"
PERSON_FLOOR = model_card()["golden_floors"]["0534"]  # the card's floor for this photo (tests/model)


def keys_in(s3: Any, prefix: str = "") -> list[str]:
    return sorted(item["Key"] for item in s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", []))


def sample(path: Path) -> Image.Image:
    with Image.open(path) as image:
        return image.convert("RGB")


def read_image(s3: Any, key: str) -> Image.Image:
    body = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    assert body.startswith(PNG_SIGNATURE)
    return Image.open(io.BytesIO(body))


@pytest.fixture
def handler(main_thread_event_loop: None) -> Any:
    """The real entry point, with the bundled model loaded at its import."""
    from app.lambda_upload import handler

    return handler


@pytest.fixture
def bundled_mask() -> Callable[[Image.Image], np.ndarray]:
    """The upload function's own model, run on an image: the mask its outputs must show."""
    from app.lambda_upload import runtime

    return lambda image: runtime.holder.get().segment(image).mask


def foreground(mask: np.ndarray) -> dict[str, Any]:
    """Fraction and PIL box of ``mask``, with numpy alone."""
    rows, columns = np.nonzero(mask)
    box = {"left": int(columns.min()), "top": int(rows.min()), "right": int(columns.max()) + 1,
           "bottom": int(rows.max()) + 1} if rows.size else None
    return {"foreground_fraction": float(mask.mean()), "bounding_box": box}


@pytest.fixture
def tiny_trigger(tiny_model_path: Path) -> Any:
    """An S3Trigger with the tiny model and the given settings (limits) over the app's S3 client."""
    from app.aws.s3_client import get_s3_client

    def make(**settings: Any) -> S3Trigger:
        configured = Settings(MODEL_URI=str(tiny_model_path), **settings)
        return S3Trigger(get_s3_client, build_holder(configured), configured)

    return make


# --- the flow through the real handler and the bundled model -------------------------------


def test_upload_gets_overlay_mask_and_summary(
    s3: Any, handler: Any, lambda_context: LambdaContext, bundled_mask: Callable[[Image.Image], np.ndarray]
) -> None:
    # GIVEN a photo uploaded under a key S3 URL-encodes ("+" and a space)
    s3.put_object(Bucket=BUCKET, Key=UPLOAD_KEY, Body=SAMPLE_JPEG.read_bytes())
    # WHEN S3's event reaches the handler
    result = handler(load_event("s3_put_upload.json"), lambda_context)
    # THEN the overlay, mask and summary sit next to each other under overlays/
    stem = "overlays/my photo+1.jpg"
    assert result == {"records": [{"key": UPLOAD_KEY, "status": "processed", "detail": f"{stem}.png",
                                   "inference_ms": result["records"][0]["inference_ms"]}]}
    assert keys_in(s3, "overlays/") == [f"{stem}.json", f"{stem}.mask.png", f"{stem}.png"]
    image = sample(SAMPLE_JPEG)
    expected_mask = bundled_mask(image)
    mask = np.asarray(read_image(s3, f"{stem}.mask.png"))
    assert mask.shape == (231, 447) and set(np.unique(mask)) == {0, 255}
    np.testing.assert_array_equal(mask == 255, expected_mask)
    overlay = read_image(s3, f"{stem}.png")
    assert overlay.mode == "RGB" and overlay.size == (447, 231)
    # the settings' default colour #ff3b30 at alpha 0.5, by docs/api.md's formula
    tinted = expected_overlay(np.asarray(image), expected_mask, (255, 59, 48), 0.5)
    np.testing.assert_array_equal(np.asarray(overlay), tinted)
    assert s3.head_object(Bucket=BUCKET, Key=f"{stem}.png")["ContentType"] == "image/png"


PHONE_PHOTOS = {  # id: (encoder, the largest difference from the photo's pixels the format allows)
    "heic": ("HEIF", 0),  # lossless
    "avif": ("AVIF", 6),  # quality 100, 4:4:4
}


@pytest.mark.parametrize(("fmt", "tolerance"), PHONE_PHOTOS.values(), ids=PHONE_PHOTOS)
def test_a_phone_photo_gets_an_upright_overlay_in_its_own_colours(
    s3: Any, handler: Any, lambda_context: LambdaContext, bundled_mask: Callable[[Image.Image], np.ndarray],
    fmt: str, tolerance: int,
) -> None:
    # GIVEN the sample photo in Display P3, stored portrait with irot saying "turn me", under a .jpg key
    upright = sample(SAMPLE_JPEG)
    data = oriented(fmt, upright.transpose(Image.Transpose.ROTATE_90), container=6, icc_profile=DISPLAY_P3_ICC)
    s3.put_object(Bucket=BUCKET, Key=UPLOAD_KEY, Body=data)
    # WHEN S3's event reaches the handler
    [record] = handler(load_event("s3_put_upload.json"), lambda_context)["records"]
    # THEN the overlay and mask are upright, the overlay in the photo's colours, with its profile
    assert record["status"] == "processed"
    stem = "overlays/my photo+1.jpg"
    overlay, mask = read_image(s3, f"{stem}.png"), np.asarray(read_image(s3, f"{stem}.mask.png")) == 255
    assert (overlay.size, mask.shape, overlay.info["icc_profile"]) == ((447, 231), (231, 447), DISPLAY_P3_ICC)
    decoded = decode_image(data, DecodeLimits(max_bytes=10**7, max_pixels=10**7))  # upright, P3-tagged
    assert np.abs(np.asarray(decoded, np.int16) - np.asarray(upright, np.int16)).max() <= tolerance
    np.testing.assert_array_equal(mask, bundled_mask(decoded))  # the model saw it in sRGB
    np.testing.assert_array_equal(np.asarray(overlay), expected_overlay(np.asarray(decoded), mask, (255, 59, 48), 0.5))
    assert 0.05 < mask.mean() < 0.95  # the sample's blobs: the comparisons above mean something


def test_summary_describes_the_mask_and_the_model(
    s3: Any, handler: Any, lambda_context: LambdaContext, bundled_mask: Callable[[Image.Image], np.ndarray]
) -> None:
    s3.put_object(Bucket=BUCKET, Key=UPLOAD_KEY, Body=SAMPLE_JPEG.read_bytes())
    handler(load_event("s3_put_upload.json"), lambda_context)
    summary = json.loads(s3.get_object(Bucket=BUCKET, Key="overlays/my photo+1.jpg.json")["Body"].read())
    assert summary == {
        "status": "done",
        "source": {"bucket": BUCKET, "key": UPLOAD_KEY},
        "image": {"width": 447, "height": 231},
        **foreground(bundled_mask(sample(SAMPLE_JPEG))),
        "model": {"name": "unet-person-ccp", "version": "2.0.0+int8", "sha256": sha256_of(DEFAULT_MODEL)},
        "options": {"output": "overlay", "format": "png", "quality": None, "color": "#ff3b30", "alpha": 0.5,
                    "threshold": None},  # no options in the object's metadata: the settings' defaults
        "outputs": {"result": "overlays/my photo+1.jpg.png", "mask": "overlays/my photo+1.jpg.mask.png"},
    }


def test_the_summary_is_written_last(s3: Any, handler: Any, lambda_context: LambdaContext) -> None:
    """Its presence means every other output is there: a crash between writes is redone on redelivery."""
    from app.aws.s3_client import get_s3_client

    written: list[str] = []
    get_s3_client().meta.events.register("before-parameter-build.s3.PutObject",
                                         lambda params, **_: written.append(params["Key"]))
    s3.put_object(Bucket=BUCKET, Key=UPLOAD_KEY, Body=SAMPLE_JPEG.read_bytes())
    handler(load_event("s3_put_upload.json"), lambda_context)
    stem = "overlays/my photo+1.jpg"
    assert written == [f"{stem}.mask.png", f"{stem}.png", f"{stem}.json"]


def test_the_bundled_model_finds_the_person(s3: Any, handler: Any, lambda_context: LambdaContext) -> None:
    """Realism: a real test photo through the S3 trigger, against its labelled mask (tests/photos)."""
    s3.put_object(Bucket=BUCKET, Key=UPLOAD_KEY, Body=PERSON.read_bytes())
    handler(load_event("s3_put_upload.json"), lambda_context)
    mask = np.asarray(read_image(s3, "overlays/my photo+1.jpg.mask.png")) == 255
    truth = np.asarray(Image.open(PERSON_TRUTH)) == 255
    iou = np.logical_and(mask, truth).sum() / np.logical_or(mask, truth).sum()
    assert iou >= PERSON_FLOOR, f"IoU {iou:.3f}"


def test_several_records_in_one_event(s3: Any, handler: Any, lambda_context: LambdaContext) -> None:
    s3.put_object(Bucket=BUCKET, Key="uploads/batch/blobs.jpg", Body=SAMPLE_JPEG.read_bytes())
    s3.put_object(Bucket=BUCKET, Key="uploads/batch/blobs(2).png", Body=SAMPLE_PNG.read_bytes())
    result = handler(load_event("s3_put_batch.json"), lambda_context)
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


def test_redelivered_event_overwrites_the_same_outputs(s3: Any, handler: Any, lambda_context: LambdaContext) -> None:
    s3.put_object(Bucket=BUCKET, Key=UPLOAD_KEY, Body=SAMPLE_JPEG.read_bytes())
    handler(load_event("s3_put_upload.json"), lambda_context)
    first = {key: s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() for key in keys_in(s3, "overlays/")}
    handler(load_event("s3_put_upload.json"), lambda_context)  # S3 delivers at least once
    again = {key: s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() for key in keys_in(s3, "overlays/")}
    assert again == first


# --- what is skipped, what is rejected, what raises -----------------------------------------


def test_own_outputs_never_trigger_work(s3: Any, handler: Any, lambda_context: LambdaContext) -> None:
    from app.aws.s3_client import get_s3_client

    requests: list[str] = []
    get_s3_client().meta.events.register("before-call.s3", lambda model, **_: requests.append(model.name))
    result = handler(load_event("s3_put_overlay.json"), lambda_context)
    assert result == {"records": [{"key": "overlays/my photo+1.jpg.png", "status": "skipped",
                                   "detail": "not under uploads/", "inference_ms": None}]}
    assert requests == [] and keys_in(s3) == []


def test_skipping_needs_no_model(s3: Any, tiny_model_path: Path, tmp_path: Path) -> None:
    """A key outside uploads/ is skipped even while the model cannot load: no retry storm on our own writes."""
    from app.aws.s3_client import get_s3_client

    settings = Settings(MODEL_URI=str(tmp_path / "absent.onnx"))
    trigger = S3Trigger(get_s3_client, build_holder(settings), settings)
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
def test_bad_upload_is_logged_and_summarised_as_rejected(
    s3: Any, handler: Any, lambda_context: LambdaContext, body: bytes, detail: str,
    json_logs: Callable[[], list[dict[str, Any]]],
) -> None:
    s3.put_object(Bucket=BUCKET, Key=UPLOAD_KEY, Body=body)
    result = handler(load_event("s3_put_upload.json"), lambda_context)  # no exception: a retry could not help
    [record] = result["records"]
    assert record["status"] == "rejected" and detail in record["detail"].lower()
    assert keys_in(s3, "overlays/") == ["overlays/my photo+1.jpg.json"]  # the summary only: a poller stops
    summary = json.loads(s3.get_object(Bucket=BUCKET, Key="overlays/my photo+1.jpg.json")["Body"].read())
    source = {"bucket": BUCKET, "key": UPLOAD_KEY}
    assert summary == {"status": "rejected", "reason": record["detail"], "source": source}
    [warning] = [line for line in json_logs() if line["level"] == "WARNING"]
    assert warning["message"].startswith(f"skipping s3://{BUCKET}/{UPLOAD_KEY}: ")
    assert warning["function_request_id"] == lambda_context.aws_request_id


@pytest.mark.parametrize(
    ("limits", "status", "detail"),
    [
        ({"S3_MAX_UPLOAD_BYTES": 10_000}, "rejected", "21210 bytes is over the 10000-byte limit (s3_max_upload_bytes)"),
        ({"S3_MAX_UPLOAD_BYTES": 21_209}, "rejected", "21210 bytes is over the 21209-byte limit"),  # one byte over
        ({"S3_MAX_UPLOAD_BYTES": 21_210}, "processed", "overlays/my photo+1.jpg.png"),  # exactly the limit: taken
        ({"S3_MAX_PIXELS": 100_000}, "rejected", "103257 pixels"),
        ({"S3_MAX_PIXELS": 103_257}, "processed", "overlays/my photo+1.jpg.png"),  # 447 x 231 exactly
        # the HTTP limits do not apply to S3 uploads
        ({"MAX_UPLOAD_BYTES": 1_000, "MAX_PIXELS": 1_000}, "processed", "overlays/my photo+1.jpg.png"),
    ],
    ids=["bytes-over-s3-limit", "one-byte-over", "bytes-at-the-limit", "pixels-over-s3-limit", "pixels-at-the-limit",
         "http-limits-do-not-apply"],
)
def test_s3_limits_apply(s3: Any, tiny_trigger: Any, limits: dict[str, int], status: str, detail: str) -> None:
    s3.put_object(Bucket=BUCKET, Key=UPLOAD_KEY, Body=SAMPLE_JPEG.read_bytes())
    [outcome] = tiny_trigger(**limits).handle(load_event("s3_put_upload.json"))
    assert (outcome.status, detail in outcome.detail.lower()) == (status, True), outcome.detail


def test_upload_deleted_before_processing_is_rejected(s3: Any, tiny_trigger: Any) -> None:
    [outcome] = tiny_trigger().handle(load_event("s3_put_upload.json"))  # never put: gone
    assert (outcome.status, outcome.detail) == ("rejected", "uploads/my photo+1.jpg no longer exists")


@pytest.mark.parametrize(
    ("metadata", "reason"),
    [('{"alpha": 7}', "alpha"), ("not json", "invalid"), ('{"output": "cutout", "format": "jpeg"}', "no alpha"),
     ('["a list"]', "invalid")],
)
def test_options_no_retry_can_fix_are_rejected(s3: Any, tiny_trigger: Any, metadata: str, reason: str) -> None:
    s3.put_object(Bucket=BUCKET, Key=UPLOAD_KEY, Body=SAMPLE_JPEG.read_bytes(), Metadata={"options": metadata})
    [outcome] = tiny_trigger().handle(load_event("s3_put_upload.json"))
    assert outcome.status == "rejected" and outcome.detail.startswith("the upload's options are invalid")
    assert reason in outcome.detail


def test_s3_errors_raise_so_lambda_retries(s3: Any, handler: Any, lambda_context: LambdaContext) -> None:
    event = load_event("s3_put_upload.json")
    event["Records"][0]["s3"]["bucket"]["name"] = "bucket-that-does-not-exist"
    with pytest.raises(ClientError, match="NoSuchBucket"):
        handler(event, lambda_context)


def test_unloadable_model_raises_on_s3_events(s3: Any, tmp_path: Path) -> None:
    from app.aws.s3_client import get_s3_client

    s3.put_object(Bucket=BUCKET, Key=UPLOAD_KEY, Body=SAMPLE_JPEG.read_bytes())
    settings = Settings(MODEL_URI=str(tmp_path / "absent.onnx"))
    trigger = S3Trigger(get_s3_client, build_holder(settings), settings)
    with pytest.raises(ModelNotReady, match="no model file at"):
        trigger.handle(load_event("s3_put_upload.json"))
    assert keys_in(s3, "overlays/") == []


NOT_A_LIST = """the upload's options are invalid ('["a list"]' is not a JSON object)"""


@pytest.mark.parametrize(
    ("limits", "options", "reason"),
    [
        ({"S3_MAX_UPLOAD_BYTES": 21_209}, None, "21210 bytes is over the 21209-byte limit (S3_MAX_UPLOAD_BYTES)"),
        ({}, '["a list"]', NOT_A_LIST),
        ({}, "not json", "the upload's options are invalid (Expecting value: line 1 column 1 (char 0))"),
        ({"S3_MAX_PIXELS": 100_000}, None, "the image is 447x231 = 103257 pixels, over the 100000-pixel limit: "
                                           "send a smaller image"),
    ],
    ids=["too-many-bytes", "options-not-an-object", "options-not-json", "too-many-pixels"],
)
def test_a_rejection_says_exactly_why_and_keeps_the_owner(
    s3: Any, tiny_trigger: Any, limits: dict[str, int], options: str | None, reason: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    metadata = {"owner": "key:abc", **({"options": options} if options is not None else {})}
    s3.put_object(Bucket=BUCKET, Key=UPLOAD_KEY, Body=SAMPLE_JPEG.read_bytes(), Metadata=metadata)
    [outcome] = tiny_trigger(**limits).handle(load_event("s3_put_upload.json"))
    summary = json.loads(s3.get_object(Bucket=BUCKET, Key="overlays/my photo+1.jpg.json")["Body"].read())
    assert (outcome.key, outcome.status, outcome.detail) == (UPLOAD_KEY, "rejected", reason)
    assert [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "app.aws.s3_trigger"] == [
        ("WARNING", f"skipping s3://{BUCKET}/{UPLOAD_KEY}: {reason}")]
    assert summary == {"status": "rejected", "reason": reason, "source": {"bucket": BUCKET, "key": UPLOAD_KEY},
                       "owner": "key:abc"}


def test_a_key_outside_uploads_is_skipped_with_a_log_line(tiny_trigger: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="app.aws.s3_trigger")
    outcome = tiny_trigger().process(BUCKET, "overlays/x/cat.jpg.png")
    assert (outcome.key, outcome.status, outcome.detail) == ("overlays/x/cat.jpg.png", "skipped", "not under uploads/")
    assert [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "app.aws.s3_trigger"] == [
        ("INFO", f"skipping s3://{BUCKET}/overlays/x/cat.jpg.png: only keys under uploads/ are processed")]


@pytest.mark.parametrize(
    ("options", "types"),
    [
        ('{"output": "mask"}', {"mask.png": "image/png"}),  # the result is the mask: one object
        ('{"output": "json"}', {"mask.png": "image/png"}),  # the summary is the result
        ('{"format": "webp"}', {"mask.png": "image/png", "webp": "image/webp"}),
    ],
    ids=["mask", "json", "webp-overlay"],
)
def test_each_output_is_written_once_with_its_content_type(
    s3: Any, tiny_trigger: Any, options: str, types: dict[str, str]
) -> None:
    s3.put_object(Bucket=BUCKET, Key=UPLOAD_KEY, Body=SAMPLE_JPEG.read_bytes(), Metadata={"options": options})
    [outcome] = tiny_trigger().handle(load_event("s3_put_upload.json"))
    written = {**types, "json": "application/json"}  # and the summary
    expected = {f"overlays/my photo+1.jpg.{suffix}": content_type for suffix, content_type in written.items()}
    assert outcome.status == "processed"
    assert {key: s3.head_object(Bucket=BUCKET, Key=key)["ContentType"] for key in keys_in(s3, "overlays/")} == expected


# pycocotools' decode (the reader we prove against, not our code) calls np.array(copy=False) the numpy 1 way.
@pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")
def test_json_output_puts_the_masks_rle_in_the_summary(
    s3: Any, tiny_trigger: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="app.aws.s3_trigger")
    json_output = {"options": '{"output": "json"}'}
    s3.put_object(Bucket=BUCKET, Key=UPLOAD_KEY, Body=SAMPLE_JPEG.read_bytes(), Metadata=json_output)
    [outcome] = tiny_trigger().handle(load_event("s3_put_upload.json"))
    stem = "overlays/my photo+1.jpg"
    summary = json.loads(s3.get_object(Bucket=BUCKET, Key=f"{stem}.json")["Body"].read())
    rle = {"size": summary["mask_rle"]["size"], "counts": summary["mask_rle"]["counts"].encode()}
    assert (outcome.detail, summary["outputs"]) == (f"{stem}.json", {"result": None, "mask": f"{stem}.mask.png"})
    mask = np.asarray(read_image(s3, f"{stem}.mask.png")) == 255
    assert np.array_equal(coco_mask.decode(rle).astype(bool), mask) and 0 < mask.sum() < mask.size
    assert [r.getMessage() for r in caplog.records if r.name == "app.aws.s3_trigger"] == [
        f"segmented s3://{BUCKET}/{UPLOAD_KEY} -> {stem}.json"]
    # resize + infer + upsample, to a tenth of a millisecond (the InferenceLatency metric), not a speed
    assert isinstance(outcome.inference_ms, float) and outcome.inference_ms == round(outcome.inference_ms, 1) > 0


class FailingGets:
    """The app's S3 client, except that GetObject answers ``error``."""

    def __init__(self, error: ClientError) -> None:
        self.error = error

    def __getattr__(self, name: str) -> Any:
        return getattr(get_s3_client(), name)

    def get_object(self, **_: Any) -> Any:
        raise self.error


@pytest.mark.parametrize(
    "error",
    [ClientError({"Error": {"Code": "SlowDown", "Message": "m"}}, "GetObject"), ClientError({}, "GetObject")],
    ids=["throttled", "no-error-code"],
)
def test_an_s3_error_that_is_not_gone_raises_for_a_retry(s3: Any, tiny_model_path: Path, error: ClientError) -> None:
    settings = Settings(MODEL_URI=str(tiny_model_path))
    trigger = S3Trigger(lambda: FailingGets(error), build_holder(settings), settings)
    with pytest.raises(ClientError) as raised:
        trigger.process(BUCKET, UPLOAD_KEY)
    assert raised.value is error
