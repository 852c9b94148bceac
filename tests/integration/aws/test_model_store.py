"""app.aws.model_store: local files hashed and verified; S3 models downloaded from moto, cached, re-fetched."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ReadTimeoutError

from app.aws import model_store
from app.aws.model_store import (
    LocalModel,
    ModelIntegrityError,
    ModelUnavailable,
    cache_file_name,
    fetch_model,
    parse_s3_uri,
)
from app.aws.s3_client import get_s3_client
from tests.support import BUCKET, sha256_of

KEY = "models/tiny.onnx"
URI = f"s3://{BUCKET}/{KEY}"


@pytest.fixture
def get_object_calls(s3: Any) -> list[dict[str, Any]]:
    """Every GetObject the app's own S3 client sends (the download itself still happens)."""
    calls: list[dict[str, Any]] = []
    get_s3_client().meta.events.register("before-call.s3.GetObject", lambda params, **_: calls.append(params))
    return calls


@pytest.fixture
def published(s3: Any, tiny_model_path: Path) -> str:
    """The tiny model in the bucket; returns its sha256."""
    s3.upload_file(str(tiny_model_path), BUCKET, KEY)
    return sha256_of(tiny_model_path)


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("s3://bucket/models/unet.onnx", ("bucket", "models/unet.onnx")),
        ("s3://bucket/a/b/c d+e.onnx", ("bucket", "a/b/c d+e.onnx")),
    ],
)
def test_parse_s3_uri(uri: str, expected: tuple[str, str]) -> None:
    assert parse_s3_uri(uri) == expected


@pytest.mark.parametrize("uri", ["s3://", "s3://bucket", "s3://bucket/", "s3:///key"])
def test_parse_s3_uri_refuses_what_names_no_object(uri: str) -> None:
    with pytest.raises(ModelUnavailable, match="expected s3://bucket/key"):
        parse_s3_uri(uri)


def test_cache_file_name_changes_with_the_etag_only() -> None:
    first = cache_file_name("b", "models/unet.onnx", '"etag-1"')
    assert first == cache_file_name("b", "models/unet.onnx", '"etag-1"')
    assert first.endswith("-unet.onnx")
    changed = cache_file_name("b", "models/unet.onnx", '"etag-2"')
    other_object = cache_file_name("b", "models/other/unet.onnx", '"etag-1"')
    assert changed != first and changed[:16] == first[:16]  # same object prefix: stale copies are found
    assert other_object[:16] != first[:16]


def test_local_file_is_hashed_and_verified(tiny_model_path: Path, tmp_path: Path) -> None:
    sha = sha256_of(tiny_model_path)
    assert fetch_model(str(tiny_model_path), None, tmp_path) == LocalModel(tiny_model_path, sha)
    assert fetch_model(str(tiny_model_path), sha.upper(), tmp_path).sha256 == sha
    assert list(tmp_path.iterdir()) == []  # a local model is used in place, never copied


def test_local_file_with_the_wrong_sha_is_refused(tiny_model_path: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelIntegrityError, match="MODEL_SHA256 is 0000"):
        fetch_model(str(tiny_model_path), "0" * 64, tmp_path)


def test_missing_local_file_is_unavailable_not_an_integrity_error(tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailable, match="no model file at") as raised:
        fetch_model(str(tmp_path / "absent.onnx"), None, tmp_path)
    assert not isinstance(raised.value, ModelIntegrityError)


def test_s3_model_is_downloaded_once_then_reused(
    published: str, tiny_model_path: Path, get_object_calls: list[dict[str, Any]], tmp_path: Path
) -> None:
    # GIVEN an empty cache WHEN the model is fetched THEN it is downloaded from the server
    first = fetch_model(URI, published, tmp_path)
    assert first.sha256 == published
    assert first.path.parent == tmp_path and first.path.read_bytes() == tiny_model_path.read_bytes()
    assert len(get_object_calls) == 1
    # WHEN a second init fetches it again THEN the cached file serves (a HEAD, no GET)
    second = fetch_model(URI, published, tmp_path)
    assert second == first and len(get_object_calls) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [first.path.name]  # no temp files left


def test_changed_s3_object_is_fetched_again_and_the_stale_copy_removed(
    s3: Any, published: str, bundled_model_path: Path, get_object_calls: list[dict[str, Any]], tmp_path: Path
) -> None:
    old = fetch_model(URI, None, tmp_path)
    s3.upload_file(str(bundled_model_path), BUCKET, KEY)  # a retrained model under the same key
    new = fetch_model(URI, None, tmp_path)
    assert len(get_object_calls) == 2
    assert new.path != old.path and new.sha256 == sha256_of(bundled_model_path)
    assert [p.name for p in tmp_path.iterdir()] == [new.path.name]


def test_s3_model_with_the_wrong_sha_is_refused(published: str, tmp_path: Path) -> None:
    wrong = hashlib.sha256(b"another model").hexdigest()
    with pytest.raises(ModelIntegrityError, match=f"has sha256 {published} but MODEL_SHA256 is {wrong}"):
        fetch_model(URI, wrong, tmp_path)


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        (f"s3://{BUCKET}/models/never-published.onnx", "404"),
        ("s3://no-such-bucket-here/models/unet.onnx", "404"),
    ],
)
def test_s3_model_not_there_is_unavailable(s3: Any, uri: str, message: str, tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailable, match=f"cannot fetch {uri} .*{message}") as raised:
        fetch_model(uri, None, tmp_path)
    assert not isinstance(raised.value, ModelIntegrityError)


