"""Where the model file comes from: a local path, or ``s3://bucket/key`` cached on local disk.

An S3 model is downloaded once per execution environment into ``cache_dir``
(``/tmp`` on Lambda, which lives as long as the environment), through a temporary
file and ``os.replace`` so a half-written file is never loaded. The cache file is
named after the bucket, key and ETag: a HEAD per init finds out whether the object
changed, and a changed object is fetched again. ``expected_sha256``, when given,
must match the file's bytes, or the model is refused. The cache directory must be this
user's alone: a file planted in a shared one under the cache's predictable name would be
served (bandit B108, CWE-377); /tmp on Lambda is the execution environment's own.
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.aws.s3_client import get_s3_client
from app.core.settings import S3_SCHEME

CHUNK_BYTES = 1 << 20
NAME_HASH_CHARS = 16

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LocalModel:
    """A model file on local disk and the sha256 of its bytes."""

    path: Path
    sha256: str


class ModelUnavailable(Exception):
    """The model cannot be loaded now (not published yet, S3 unreachable): retry later."""


class ModelIntegrityError(ModelUnavailable):
    """The model's bytes do not match MODEL_SHA256: it must not be served."""


def fetch_model(uri: str, expected_sha256: str | None, cache_dir: Path) -> LocalModel:
    """The model at ``uri`` as a verified local file (downloaded and cached if it is in S3)."""
    model = _fetch_s3(uri, cache_dir) if uri.startswith(S3_SCHEME) else _fetch_local(Path(uri))
    if expected_sha256 and model.sha256 != expected_sha256.strip().lower():
        logger.error("model integrity check failed: refusing to serve %s (sha256 %s)", uri, model.sha256)
        raise ModelIntegrityError(
            f"{uri} has sha256 {model.sha256} but MODEL_SHA256 is {expected_sha256}: "
            "publish the intended file again or fix MODEL_SHA256"
        )
    return model


def file_sha256(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/key`` -> (bucket, key)."""
    bucket, _, key = uri.removeprefix(S3_SCHEME).partition("/")
    if not bucket or not key:
        raise ModelUnavailable(f"{uri!r} is not an S3 object URI: expected s3://bucket/key")
    return bucket, key


def _fetch_local(path: Path) -> LocalModel:
    if not path.is_file():
        raise ModelUnavailable(f"no model file at {path}: set MODEL_URI to an ONNX file or s3://bucket/key")
    return LocalModel(path=path, sha256=file_sha256(path))


def _fetch_s3(uri: str, cache_dir: Path) -> LocalModel:
    # Here, not at import: botocore is only needed for an S3 model (app.s3_client says why).
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, key = parse_s3_uri(uri)
    try:
        client = get_s3_client()
        etag = client.head_object(Bucket=bucket, Key=key)["ETag"]
        path = private_directory(cache_dir) / cache_file_name(bucket, key, etag)
        if path.is_file():
            logger.info("model %s: reusing %s", uri, path)
            return LocalModel(path=path, sha256=file_sha256(path))
        return _download(client, (bucket, key, etag), path)
    except (BotoCoreError, ClientError) as error:
        raise ModelUnavailable(f"cannot fetch {uri} ({error}): check that it was published and is readable") from error


def private_directory(directory: Path) -> Path:
    """``directory``, created for this user alone if missing; refused if another user owns it or may write in it."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    status = directory.stat()
    if status.st_uid != os.getuid() or status.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise ModelUnavailable(f"{directory} is shared with other users (owner {status.st_uid}, mode "
                               f"{stat.filemode(status.st_mode)}): set MODEL_CACHE_DIR to a directory of this user's")
    return directory


def cache_file_name(bucket: str, key: str, etag: str) -> str:
    """``<hash of bucket/key>-<hash of ETag>-<key's file name>``: a changed object gets a new name."""
    object_hash = _short_hash(f"{bucket}/{key}")
    return f"{object_hash}-{_short_hash(etag)}-{Path(key).name}"


def _short_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:NAME_HASH_CHARS]


def _download(client: Any, source: tuple[str, str, str], path: Path) -> LocalModel:
    """GET the object (only if it still has the ETag seen) into ``path`` atomically."""
    bucket, key, etag = source
    body = client.get_object(Bucket=bucket, Key=key, IfMatch=etag)["Body"]
    digest = hashlib.sha256()
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=".part-", delete=False) as part:
        try:
            for chunk in body.iter_chunks(CHUNK_BYTES):
                digest.update(chunk)
                part.write(chunk)
        except BaseException:
            os.unlink(part.name)
            raise
    os.replace(part.name, path)
    _remove_stale_copies(path)
    logger.info("model s3://%s/%s: downloaded to %s", bucket, key, path)
    return LocalModel(path=path, sha256=digest.hexdigest())


def _remove_stale_copies(path: Path) -> None:
    """Older versions of the same object: /tmp is small (512 MB by default) and lives on."""
    object_hash = path.name[:NAME_HASH_CHARS]
    for stale in path.parent.glob(f"{object_hash}-*"):
        if stale != path:
            stale.unlink(missing_ok=True)
