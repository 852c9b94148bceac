"""API keys off AWS: protected routes need one, open routes stay open, keys compared in constant time, never logged."""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from app.aws.s3_client import get_s3_client
from app.http import auth
from scripts.local_s3 import free_port
from tests.support import encode, noise

KEYS = ("k-alpha-7f3c2b", "k-beta-19d0e4")
PNG = encode(noise(16, 12))
UPLOAD = {"filename": "a.jpg", "content_type": "image/jpeg"}
# method, path, body: every protected route
PROTECTED = [
    ("post", "/predict", {"files": {"file": ("a.png", PNG, "image/png")}}),
    ("post", "/predict/batch", {"files": [("files", ("a.png", PNG, "image/png"))]}),
    ("post", "/uploads", {"json": UPLOAD}),
    ("get", f"/results/{'a' * 32}", {}),
]
OPEN = ["/", "/health", "/openapi.json", "/docs"]
# The same routes as the OpenAPI document names them: path, method
PROTECTED_OPERATIONS = [("/predict", "post"), ("/predict/batch", "post"), ("/uploads", "post"),
                        ("/results/{upload_id}", "get")]


@pytest.fixture
def keyed(make_client: Callable, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The app with two API keys and an upload bucket. Signing is local (dummy credentials); S3 itself is a
    loopback port nothing listens on, so a route that reaches for it gets a quick, clear 503, never AWS."""
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_ENDPOINT_URL_S3": f"http://127.0.0.1:{free_port()}"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_s3_client.cache_clear()
    yield make_client(API_KEYS=",".join(KEYS), UPLOAD_BUCKET="bucket-for-signing")
    get_s3_client.cache_clear()


@pytest.mark.parametrize(("method", "path", "body"), PROTECTED, ids=[path for _, path, _ in PROTECTED])
@pytest.mark.parametrize("headers", [{}, {"authorization": "Bearer wrong"}, {"x-api-key": "wrong"},
                                     {"authorization": f"Basic {KEYS[0]}"}, {"authorization": "Bearer "}],
                         ids=["none", "wrong-bearer", "wrong-header", "not-bearer", "empty-bearer"])
def test_protected_routes_refuse_a_missing_or_wrong_key(
    keyed: Any, method: str, path: str, body: dict[str, Any], headers: dict[str, str]
) -> None:
    response = keyed.request(method, path, headers=headers, **body)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json() == {"detail": "this route needs an API key: send Authorization: Bearer <key> or "
                                         "X-API-Key: <key>"}


@pytest.mark.parametrize(("method", "path", "body"), PROTECTED, ids=[path for _, path, _ in PROTECTED])
@pytest.mark.parametrize("headers", [{"authorization": f"Bearer {KEYS[0]}"}, {"x-api-key": KEYS[1]},
                                     {"authorization": f"bearer {KEYS[1]}"}], ids=["bearer", "header", "lowercase"])
def test_protected_routes_take_either_form_of_a_valid_key(
    keyed: Any, method: str, path: str, body: dict[str, Any], headers: dict[str, str]
) -> None:
    response = keyed.request(method, path, headers=headers, **body)
    assert response.status_code != 401
    assert response.status_code in {200, 201, 503}  # /results: S3 is not reachable in-process, a clear 503


@pytest.mark.parametrize("path", OPEN)
def test_open_routes_stay_open(keyed: Any, path: str) -> None:
    assert keyed.get(path).status_code == 200


@pytest.mark.parametrize(("method", "path", "body"), PROTECTED, ids=[path for _, path, _ in PROTECTED])
def test_without_keys_the_routes_are_open_as_make_serve_is(
    make_client: Callable, method: str, path: str, body: dict[str, Any]
) -> None:
    assert make_client().request(method, path, **body).status_code != 401


def test_keys_can_come_from_a_file(make_client: Callable, tmp_path: Path) -> None:
    keys_file = tmp_path / "keys"
    keys_file.write_text(f"# the team's keys\n{KEYS[0]}\n\n  {KEYS[1]}  \n")
    client = make_client(API_KEYS_FILE=keys_file)
    files = {"file": ("a.png", PNG, "image/png")}
    assert client.post("/predict", files=files, headers={"x-api-key": KEYS[1]}).status_code == 200
    assert client.post("/predict", files=files, headers={"x-api-key": "# the team's keys"}).status_code == 401


def test_every_key_is_compared_in_constant_time(keyed: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """hmac.compare_digest on every configured key for every request: no early exit says which key matched."""
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", counting)
    for presented in (KEYS[0], KEYS[1], "wrong"):
        calls.clear()
        keyed.post("/predict", files={"file": ("a.png", PNG, "image/png")}, headers={"x-api-key": presented})
        assert [stored for _, stored in calls] == [key.encode() for key in KEYS]
        assert all(offered == presented.encode() for offered, _ in calls)


@pytest.fixture
def captured_log() -> Iterator[io.StringIO]:
    """Everything the app logs, as its JSON handler would write it."""
    buffer, logger = io.StringIO(), logging.getLogger("app")
    handler, level = logging.StreamHandler(buffer), logger.level
    handler.setFormatter(logging.Formatter("%(message)s %(caller)s %(path)s", defaults={"caller": "", "path": ""}))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield buffer
    logger.removeHandler(handler)
    logger.setLevel(level)


def test_the_key_is_never_logged_but_its_short_hash_is(keyed: Any, captured_log: io.StringIO) -> None:
    files = {"file": ("a.png", PNG, "image/png")}
    keyed.post("/predict", files=files, headers={"authorization": f"Bearer {KEYS[0]}"})
    keyed.post("/predict", files=files, headers={"x-api-key": "not-a-key-9a8b"})
    log = captured_log.getvalue()
    assert "prediction" in log and "unauthenticated request refused" in log
    assert f"key:{hashlib.sha256(KEYS[0].encode()).hexdigest()[:16]}" in log
    assert not any(secret in log for secret in (*KEYS, "not-a-key-9a8b"))


def test_openapi_documents_both_key_forms_and_the_401(keyed: Any) -> None:
    document = keyed.get("/openapi.json").json()
    assert set(document["components"]["securitySchemes"]) == {"HTTPBearer", "APIKeyHeader"}
    for path, method in PROTECTED_OPERATIONS:
        operation = document["paths"][path][method]
        assert "401" in operation["responses"] and operation["security"]
    assert "security" not in document["paths"]["/health"]["get"]


@pytest.mark.parametrize(("settings", "schemes", "secured"), [
    ({}, set(), False),
    ({"API_KEYS": ",".join(KEYS)}, {"HTTPBearer", "APIKeyHeader"}, True),
], ids=["no-keys", "keys"])
def test_openapi_declares_the_key_schemes_only_when_keys_are_configured(
    make_client: Callable, settings: dict[str, str], schemes: set[str], secured: bool
) -> None:
    """Swagger UI draws a padlock on each route with a security requirement: without keys none asks for one."""
    document = make_client(**settings).get("/openapi.json").json()
    assert set(document["components"].get("securitySchemes", {})) == schemes
    operations = [document["paths"][path][method] for path, method in PROTECTED_OPERATIONS]
    assert ["security" in operation for operation in operations] == [secured] * len(PROTECTED_OPERATIONS)


def test_a_keys_file_that_is_not_there_stops_the_start(make_client: Callable, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="API_KEYS_FILE .* is not a readable file"):
        make_client(API_KEYS_FILE=tmp_path / "absent")


def test_the_log_line_json_shape_names_the_caller(keyed: Any, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="app"):
        keyed.post("/predict", files={"file": ("a.png", PNG, "image/png")}, headers={"x-api-key": KEYS[1]})
    [record] = [r for r in caplog.records if r.getMessage() == "prediction"]
    assert vars(record)["caller"] == f"key:{hashlib.sha256(KEYS[1].encode()).hexdigest()[:16]}"
    assert json.dumps(vars(record)["options"])  # the rest of the line stays JSON-able
