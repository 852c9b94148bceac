"""The upload flow end to end: the real server (make serve) signs, the client POSTs to S3 (moto) as a browser
form would, the upload function processes the S3 event, and GET /results/{id} answers pending, then done."""

from __future__ import annotations

import base64
import io
import json
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote_plus

import pytest
import requests
from PIL import Image

from bench.photo import photo_jpeg
from scripts.invoke import LambdaContext
from scripts.local_s3 import local_aws_env
from tests.samples import DISPLAY_P3_ICC, oriented
from tests.servers import make_serve
from tests.support import BUCKET, SAMPLE_JPEG, load_event

pytestmark = pytest.mark.slow
TTL_S = 900


@pytest.fixture(scope="module")
def server(moto_endpoint: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`make serve` with UPLOAD_BUCKET, reaching moto through AWS_ENDPOINT_URL_S3 (dummy credentials)."""
    env = {**local_aws_env(moto_endpoint), "UPLOAD_BUCKET": BUCKET, "UPLOAD_URL_TTL_S": str(TTL_S)}
    with make_serve(env, tmp_path_factory.mktemp("server") / "server.log") as url:
        yield url


@pytest.fixture
def upload_function(s3: Any, main_thread_event_loop: None) -> Callable[[str], dict[str, Any]]:
    """``deliver(key)``: the S3 event for ``key`` (URL-encoded as S3 sends it) through app.lambda_upload.handler."""
    from app.lambda_upload import handler

    def deliver(key: str) -> dict[str, Any]:
        event = load_event("s3_put_upload.json")
        event["Records"][0]["s3"]["object"]["key"] = quote_plus(key)
        return handler(event, LambdaContext())  # type: ignore[no-any-return]

    return deliver


def create(server: str, filename: str, content_type: str = "image/jpeg", **options: Any) -> dict[str, Any]:
    response = requests.post(f"{server}/uploads", timeout=30,
                             json={"filename": filename, "content_type": content_type, "options": options})
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def post_file(created: dict[str, Any], filename: str, data: bytes, content_type: str = "image/jpeg") -> str:
    """The presigned POST exactly as a browser form sends it: multipart, the fields first, the file last."""
    target = created["upload"]
    response = requests.post(target["url"], data=target["fields"], files={"file": (filename, data, content_type)},
                             timeout=120)
    assert response.status_code == 204, response.text  # S3's answer to a form POST without success_action_status
    return str(target["fields"]["key"])


def result(server: str, created: dict[str, Any]) -> requests.Response:
    return requests.get(server + created["result"], timeout=30)


def fetch_image(url: str) -> Image.Image:
    response = requests.get(url, timeout=60)
    assert response.status_code == 200
    return Image.open(io.BytesIO(response.content))


def test_a_photo_goes_through_the_whole_flow(server: str, s3: Any, upload_function: Callable) -> None:
    # GIVEN a signed upload; WHEN the client posts the file straight to S3
    created = create(server, "cat photo.jpg")
    assert len(created["id"]) == 32 and created["result"] == f"/results/{created['id']}"
    key = post_file(created, "cat photo.jpg", SAMPLE_JPEG.read_bytes())
    assert key == f"uploads/{created['id']}/cat photo.jpg"
    # THEN the result is pending until the upload function has run, then done with both outputs
    assert (result(server, created).status_code, result(server, created).json()) == (
        202, {"id": created["id"], "status": "pending"})
    [record] = upload_function(key)["records"]
    assert record["status"] == "processed"
    done = result(server, created)
    assert done.status_code == 200
    body = done.json()
    assert (body["id"], body["status"]) == (created["id"], "done")
    assert body["summary"]["image"] == {"width": 447, "height": 231}
    assert body["summary"]["outputs"] == {"result": f"overlays/{created['id']}/cat photo.jpg.png",
                                          "mask": f"overlays/{created['id']}/cat photo.jpg.mask.png"}
    overlay, mask = fetch_image(body["overlay_url"]), fetch_image(body["mask_url"])
    assert (overlay.format, overlay.size, mask.mode, mask.size) == ("PNG", (447, 231), "L", (447, 231))


def test_the_options_travel_with_the_upload(server: str, s3: Any, upload_function: Callable) -> None:
    created = create(server, "a.jpg", output="cutout", format="webp", quality=70)
    upload_function(post_file(created, "a.jpg", SAMPLE_JPEG.read_bytes()))
    body = result(server, created).json()
    assert body["summary"]["options"] == {"output": "cutout", "format": "webp", "quality": 70, "color": "#ff3b30",
                                          "alpha": 0.5, "threshold": None}
    cutout = fetch_image(body["overlay_url"])
    assert (cutout.format, cutout.mode, cutout.size) == ("WEBP", "RGBA", (447, 231))


@pytest.mark.parametrize(("fmt", "content_type"), [("HEIF", "image/heic"), ("AVIF", "image/avif")])
def test_a_heic_or_avif_photo_goes_through_the_flow(
    server: str, s3: Any, upload_function: Callable, fmt: str, content_type: str
) -> None:
    # GIVEN the sample stored portrait with irot, in Display P3, signed and posted as its own media type
    with Image.open(SAMPLE_JPEG) as photo:
        data = oriented(fmt, photo.transpose(Image.Transpose.ROTATE_90), container=6, icc_profile=DISPLAY_P3_ICC)
    created = create(server, "IMG_0001.HEIC", content_type=content_type)
    upload_function(post_file(created, "IMG_0001.HEIC", data, content_type))
    # THEN the overlay is upright and keeps the photo's profile
    body = result(server, created).json()
    assert (body["status"], body["summary"]["image"]) == ("done", {"width": 447, "height": 231})
    overlay = fetch_image(body["overlay_url"])
    assert (overlay.size, overlay.info["icc_profile"]) == ((447, 231), DISPLAY_P3_ICC)


def test_json_output_carries_the_rle_in_the_summary(server: str, s3: Any, upload_function: Callable) -> None:
    created = create(server, "a.jpg", output="json")
    upload_function(post_file(created, "a.jpg", SAMPLE_JPEG.read_bytes()))
    body = result(server, created).json()
    assert body["overlay_url"] is None and body["mask_url"] is not None
    assert body["summary"]["mask_rle"]["size"] == [231, 447]


def test_a_30_mp_photo_that_the_http_path_could_never_take(server: str, s3: Any, upload_function: Callable) -> None:
    # GIVEN a 30 MP photo-like JPEG: over the 4.4 MB a Lambda request can carry
    photo = photo_jpeg(6000, 5000)
    assert len(photo) > 4_400_000
    refused = requests.post(f"{server}/predict", files={"file": ("big.jpg", photo, "image/jpeg")}, timeout=60)
    assert refused.status_code == 413
    # WHEN it goes through the upload flow THEN a full-size overlay comes back
    created = create(server, "big.jpg", format="jpeg")
    upload_function(post_file(created, "big.jpg", photo))
    body = result(server, created).json()
    assert body["status"] == "done"
    assert fetch_image(body["overlay_url"]).size == (6000, 5000)


@pytest.mark.parametrize(
    ("data", "reason"),
    [(b"not an image", "not a recognised image"), (SAMPLE_JPEG.read_bytes()[:300], "could not be decoded")],
    ids=["garbage", "truncated"],
)
def test_a_corrupt_upload_ends_rejected_with_its_reason(
    server: str, s3: Any, upload_function: Callable, data: bytes, reason: str
) -> None:
    created = create(server, "bad.jpg")
    [record] = upload_function(post_file(created, "bad.jpg", data))["records"]
    assert record["status"] == "rejected"
    response = result(server, created)
    assert response.status_code == 200
    body = response.json()
    assert (body["id"], body["status"]) == (created["id"], "rejected") and reason in body["reason"]
    assert set(body) == {"id", "status", "reason"}


def test_the_same_file_name_twice_gets_two_ids_and_two_keys(server: str, s3: Any) -> None:
    first, second = create(server, "cat.jpg"), create(server, "cat.jpg")
    assert first["id"] != second["id"]
    assert first["upload"]["fields"]["key"] != second["upload"]["fields"]["key"]


def test_an_unknown_id_is_a_404(server: str, s3: Any) -> None:
    response = requests.get(f"{server}/results/{'0' * 32}", timeout=30)
    assert response.status_code == 404 and "no upload has the id" in response.json()["detail"]


def test_the_signed_policy_pins_key_type_size_options_and_expiry(server: str, s3: Any) -> None:
    """moto's server accepts any form POST to its bucket: it checks neither the policy's conditions (size range,
    Content-Type, key, metadata), nor the signature, nor the expiry (tried: each still gets 204). So this test
    reads the signed policy document itself: S3 enforces exactly these conditions."""
    before = time.time()
    created = create(server, "../../etc/cat.jpg", content_type="image/png", alpha=0.25)
    fields = created["upload"]["fields"]
    policy = json.loads(base64.b64decode(fields["policy"]))
    conditions = policy["conditions"]
    key = f"uploads/{created['id']}/cat.jpg"  # the traversal is gone: one key segment under the id
    assert fields["key"] == key and {"key": key} in conditions and {"bucket": BUCKET} in conditions
    assert {"Content-Type": "image/png"} in conditions and fields["Content-Type"] == "image/png"
    assert {"x-amz-meta-options": '{"alpha":0.25}'} in conditions and fields["x-amz-meta-options"] == '{"alpha":0.25}'
    assert ["content-length-range", 1, 50_000_000] in conditions  # S3_MAX_UPLOAD_BYTES
    assert fields["x-amz-algorithm"] == "AWS4-HMAC-SHA256"  # SigV4, not botocore's SigV2 default for POSTs
    expires = time.mktime(time.strptime(policy["expiration"], "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
    assert before + TTL_S - 5 <= expires <= time.time() + TTL_S + 5 and created["expires_in"] == TTL_S
