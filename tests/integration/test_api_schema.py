"""The API against its own OpenAPI document: Schemathesis on `make serve`, with API keys and the upload flow on.

Every check Schemathesis has (tests/integration/schemathesis.toml says which one is off for image uploads, and
why): no 5xx on any operation, every response in a declared status with its declared content type, schema and
headers (Retry-After, WWW-Authenticate), schema-invalid input refused, missing or wrong keys refused. Phases:
the schema's examples, its coverage of boundaries, generated fuzzing, and stateful runs (POST /uploads, then
GET /results/{id}). ``make test`` runs API_FUZZ_EXAMPLES=5 per operation; ``make api-fuzz`` runs 200
(EXAMPLES=...) and writes its report under runs/api-fuzz/.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers import make_serve
from tests.support import REPO

CONFIG = Path(__file__).with_name("schemathesis.toml")
API_KEY = "api-fuzz-key-0123456789"  # a test's key: never one of a real deployment
UPLOADS = "api-fuzz-uploads"
SEED = 20261129  # reproducible: a failure names the same inputs on the next run


@pytest.fixture(scope="module")
def served(moto_endpoint: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`make serve` at its defaults, plus API keys and the upload flow into a moto bucket."""
    import boto3

    from scripts.local_s3 import local_aws_env

    aws = local_aws_env(moto_endpoint)
    boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1",
                 aws_access_key_id="testing", aws_secret_access_key="testing").create_bucket(Bucket=UPLOADS)
    env = {**aws, "API_KEYS": API_KEY, "UPLOAD_BUCKET": UPLOADS}
    with make_serve(env, tmp_path_factory.mktemp("api-fuzz") / "server.log") as base:
        yield base


def schemathesis(base: str, examples: int, report: Path) -> tuple[int, str]:
    command = [str(Path(sys.executable).parent / "schemathesis"), "--config-file", str(CONFIG),
               "run", f"{base}/openapi.json",
               "--max-examples", str(examples), "--seed", str(SEED), "--workers", "1", "--no-color",
               "--report", "junit,ndjson", "--report-dir", str(report)]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=3000,
                          env={**os.environ, "API_FUZZ_KEY": API_KEY})
    return done.returncode, done.stdout + done.stderr


@pytest.mark.slow
def test_every_operation_answers_as_its_schema_declares(served: str, tmp_path: Path) -> None:
    examples = int(os.environ.get("API_FUZZ_EXAMPLES", "5"))
    report = Path(os.environ.get("API_FUZZ_REPORT", str(tmp_path)))
    code, output = schemathesis(served, examples, report)
    (report / "schemathesis.txt").write_text(output)
    summary = output[output.rfind("SUMMARY"):] if "SUMMARY" in output else output[-3000:]
    print(summary)  # noqa: T201 (make api-fuzz shows the figures: pytest -s)
    assert code == 0, output[-8000:]
