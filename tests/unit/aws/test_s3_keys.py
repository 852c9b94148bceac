"""app.aws.keys, app.core.naming and the trigger's pure parts: which keys are uploads or sources, where outputs
go, safe file names, summaries."""

from __future__ import annotations

from typing import Any

import pytest

from app.aws.keys import OutputKeys, is_source_key, is_upload_key, output_keys, upload_key
from app.aws.s3_trigger import StoredObject, done_summary, extra_outputs, uploaded_objects
from app.core.inference.contract import ModelInfo
from app.core.naming import MAX_NAME_BYTES, result_name, sanitise_filename
from app.core.options import RenderOptions
from app.core.output.encoding import Encoded
from app.core.output.summary import BoundingBox, Summary
from app.core.pipeline import Rendered
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
    ("key", "upload"),
    [
        ("uploads/x/cat.jpg", True), ("uploads/cat", True), ("uploads/my photo+1.jpg", True),
        ("overlays/x/cat.jpg.png", False),  # our own output: never processed, so never a loop
        ("overlays/uploads/x.png", False), ("backup/uploads/a.jpg", False),  # "uploads/" inside is not under it
        ("uploads/", False), ("uploads/x/", False),  # the console's folder markers
        ("Uploads/cat.jpg", False),  # S3 keys are case-sensitive, and so is the trigger's filter
        ("uploadsx/cat.jpg", False), ("models/unet.onnx", False), ("", False),
    ],
)
def test_which_keys_are_uploads(key: str, upload: bool) -> None:
    assert is_upload_key(key) is upload


B = "overlays/a/b.png"


def keys(stem: str, result: str | None) -> OutputKeys:
    return OutputKeys(result=result, mask=f"{stem}.mask.png", summary=f"{stem}.json")


@pytest.mark.parametrize(
    ("key", "options", "expected"),
    [
        ("uploads/x/cat.jpg", {}, keys("overlays/x/cat.jpg", "overlays/x/cat.jpg.png")),
        ("uploads/cat", {}, keys("overlays/cat", "overlays/cat.png")),
        ("uploads/my photo+1.jpg", {}, keys("overlays/my photo+1.jpg", "overlays/my photo+1.jpg.png")),
        ("uploads/a/b.png", {"format": "jpeg"}, keys(B, f"{B}.jpg")),
        ("uploads/a/b.png", {"format": "webp", "output": "cutout"}, keys(B, f"{B}.cutout.webp")),
        ("uploads/a/b.png", {"output": "mask"}, keys(B, f"{B}.mask.png")),
        ("uploads/a/b.png", {"output": "mask", "format": "jpeg"}, keys(B, f"{B}.mask.jpg")),
        ("uploads/a/b.png", {"output": "json"}, keys(B, None)),
    ],
)
def test_output_keys(key: str, options: dict[str, Any], expected: OutputKeys) -> None:
    assert output_keys(key, RenderOptions(**options)) == expected


@pytest.mark.parametrize(
    ("key", "source"),
    [
        ("uploads/x/cat.jpg", True), ("photos/2019/my cat+dog.jpg", True), ("cat.jpg", True),
        ("backup/overlays/a.jpg", True),  # "overlays/" inside a key is not under it
        ("overlays/x/cat.jpg.png", False), ("overlays/", False),  # our own outputs: never a source
        ("photos/", False), ("uploads/x/", False), ("", False),  # folder markers, nothing
    ],
)
def test_which_keys_are_sources(key: str, source: bool) -> None:
    assert is_source_key(key) is source


# Batch Operations: any prefix keeps its whole key under overlays/; only uploads/ is dropped (results by id).
@pytest.mark.parametrize(
    ("key", "options", "expected"),
    [
        ("photos/2019/cat.jpg", {}, keys("overlays/photos/2019/cat.jpg", "overlays/photos/2019/cat.jpg.png")),
        ("photos/a b+c.png", {"output": "cutout", "format": "webp"},
         keys("overlays/photos/a b+c.png", "overlays/photos/a b+c.png.cutout.webp")),
        ("cat.jpg", {"output": "json"}, keys("overlays/cat.jpg", None)),
        ("backup/uploads/a.jpg", {}, keys("overlays/backup/uploads/a.jpg", "overlays/backup/uploads/a.jpg.png")),
    ],
)
def test_output_keys_of_any_source(key: str, options: dict[str, Any], expected: OutputKeys) -> None:
    assert output_keys(key, RenderOptions(**options)) == expected


@pytest.mark.parametrize("key", ["overlays/x.png", "uploads/", "photos/", ""])
def test_outputs_and_folders_have_no_output_keys(key: str) -> None:
    with pytest.raises(ValueError, match="is not a source: keys under overlays/ are outputs"):
        output_keys(key, RenderOptions())


