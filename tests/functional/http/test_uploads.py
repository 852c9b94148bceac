"""POST /uploads and GET /results/{id} in-process: what is refused before S3 is asked (the flow: integration)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import boto3
import pytest

REQUEST = {"filename": "cat.jpg", "content_type": "image/jpeg", "options": {"format": "webp"}}


@pytest.fixture
def signing_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Dummy credentials: signing a POST policy is local arithmetic, no request leaves the process."""
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    from app.aws.s3_client import get_s3_client

    get_s3_client.cache_clear()


@pytest.mark.parametrize(
    ("method", "path", "body"), [("post", "/uploads", REQUEST), ("get", f"/results/{'a' * 32}", None)]
)
def test_without_a_bucket_the_routes_say_so(make_client: Callable, method: str, path: str, body: Any) -> None:
    response = make_client().request(method, path, json=body)
    assert response.status_code == 503
    assert response.json() == {"detail": "the upload flow is off on this server: set UPLOAD_BUCKET to the bucket "
                                         "uploads go to"}


# id: (changes to the request, where the 422 points)
INVALID = {
    "no-filename": ({"filename": ""}, ["body", "filename"]),
    "content-type-not-an-image": ({"content_type": "text/html"}, ["body", "content_type"]),
    "content-type-psd": ({"content_type": "image/vnd.adobe.photoshop"}, ["body", "content_type"]),
    "unknown-field": ({"callback": "http://x"}, ["body", "callback"]),
    "threshold-out-of-range": ({"options": {"threshold": 1}}, ["body", "options", "threshold"]),
    "bad-colour": ({"options": {"color": "red"}}, ["body", "options", "color"]),
    "unknown-option": ({"options": {"size": 3}}, ["body", "options", "size"]),
    "jpeg-cutout": ({"options": {"output": "cutout", "format": "jpeg"}}, ["body", "options"]),
    "quality": ({"options": {"quality": 0}}, ["body", "options", "quality"]),
}


@pytest.mark.parametrize(("changes", "location"), INVALID.values(), ids=INVALID)
def test_bad_requests_are_a_422_naming_the_field(
    make_client: Callable, signing_credentials: None, changes: dict[str, Any], location: list[str]
) -> None:
    response = make_client(UPLOAD_BUCKET="bucket").post("/uploads", json={**REQUEST, **changes})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == location


@pytest.mark.parametrize("content_type", ["image/heic", "image/heif", "image/avif"])
def test_phone_photo_types_may_be_uploaded(make_client: Callable, signing_credentials: None,
                                           content_type: str) -> None:
    response = make_client(UPLOAD_BUCKET="bucket").post("/uploads", json={**REQUEST, "content_type": content_type})
    assert response.status_code == 201, response.text
    assert response.json()["upload"]["fields"]["Content-Type"] == content_type


def test_upload_ids_are_random_uuids(make_client: Callable, signing_credentials: None) -> None:
    """122 random bits (uuid4: the OS's CSPRNG), so no one finds another's upload by guessing its id."""
    client = make_client(UPLOAD_BUCKET="bucket")
    ids = [client.post("/uploads", json=REQUEST).json()["id"] for _ in range(20)]
    assert len(set(ids)) == 20
    assert all(uuid.UUID(hex=upload_id).version == 4 and uuid.UUID(hex=upload_id).hex == upload_id for upload_id in ids)


@pytest.mark.parametrize("upload_id", ["abc", "A" * 32, "g" * 32, "a" * 33, "../" + "a" * 29])
def test_a_malformed_id_is_a_422(make_client: Callable, upload_id: str) -> None:
    response = make_client(UPLOAD_BUCKET="bucket").get(f"/results/{upload_id}")
    assert response.status_code in (404, 422)  # "../x" never reaches the route: the path is normalised away
    if response.status_code == 422:
        assert response.json()["detail"][0]["loc"] == ["path", "upload_id"]


def test_s3_out_of_reach_is_a_503_with_retry_after(make_client: Callable, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN no credentials anywhere: boto3 cannot sign
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)  # a session of an earlier test keeps its credentials
    from app.aws.s3_client import get_s3_client

    get_s3_client.cache_clear()
    response = make_client(UPLOAD_BUCKET="bucket").post("/uploads", json=REQUEST)
    get_s3_client.cache_clear()
    assert response.status_code == 503 and response.headers["retry-after"] == "1"
    assert response.json()["detail"].startswith("the upload flow cannot use S3 now (no AWS credentials to sign with)")
