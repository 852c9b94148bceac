"""app.aws.s3_trigger's pure parts: keys decoded per record, output keys that never loop, the summary JSON."""

from __future__ import annotations

import pytest

from app.aws.s3_trigger import OutputKeys, output_keys, summary_of, uploaded_objects
from app.core.model_contract import ModelInfo
from app.core.pipeline import BoundingBox, Rendered, Summary
from tests.support import BUCKET, load_event


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


MODEL = ModelInfo(input_height=64, input_width=64, channel_order="RGB", scale=1 / 255, mean=(0.5, 0.5, 0.5),
                  std=(0.2, 0.2, 0.2), threshold=0.5, name="m", version="1", sha256="ab" * 32)


@pytest.mark.parametrize(
    ("summary", "box"),
    [
        (Summary(5, 4, 0.0, None), None),
        (Summary(5, 4, 0.1, BoundingBox(0, 0, 5, 4)), {"left": 0, "top": 0, "right": 5, "bottom": 4}),
    ],
)
def test_summary_json(summary: Summary, box: dict[str, int] | None) -> None:
    rendered = Rendered(outputs=(), summary=summary, model=MODEL, timings_ms={})
    assert summary_of(rendered, (BUCKET, "uploads/a.jpg")) == {
        "source": {"bucket": BUCKET, "key": "uploads/a.jpg"},
        "image": {"width": 5, "height": 4},
        "foreground_fraction": summary.foreground_fraction,
        "bounding_box": box,
        "model": {"name": "m", "version": "1", "sha256": "ab" * 32},
    }
