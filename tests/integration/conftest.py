"""Real local servers: moto's S3 on loopback (a free port), reached by boto3 through
AWS_ENDPOINT_URL_S3 and dummy credentials, so the production code runs unchanged."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from app.aws.s3_client import get_s3_client
from scripts.local_s3 import local_aws_env, moto_in_thread, reset
from tests.support import BUCKET

# Variables that could point boto3 at a real account or another endpoint.
FOREIGN_AWS_VARIABLES = ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE")


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
