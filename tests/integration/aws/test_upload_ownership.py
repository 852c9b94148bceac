"""With callers identified, an upload's result answers only its caller: the owner travels in the signed
metadata, the trigger copies it into the summary, GET /results/{id} compares (moto's S3 on loopback)."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import quote_plus

import pytest
import requests

from app.http.auth import short_hash
from scripts.invoke import LambdaContext
from tests.support import BUCKET, SAMPLE_JPEG, load_event

ALICE, BOB = "alice-key-0001", "bob-key-0002"


@pytest.fixture
def client(make_client: Callable, s3: Any) -> Any:
    return make_client(API_KEYS=f"{ALICE},{BOB}", UPLOAD_BUCKET=BUCKET)


def as_(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def upload_and_process(client: Any, key: str, body: bytes, main_thread_event_loop: None) -> dict[str, Any]:
    created = client.post("/uploads", json={"filename": "cat.jpg", "content_type": "image/jpeg"}, headers=as_(key))
    assert created.status_code == 201
    target = created.json()["upload"]
    assert requests.post(target["url"], data=target["fields"], files={"file": ("cat.jpg", body, "image/jpeg")},
                         timeout=60).status_code == 204
    from app.lambda_upload import handler

    event = load_event("s3_put_upload.json")
    event["Records"][0]["s3"]["object"]["key"] = quote_plus(target["fields"]["key"])
    handler(event, LambdaContext())
    return created.json()  # type: ignore[no-any-return]


@pytest.mark.parametrize("body", [SAMPLE_JPEG.read_bytes(), b"not an image"], ids=["done", "rejected"])
def test_only_the_caller_who_uploaded_reads_the_result(
    client: Any, body: bytes, main_thread_event_loop: None
) -> None:
    created = upload_and_process(client, ALICE, body, main_thread_event_loop)
    policy = json.loads(base64.b64decode(created["upload"]["fields"]["policy"]))
    owner = f"key:{short_hash(ALICE)}"
    assert {"x-amz-meta-owner": owner} in policy["conditions"]  # signed: the client cannot change it
    mine = client.get(created["result"], headers=as_(ALICE))
    assert mine.status_code == 200 and mine.json()["status"] in {"done", "rejected"}
    theirs = client.get(created["result"], headers=as_(BOB))
    assert theirs.status_code == 404  # the same answer as for an id that does not exist
    assert ALICE not in json.dumps(mine.json())  # the summary names the owner by its hash only
