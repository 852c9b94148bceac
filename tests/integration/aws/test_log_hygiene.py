"""What the logs of a whole upload flow never contain: image bytes, presigned URLs' signatures, credentials.

The real server (make serve) signs an upload and answers the results with presigned GET URLs; the
upload function runs in-process on the S3 event; both at LOG_LEVEL=DEBUG, the most either ever says.
Every line either wrote is then searched for the secrets of this flow, each in the forms a log could
carry it (raw, base64, hex, Python's repr of bytes, URL-encoded).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, quote_plus, urlsplit

import pytest
import requests

from app.aws.s3_client import get_s3_client
from scripts.invoke import LambdaContext
from scripts.local_s3 import local_aws_env
from tests.servers import make_serve
from tests.support import BUCKET, SAMPLE_JPEG, load_event

pytestmark = pytest.mark.slow
# Dummy credentials no log line could contain by chance (moto accepts any).
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "AKIALOGSCANKEY000001", "AWS_SECRET_ACCESS_KEY": "log-scan-secret-0f3b9a7c51d2",
               "AWS_SESSION_TOKEN": "log-scan-session-token-8e41c0d5a9b7"}


@pytest.fixture(scope="module")
def server_and_log(moto_endpoint: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    log = tmp_path_factory.mktemp("server") / "server.log"
    env = {**local_aws_env(moto_endpoint), **CREDENTIALS, "UPLOAD_BUCKET": BUCKET, "LOG_LEVEL": "DEBUG"}
    with make_serve(env, log) as url:
        yield url, log


@pytest.fixture
def upload_function(s3: Any, monkeypatch: pytest.MonkeyPatch,
                    main_thread_event_loop: None) -> Iterator[Callable[[str], Any]]:
    """The upload function's handler on the S3 event for ``key``, with this flow's credentials."""
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("LOG_LEVEL", "DEBUG")
    get_s3_client.cache_clear()
    from app.aws.observability import logger
    from app.lambda_upload import handler

    previous = logger.log_level
    logger.setLevel("DEBUG")

    def deliver(key: str) -> Any:
        event = load_event("s3_put_upload.json")
        event["Records"][0]["s3"]["object"]["key"] = quote_plus(key)
        return handler(event, LambdaContext())

    yield deliver
    logger.setLevel(previous)
    get_s3_client.cache_clear()


def forms(secret: bytes | str) -> list[str]:
    """The ways ``secret`` could appear in a text log."""
    raw = secret.encode() if isinstance(secret, str) else secret
    found = [base64.b64encode(raw).decode(), raw.hex(), repr(raw)[2:-1], quote(raw, safe="")]
    return found + ([secret] if isinstance(secret, str) else [])


def signatures(url: str) -> list[str]:
    return parse_qs(urlsplit(url).query)["X-Amz-Signature"]


def test_no_log_line_of_a_whole_flow_holds_a_secret(
    server_and_log: tuple[str, Path], upload_function: Callable[[str], Any],
    json_logs: Callable[[], list[dict[str, Any]]],
) -> None:
    server, log = server_and_log
    image = SAMPLE_JPEG.read_bytes()
    # GIVEN a whole flow: signed, posted to S3, processed, its results answered and downloaded
    created = requests.post(f"{server}/uploads", json={"filename": "cat.jpg", "content_type": "image/jpeg"},
                            timeout=30).json()
    upload = created["upload"]
    posted = requests.post(upload["url"], data=upload["fields"], files={"file": ("cat.jpg", image)}, timeout=60)
    assert posted.status_code == 204
    assert upload_function(upload["fields"]["key"])["records"][0]["status"] == "processed"
    done = requests.get(server + created["result"], timeout=30).json()
    overlay = requests.get(done["overlay_url"], timeout=30).content
    # WHEN every line both wrote is read
    lines = log.read_text(errors="replace").splitlines() + [json.dumps(line) for line in json_logs()]
    text = "\n".join(lines)
    assert created["id"] in text and "segmented" in text  # the flow was logged: the search below means something
    # THEN none holds a credential, a signature, or a slice of the image or of the overlay
    secrets = [*CREDENTIALS.values(), upload["fields"]["x-amz-signature"], *signatures(done["overlay_url"]),
               *signatures(done["mask_url"]), image[1000:1040], overlay[1000:1040]]
    leaks = [(secret, form) for secret in secrets for form in forms(secret) if form in text]
    assert leaks == []
