"""The AWS side without AWS: moto's S3 server on loopback, Lambda contexts, events from events/.

S3 is moto's real HTTP server on 127.0.0.1 (a free port), reached by boto3 through
AWS_ENDPOINT_URL_S3 and dummy credentials: the production code runs unchanged.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from app.s3_client import get_s3_client

from scripts.invoke import LambdaContext
from scripts.local_s3 import local_aws_env, moto_in_thread, reset
from tests.conftest import EVENTS

# The events' bucket: template.yaml's name for stack "unet-segmentation" in account 123456789012, us-east-1.
BUCKET = "unet-segmentation-123456789012-us-east-1"
SAMPLE_JPEG = EVENTS / "images" / "blobs.jpg"
SAMPLE_PNG = EVENTS / "images" / "blobs.png"
# Variables that could point boto3 at a real account or another endpoint.
FOREIGN_AWS_VARIABLES = ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE")


def load_event(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text())


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    with moto_in_thread() as endpoint:
        yield endpoint


@pytest.fixture
def aws_env(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The environment that sends boto3 to moto (as a dict, for subprocesses too)."""
    for name in FOREIGN_AWS_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    env = local_aws_env(moto_endpoint)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


@pytest.fixture
def s3(moto_endpoint: str, aws_env: dict[str, str]) -> Iterator[Any]:
    """An empty moto S3 with the events' bucket; the app's cached client is rebuilt for it."""
    reset(moto_endpoint)
    get_s3_client.cache_clear()
    client = boto3.client("s3")
    client.create_bucket(Bucket=BUCKET)
    yield client
    get_s3_client.cache_clear()


@pytest.fixture
def context() -> LambdaContext:
    return LambdaContext(aws_request_id="c0ffee00-0000-4000-8000-000000000001")


@pytest.fixture(autouse=True)
def main_thread_event_loop() -> Iterator[None]:
    """Mangum runs requests on the main thread's current event loop, which Lambda's runtime
    leaves set; an ``asyncio.run`` elsewhere in the session unsets it."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    yield
    asyncio.set_event_loop(None)
    loop.close()


@pytest.fixture
def json_logs() -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """``read()`` -> the JSON log lines written so far in this test (the Powertools handler's
    stream swapped for a buffer: it holds the sys.stdout of import time, beyond capsys' reach)."""
    from app.lambda_handler import logger

    buffer = io.StringIO()
    previous = logger.registered_handler.setStream(buffer)
    yield lambda: [json.loads(line) for line in buffer.getvalue().splitlines()]
    logger.registered_handler.setStream(previous)
