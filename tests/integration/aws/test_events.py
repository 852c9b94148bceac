"""Every payload in events/ through the entry template.yaml gives it, as `sam local invoke -e` would send it."""

from __future__ import annotations

import base64
import importlib
import io
import json
import zipfile
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from PIL import Image

from scripts.invoke import ENTRIES, LambdaContext, entry_for, s3_objects, seed
from tests.support import EVENTS, SAMPLE_PNG, expected_overlay, rgb_of

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
ROOT_BODY = {"message": "UNet API is running!"}


@dataclass(frozen=True)
class Http:
    status: int
    base64: bool
    json_body: dict[str, Any] | None = None
    png_size: tuple[int, int] | None = None


@dataclass(frozen=True)
class Zip:
    """POST /predict/batch's answer: the zip's entries, and each file's status in its results.json."""

    names: tuple[str, ...]
    statuses: tuple[int, ...]


@dataclass(frozen=True)
class S3:
    statuses: tuple[str, ...]


@dataclass(frozen=True)
class Batch:
    """A Batch Operations answer: (result code, result string) per task."""

    results: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Unsupported:
    shape: str


EXPECTED: dict[str, Http | Zip | S3 | Batch | Unsupported] = {
    "http_api_get_root.json": Http(200, base64=False, json_body=ROOT_BODY),
    "http_api_post_predict.json": Http(200, base64=True, png_size=(447, 231)),
    "rest_api_post_predict.json": Http(200, base64=True, png_size=(79, 128)),
    # blobs.jpg, blobs.png and a text file, format=jpeg
    "http_api_post_predict_batch.json": Zip(("blobs.jpg.jpg", "blobs.png.jpg", "results.json"), (200, 200, 400)),
    "alb_get_root.json": Http(200, base64=False, json_body=ROOT_BODY),
    "s3_put_upload.json": S3(("processed",)),
    "s3_put_overlay.json": S3(("skipped",)),
    "s3_put_batch.json": S3(("processed", "processed", "skipped")),
    "s3_batch_operations_v1.json": Batch((("Succeeded", "overlays/photos/2019/summer holiday/cat+dog 1.jpg.png"),)),
    # the job's userArguments ask for a WebP cutout
    "s3_batch_operations_v2.json": Batch((("Succeeded", "overlays/archive/scans/page 7+8.png.cutout.webp"),)),
    "eventbridge_scheduled.json": Unsupported("top-level keys ['account', 'detail', 'detail-type', 'id'"),
    "sqs_message.json": Unsupported("top-level keys ['Records']"),
}
UPLOAD_EVENTS = ("s3_put_upload.json", "s3_put_overlay.json", "s3_put_batch.json", "s3_batch_operations_v1.json",
                 "s3_batch_operations_v2.json")
ENTRY = dict.fromkeys(UPLOAD_EVENTS, "upload")  # the others: api


def test_every_event_file_has_an_expectation() -> None:
    assert sorted(path.name for path in EVENTS.glob("*.json")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_event_through_its_function(name: str, s3: Any, lambda_context: LambdaContext) -> None:
    event = json.loads((EVENTS / name).read_text())
    assert entry_for(event) == ENTRY.get(name, "api")
    seed(s3, s3_objects(event), image=None)  # what `make invoke ... --local-s3` puts there
    result = importlib.import_module(ENTRIES[entry_for(event)]).handler(event, lambda_context)
    expected = EXPECTED[name]
    if isinstance(expected, Http):
        check_http(result, expected)
    elif isinstance(expected, Zip):
        assert (result["statusCode"], result["isBase64Encoded"]) == (200, True)
        with zipfile.ZipFile(io.BytesIO(base64.b64decode(result["body"]))) as archive:
            assert tuple(archive.namelist()) == expected.names
            assert tuple(item["status"] for item in json.loads(archive.read("results.json"))) == expected.statuses
    elif isinstance(expected, S3):
        assert tuple(record["status"] for record in result["records"]) == expected.statuses
    elif isinstance(expected, Batch):
        assert (result["invocationSchemaVersion"], result["invocationId"]) == (
            event["invocationSchemaVersion"], event["invocationId"])
        assert tuple((r["resultCode"], r["resultString"]) for r in result["results"]) == expected.results
    else:
        assert (result["statusCode"], result["error"]) == (400, "UnsupportedEvent")
        assert expected.shape in result["detail"]


def check_http(result: dict[str, Any], expected: Http) -> None:
    assert (result["statusCode"], result["isBase64Encoded"]) == (expected.status, expected.base64)
    body = base64.b64decode(result["body"]) if result["isBase64Encoded"] else result["body"].encode()
    if expected.json_body is not None:
        assert json.loads(body) == expected.json_body
    if expected.png_size is not None:
        assert result["headers"]["content-type"] == "image/png"
        assert body.startswith(PNG_SIGNATURE)
        assert Image.open(io.BytesIO(body)).size == expected.png_size


def test_rest_api_query_parameters_reach_the_app(lambda_context: LambdaContext) -> None:
    """events/rest_api_post_predict.json asks for alpha=0.6: the overlay is blended at 0.6, not the default."""
    from app.lambda_api import handler
    from app.main import runtime

    result = handler(json.loads((EVENTS / "rest_api_post_predict.json").read_text()), lambda_context)
    overlay = np.asarray(Image.open(io.BytesIO(base64.b64decode(result["body"]))))
    image = rgb_of(SAMPLE_PNG)
    expected = expected_overlay(np.asarray(image), runtime.holder.get().segment(image).mask, (255, 59, 48), 0.6)
    np.testing.assert_array_equal(overlay, expected)


@pytest.mark.parametrize(
    ("path", "content_type", "base64_encoded"),
    [
        ("/ui", "text/html; charset=utf-8", False),
        ("/docs", "text/html; charset=utf-8", False),
        ("/docs-assets/swagger-ui-bundle.js", "text/javascript; charset=utf-8", False),
        ("/docs-assets/swagger-ui.css", "text/css; charset=utf-8", False),
        ("/docs-assets/favicon-32x32.png", "image/png", True),
    ],
)
def test_the_page_and_the_docs_through_the_http_function(
    path: str, content_type: str, base64_encoded: bool, lambda_context: LambdaContext
) -> None:
    """What a browser fetches for /ui and /docs, as API Gateway hands it to the function (the GET /ui route and
    GET /{proxy+}): each under Lambda's 6 MB response limit, text as text, images base64'd."""
    from app.lambda_api import handler

    event = json.loads((EVENTS / "http_api_get_root.json").read_text())
    event["rawPath"] = event["requestContext"]["http"]["path"] = path
    result = handler(event, lambda_context)
    assert (result["statusCode"], result["headers"]["content-type"]) == (200, content_type)
    assert result["isBase64Encoded"] is base64_encoded and len(result["body"]) < 6_000_000
