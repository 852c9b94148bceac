"""The process's one S3 client, through boto3's standard configuration.

The endpoint comes from boto3's own resolution (``AWS_ENDPOINT_URL_S3`` and the
rest: https://docs.aws.amazon.com/sdkref/latest/guide/feature-ss-endpoints.html),
so moto's server in tests or any S3-compatible store needs no code path of its own.
boto3 is imported on first use, not at import: it costs ~200-300 ms of start-up
(``python -X importtime``, docs/benchmarks.md) that a local model and the HTTP path
never need; only an ``s3://`` MODEL_URI or an S3 event builds the client.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any


@lru_cache(maxsize=1)
def client_config() -> Any:
    from botocore.config import Config

    # Fail fast and retry a little: Lambda's init phase is capped at 10 s
    # (https://docs.aws.amazon.com/lambda/latest/dg/lambda-runtime-environment.html),
    # and the S3 trigger is retried by Lambda itself after it raises. SigV4 for presigned URLs and
    # POSTs: botocore's default for a presigned POST is still SigV2, which newer regions refuse
    # (https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-HTTPPOSTConstructPolicy.html).
    return Config(connect_timeout=5, read_timeout=20, retries={"mode": "standard", "max_attempts": 3},
                  signature_version="s3v4")


@lru_cache(maxsize=1)
def get_s3_client() -> Any:
    """Built once (boto3 client creation costs ~100 ms); clients are thread-safe."""
    import boto3

    return boto3.client("s3", config=client_config())