def test_object_replaced_during_the_download_leaves_no_partial_file(
    s3: Any, published: str, bundled_model_path: Path, tmp_path: Path
) -> None:
    # GIVEN the object changes between the HEAD and the GET (a publish racing a cold start)
    def replace_object(**_: Any) -> None:
        s3.upload_file(str(bundled_model_path), BUCKET, KEY)

    get_s3_client().meta.events.register("before-call.s3.GetObject", replace_object)
    # THEN the GET (If-Match: the HEAD's ETag) fails, and nothing half-written stays in the cache
    with pytest.raises(ModelUnavailable, match="PreconditionFailed"):
        fetch_model(URI, published, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_unreachable_s3_is_unavailable(s3: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9")  # the discard port: nothing listens
    get_s3_client.cache_clear()
    with pytest.raises(ModelUnavailable, match="Could not connect"):
        fetch_model(URI, None, tmp_path)


def test_a_cache_directory_other_users_may_write_in_is_refused(published: str, tmp_path: Path) -> None:
    # A model planted under the cache's predictable name would be served: only a directory of ours is used.
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    with pytest.raises(ModelUnavailable, match=r"shared is shared with other users \(owner \d+, mode drwxrwxrwx\)"):
        fetch_model(URI, published, shared)
    assert list(shared.iterdir()) == []


def test_a_missing_cache_directory_is_made_for_this_user_alone(published: str, tmp_path: Path) -> None:
    cache = tmp_path / "a" / "models"
    assert fetch_model(URI, published, cache).path.parent == cache
    assert cache.stat().st_mode & 0o777 == 0o700
# --- what an operator reads: each message and log line whole ------------------------------------


def test_a_wrong_sha_is_refused_with_what_to_do_and_logged(
    tiny_model_path: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sha, wrong = sha256_of(tiny_model_path), "0" * 64
    with pytest.raises(ModelIntegrityError) as raised:
        fetch_model(str(tiny_model_path), wrong, tmp_path)
    assert str(raised.value) == (f"{tiny_model_path} has sha256 {sha} but MODEL_SHA256 is {wrong}: publish the "
                                 "intended file again or fix MODEL_SHA256")
    assert [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "app.aws.model_store"] == [
        ("ERROR", f"model integrity check failed: refusing to serve {tiny_model_path} (sha256 {sha})")]


def test_a_sha_with_spaces_and_capitals_is_the_same_sha(tiny_model_path: Path, tmp_path: Path) -> None:
    sha = sha256_of(tiny_model_path)
    assert fetch_model(str(tiny_model_path), f" {sha.upper()}\n", tmp_path).sha256 == sha


@pytest.mark.parametrize("uri", ["s3://bucket", "s3:///key.onnx"])
def test_a_uri_naming_no_object_says_what_is_expected(uri: str) -> None:
    with pytest.raises(ModelUnavailable) as raised:
        parse_s3_uri(uri)
    assert str(raised.value) == f"{uri!r} is not an S3 object URI: expected s3://bucket/key"


def test_a_missing_local_file_says_what_to_set(tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailable) as raised:
        fetch_model(str(tmp_path / "unet.onnx"), None, tmp_path)
    assert str(raised.value) == f"no model file at {tmp_path / 'unet.onnx'}: set MODEL_URI to an ONNX file or " \
                                "s3://bucket/key"


def test_an_unpublished_model_says_what_to_check(s3: Any, tmp_path: Path) -> None:
    uri = f"s3://{BUCKET}/models/never-published.onnx"
    with pytest.raises(ModelUnavailable) as raised:
        fetch_model(uri, None, tmp_path)
    assert str(raised.value) == (f"cannot fetch {uri} (An error occurred (404) when calling the HeadObject operation: "
                                 "Not Found): check that it was published and is readable")


def test_downloads_and_reuses_are_logged_into_a_cache_made_on_first_use(
    published: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="app.aws.model_store")
    cache = tmp_path / "not" / "there"
    first = fetch_model(URI, published, cache)
    fetch_model(URI, published, cache)
    assert first.path.parent == cache
    assert [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "app.aws.model_store"] == [
        ("INFO", f"model {URI}: downloaded to {first.path}"), ("INFO", f"model {URI}: reusing {first.path}")]


class DroppedDownload:
    """An S3 client whose GetObject body breaks after its first chunk (a connection lost mid-download)."""

    def head_object(self, **_: Any) -> dict[str, str]:
        return {"ETag": '"etag-1"'}

    def get_object(self, **_: Any) -> dict[str, Any]:
        return {"Body": self}

    def iter_chunks(self, size: int) -> Any:
        yield b"x" * size
        raise ReadTimeoutError(endpoint_url="https://s3.amazonaws.com")


def test_a_download_cut_off_leaves_no_partial_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(model_store, "get_s3_client", DroppedDownload)
    with pytest.raises(ModelUnavailable) as raised:
        fetch_model(URI, None, tmp_path)
    assert str(raised.value) == (f"cannot fetch {URI} (Read timeout on endpoint URL: \"https://s3.amazonaws.com\"): "
                                 "check that it was published and is readable")
    assert list(tmp_path.iterdir()) == []


def test_the_same_key_in_two_buckets_is_two_cached_models(
    s3: Any, published: str, tiny_model_path: Path, get_object_calls: list[dict[str, Any]], tmp_path: Path
) -> None:
    s3.create_bucket(Bucket="another-bucket")
    s3.upload_file(str(tiny_model_path), "another-bucket", KEY)  # the same bytes: the same ETag
    first, second = fetch_model(URI, None, tmp_path), fetch_model(f"s3://another-bucket/{KEY}", None, tmp_path)
    assert first.path != second.path and len(get_object_calls) == 2
