"""The one S3 client of an execution environment.

No endpoint argument: boto3 resolves the endpoint itself, so the standard
AWS_ENDPOINT_URL_S3 variable points this same code at moto's server in tests or at
any S3-compatible store locally
(https://docs.aws.amazon.com/sdkref/latest/guide/feature-ss-endpoints.html).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import boto3
from botocore.config import Config

# Fail fast and retry a little: Lambda's init phase is capped at 10 s
# (https://docs.aws.amazon.com/lambda/latest/dg/lambda-runtime-environment.html),
# and the S3 trigger is retried by Lambda itself after it raises.
CLIENT_CONFIG = Config(connect_timeout=5, read_timeout=20, retries={"mode": "standard", "max_attempts": 3})


@lru_cache(maxsize=1)
def get_s3_client() -> Any:
    """Built once (boto3 client creation costs ~100 ms); clients are thread-safe."""
    return boto3.client("s3", config=CLIENT_CONFIG)
