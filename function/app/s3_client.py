"""The one S3 client of an execution environment.

No endpoint argument: boto3 resolves the endpoint itself, so the standard
AWS_ENDPOINT_URL_S3 variable points this same code at moto's server in tests or at
any S3-compatible store locally
(https://docs.aws.amazon.com/sdkref/latest/guide/feature-ss-endpoints.html).

boto3 is imported on first use, not at import: it costs ~200-300 ms of start-up
(``python -X importtime``, docs/benchmarks.md) that a local model and the HTTP path
never need; only an ``s3://`` MODEL_URI or an S3 event builds the client.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any


@lru_cache(maxsize=1)
def _client_config() -> Any:
    from botocore.config import Config

    # Fail fast and retry a little: Lambda's init phase is capped at 10 s
    # (https://docs.aws.amazon.com/lambda/latest/dg/lambda-runtime-environment.html),
    # and the S3 trigger is retried by Lambda itself after it raises.
    return Config(connect_timeout=5, read_timeout=20, retries={"mode": "standard", "max_attempts": 3})


def __getattr__(name: str) -> Any:
    """``CLIENT_CONFIG`` stays importable as before, built (with botocore) only when asked for."""
    if name == "CLIENT_CONFIG":
        return _client_config()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@lru_cache(maxsize=1)
def get_s3_client() -> Any:
    """Built once (boto3 client creation costs ~100 ms); clients are thread-safe."""
    import boto3

    return boto3.client("s3", config=_client_config())
