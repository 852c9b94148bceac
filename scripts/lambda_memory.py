"""Peak memory and latency of the Lambda handler, per path, image size and thread count.

    python -m scripts.lambda_memory                      # make lambda-memory: the table behind template.yaml
    python -m scripts.lambda_memory --sizes 1920x1080 --threads 1 --paths s3

Each case runs in a fresh process, as a Lambda execution environment would: import
the function's entry (``app.lambda_api`` or ``app.lambda_upload``: the init, model
loaded), then five invocations of the handler with a photo-like JPEG, through the HTTP
path (an HTTP API v2 event, Mangum, FastAPI) or the S3 path (an S3 event; moto's server
in its own process stands in for S3). Reported: RSS after init, peak RSS (ru_maxrss,
what Lambda's "Max Memory Used" tracks), and the first and best invocation time. One
thread stands for Lambda at <= 1769 MB (one vCPU:
https://docs.aws.amazon.com/lambda/latest/dg/configuration-memory.html).
"""

from __future__ import annotations

import argparse
import base64
import copy
import importlib
import io
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from scripts.invoke import LambdaContext, load_event
from scripts.local_s3 import free_port, local_aws_env, moto_in_subprocess

REPO = Path(__file__).resolve().parents[1]
EVENTS = REPO / "events"
BUCKET = "lambda-memory"
ROUNDS = 5
DEFAULT_SIZES = ["1920x1080", "4000x3000"]


def photo_jpeg(width: int, height: int, seed: int = 0) -> bytes:
    """Smooth colour fields, a striped ellipse, sensor noise: compresses like a photo (q=90)."""
    rng = np.random.default_rng(seed)
    coarse = Image.fromarray((rng.random((9, 16, 3)) * 255).astype(np.uint8))
    image = coarse.resize((width, height), Image.Resampling.BICUBIC)
    draw = ImageDraw.Draw(image)
    for offset in range(0, width, max(4, width // 120)):
        draw.line([(offset, 0), (offset - height, height)], fill=(200, 60, 40), width=max(1, width // 400))
    noise = rng.normal(0, 2, (height, width, 1)).astype(np.int16)
    pixels = np.clip(np.asarray(image, dtype=np.int16) + noise, 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def http_event(jpeg: bytes) -> dict[str, Any]:
    """events/http_api_post_predict.json with this JPEG as its multipart body."""
    event = copy.deepcopy(load_event(EVENTS / "http_api_post_predict.json"))
    boundary = "lambdamemoryboundary"
    head = (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="p.jpg"\r\n'
            "Content-Type: image/jpeg\r\n\r\n")
    body = head.encode() + jpeg + f"\r\n--{boundary}--\r\n".encode()
    event["headers"]["content-type"] = f"multipart/form-data; boundary={boundary}"
    event["headers"]["content-length"] = str(len(body))
    event["body"] = base64.b64encode(body).decode()
    return event


def s3_event(key: str) -> dict[str, Any]:
    """events/s3_put_upload.json pointing at ``key`` in the measurement bucket."""
    event = copy.deepcopy(load_event(EVENTS / "s3_put_upload.json"))
    event["Records"][0]["s3"]["bucket"]["name"] = BUCKET
    event["Records"][0]["s3"]["object"]["key"] = key
    return event


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def child(path: str, jpeg_file: Path) -> dict[str, Any]:
    """One execution environment: init, then ROUNDS invocations; runs in its own process."""
    started = time.perf_counter()
    entry = importlib.import_module("app.lambda_api" if path == "http" else "app.lambda_upload")
    handler = entry.handler

    init_s, init_rss = time.perf_counter() - started, rss_mb()
    event = http_event(jpeg_file.read_bytes()) if path == "http" else s3_event("uploads/photo.jpg")
    times, statuses = [], []
    for _ in range(ROUNDS):
        tick = time.perf_counter()
        result = handler(event, LambdaContext())
        times.append(time.perf_counter() - tick)
        statuses.append(result.get("statusCode") or result["records"][0]["status"])
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"init_s": round(init_s, 2), "init_rss_mb": round(init_rss), "peak_rss_mb": round(peak),
            "first_s": round(times[0], 2), "best_s": round(min(times), 2), "status": statuses[-1]}


def run_case(path: str, jpeg_file: Path, threads: int, env: dict[str, str]) -> dict[str, Any]:
    command = [sys.executable, "-m", "scripts.lambda_memory", "--child", path, "--jpeg", str(jpeg_file)]
    case_env = {**os.environ, **env, "INFERENCE_THREADS": str(threads), "POWERTOOLS_METRICS_DISABLED": "true",
                "POWERTOOLS_LOG_LEVEL": "WARNING", "LOG_LEVEL": "WARNING",
                "MAX_RESPONSE_BYTES": "4400000"}  # as template.yaml sets it for the API
    done = subprocess.run(command, cwd=REPO, env=case_env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def upload(endpoint: str, jpeg: bytes) -> None:
    import boto3

    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    client.create_bucket(Bucket=BUCKET)
    client.put_object(Bucket=BUCKET, Key="uploads/photo.jpg", Body=jpeg)


def measure(sizes: list[str], threads: list[int], paths: list[str]) -> list[dict[str, Any]]:
    rows = []
    with moto_in_subprocess(free_port()) as endpoint, tempfile.TemporaryDirectory() as tmp:
        for size in sizes:
            width, height = (int(v) for v in size.split("x"))
            jpeg = photo_jpeg(width, height)
            jpeg_file = Path(tmp) / f"{size}.jpg"
            jpeg_file.write_bytes(jpeg)
            upload(endpoint, jpeg)
            for path in paths:
                for count in threads:
                    result = run_case(path, jpeg_file, count, local_aws_env(endpoint))
                    rows.append({"path": path, "size": size, "jpeg_mb": round(len(jpeg) / 1e6, 2),
                                 "threads": count, **result})
                    print(json.dumps(rows[-1]), file=sys.stderr)  # noqa: T201
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=DEFAULT_SIZES)
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--paths", nargs="+", choices=["http", "s3"], default=["http", "s3"])
    parser.add_argument("--child", choices=["http", "s3"], help=argparse.SUPPRESS)
    parser.add_argument("--jpeg", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.jpeg)))  # noqa: T201
        return
    print(json.dumps(measure(args.sizes, args.threads, args.paths), indent=1))  # noqa: T201


if __name__ == "__main__":
    main()
