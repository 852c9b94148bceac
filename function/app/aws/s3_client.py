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

# botocore's standard retry mode, set here rather than left to AWS_RETRY_MODE/AWS_MAX_ATTEMPTS or the legacy
# default: it retries throttling (SlowDown, 429), 500/502/503/504, RequestTimeout and connection errors, with
# exponential backoff and full jitter (throttling: under 1 s, then under 2 s; other errors: under 50 ms, then
# 100 ms) and a client-wide retry quota (https://docs.aws.amazon.com/sdkref/latest/guide/feature-retry-behavior.html,
# botocore/retries/standard.py, ExponentialBackoff, botocore 1.44). A body cut off after the answer began is
# not retried by botocore: the callers raise (IncompleteReadError, ResponseStreamingError) and Lambda or Batch
# Operations retries the event or task.
TOTAL_ATTEMPTS = 3  # the first attempt and two retries (the standard mode's own default)
CONNECT_TIMEOUT_S = 2  # S3 in the same region connects in milliseconds: longer means the network is down
# Per socket read, not per object: a 50 MB GET streams in many reads. A call that stalls every time gives up
# after about 3 x 10 s; the upload function (60 s, template.yaml) then raises and Lambda retries the event.
READ_TIMEOUT_S = 10


@lru_cache(maxsize=1)
def client_config() -> Any:
    from botocore.config import Config

    # SigV4 for presigned URLs and POSTs: botocore's default for a presigned POST is still SigV2, which newer
    # regions refuse (https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-HTTPPOSTConstructPolicy.html).
    return Config(connect_timeout=CONNECT_TIMEOUT_S, read_timeout=READ_TIMEOUT_S,
                  retries={"mode": "standard", "total_max_attempts": TOTAL_ATTEMPTS}, signature_version="s3v4")


@lru_cache(maxsize=1)
def get_s3_client() -> Any:
    """Built once (boto3 client creation costs ~100 ms); clients are thread-safe."""
    import boto3

    return boto3.client("s3", config=client_config())