@pytest.mark.parametrize(
    ("options", "name"),
    [
        ({}, "a/cat.jpg.png"), ({"format": "jpeg"}, "a/cat.jpg.jpg"), ({"format": "webp"}, "a/cat.jpg.webp"),
        ({"output": "mask"}, "a/cat.jpg.mask.png"), ({"output": "mask", "format": "jpeg"}, "a/cat.jpg.mask.jpg"),
        ({"output": "cutout"}, "a/cat.jpg.cutout.png"),
        ({"output": "cutout", "format": "webp"}, "a/cat.jpg.cutout.webp"),
        ({"output": "json"}, "a/cat.jpg.json"), ({"output": "json", "format": "webp"}, "a/cat.jpg.json"),
    ],
)
def test_result_names(options: dict[str, Any], name: str) -> None:
    """The one naming rule of the trigger, Batch Operations, POST /predict/batch and unet-segment."""
    assert result_name("a/cat.jpg", RenderOptions(**options)) == name


@pytest.mark.parametrize(
    ("options", "extra"),
    [({}, ("mask",)), ({"output": "mask"}, ()), ({"output": "mask", "format": "webp"}, ("mask",)),
     ({"output": "json"}, ("mask",))],
)
def test_the_mask_png_is_made_once(options: dict[str, Any], extra: tuple[str, ...]) -> None:
    assert extra_outputs(output_keys("uploads/a.jpg", RenderOptions(**options))) == extra


LONG = "é" * 300 + ".jpeg"


@pytest.mark.parametrize(
    ("name", "safe"),
    [
        ("cat.jpg", "cat.jpg"),
        ("../../etc/passwd", "passwd"),  # traversal: only the last part survives
        ("..", "image"), (".", "image"), ("", "image"), ("   ", "image"),
        ("C:\\Users\\me\\Pictures\\dog.png", "dog.png"),
        (".hidden.png", "hidden.png"),
        ("a\x00b\nc\td.png", "abcd.png"),  # NUL, line breaks and every other control character dropped
        ("photo  2024 .jpg", "photo 2024 .jpg"),
        ("猫の写真.jpg", "猫の写真.jpg"),  # unicode kept
        ("Cafe\u0301.png", "Café.png"),  # NFC: one code point for é
        ("name.", "name"),
        ("x\u202egpj.exe", "xgpj.exe"),  # the right-to-left override (a format character) is dropped
    ],
)
def test_file_names_are_made_safe(name: str, safe: str) -> None:
    assert sanitise_filename(name) == safe


def test_a_long_name_is_capped_and_keeps_its_extension() -> None:
    safe = sanitise_filename(LONG)
    assert len(safe.encode()) <= MAX_NAME_BYTES and safe.endswith(".jpeg") and safe.startswith("é")
    assert sanitise_filename("x" * 500).encode() == b"x" * MAX_NAME_BYTES


def test_upload_keys_put_the_id_first() -> None:
    assert upload_key("a" * 32, "../cat.jpg") == f"uploads/{'a' * 32}/cat.jpg"


MODEL = ModelInfo(input_height=64, input_width=64, channel_order="RGB", scale=1 / 255, mean=(0.5, 0.5, 0.5),
                  std=(0.2, 0.2, 0.2), threshold=0.5, name="m", version="1", sha256="ab" * 32)


@pytest.mark.parametrize(
    ("summary", "box"),
    [
        (Summary(5, 4, 0.0, None), None),
        (Summary(5, 4, 0.1, BoundingBox(0, 0, 5, 4)), {"left": 0, "top": 0, "right": 5, "bottom": 4}),
    ],
)
def test_done_summary(summary: Summary, box: dict[str, int] | None) -> None:
    rendered = Rendered(outputs=(Encoded(b"", "image/png", ".png"),), summary=summary, model=MODEL, timings_ms={})
    options = RenderOptions(format="webp")
    output = output_keys("uploads/a.jpg", options)
    assert done_summary(rendered, StoredObject(BUCKET, "uploads/a.jpg"), options, output) == {
        "status": "done",
        "source": {"bucket": BUCKET, "key": "uploads/a.jpg"},
        "image": {"width": 5, "height": 4},
        "foreground_fraction": summary.foreground_fraction,
        "bounding_box": box,
        "model": {"name": "m", "version": "1", "sha256": "ab" * 32},
        "options": {"output": "overlay", "format": "webp", "quality": None, "color": "#ff3b30", "alpha": 0.5,
                    "threshold": None},
        "outputs": {"result": "overlays/a.jpg.webp", "mask": "overlays/a.jpg.mask.png"},
    }


def test_a_version_asked_for_is_in_the_summary() -> None:
    rendered = Rendered(outputs=(Encoded(b"", "image/png", ".png"),), summary=Summary(5, 4, 0.0, None), model=MODEL,
                        timings_ms={})
    source = StoredObject(BUCKET, "photos/a.jpg", version_id="3HL4kqtJlcpXroDTDmJ")
    summary = done_summary(rendered, source, RenderOptions(), output_keys(source.key, RenderOptions()))
    assert summary["source"] == {"bucket": BUCKET, "key": "photos/a.jpg", "version_id": "3HL4kqtJlcpXroDTDmJ"}
