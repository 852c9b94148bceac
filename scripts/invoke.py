"""Run a Lambda entry in this process with an event file: what ``sam local invoke`` runs in the container.

    make invoke EVENT=events/http_api_post_predict.json
    make invoke EVENT=events/http_api_post_predict.json IMAGE=~/photo.jpg    # your own image in the event
    python -m scripts.invoke events/s3_put_upload.json --local-s3             # an S3 event, no AWS needed
    make invoke EVENT=events/s3_batch_operations_v2.json                      # a Batch Operations task, local S3
    python -m scripts.invoke events/http_api_get_root.json --json             # the summary as one JSON line

The entry is the one template.yaml gives the function that receives such an event:
``app.lambda_upload.handler`` for S3 events and S3 Batch Operations invocations,
``app.lambda_api.handler`` otherwise (``--function`` overrides). Prints the response's
summary on stdout: status, isBase64Encoded, headers and body length; an image body is
saved (runs/invoke/<event>.png, .jpg, .webp or .zip) and its path printed. For S3 events it prints each
record's outcome, for Batch Operations each task's result code. The function's own
JSON logs and metrics go to stderr, so stdout holds the summary alone. S3 calls go
wherever boto3's configuration points (AWS, or AWS_ENDPOINT_URL_S3); with --local-s3
they go to moto on loopback, seeded with the event's objects (``--image``, or
events/images/ by the key's extension), and what the function wrote under overlays/
is downloaded to --out.
"""

from __future__ import annotations

import argparse
import base64
import importlib
import json
import logging
import os
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext, redirect_stdout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

REPO = Path(__file__).resolve().parents[1]
SAMPLE_IMAGES = {".png": REPO / "events" / "images" / "blobs.png"}
DEFAULT_SAMPLE = REPO / "events" / "images" / "person.jpg"  # a test photo of model.ccp's split (tests/photos)
DEFAULT_OUT = REPO / "runs" / "invoke"
ENTRIES = {"api": "app.lambda_api", "upload": "app.lambda_upload"}  # template.yaml's ImageConfig Commands
# Binary bodies saved to a file (runs/invoke/<event>.<suffix>), by Content-Type: images, and /predict/batch's zip.
SAVED_BODIES = {"image/png": ".png", "image/jpeg": ".jpg", "image/webp": ".webp", "application/zip": ".zip"}


@dataclass
class LambdaContext:
    """The attributes of Lambda's context object that the handler and Powertools read."""

    function_name: str = "unet-segmentation-local"
    memory_limit_in_mb: int = 2048
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:unet-segmentation-local"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    def get_remaining_time_in_millis(self) -> int:
        return 29_000


def load_event(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def s3_objects(event: dict[str, Any]) -> list[tuple[str, str]]:
    """(bucket, decoded key) of each S3 record or Batch Operations task; none for other events."""
    from app.aws.batch_operations import batch_tasks, is_batch_event  # here: no app import before the entry's

    if is_batch_event(event):
        return [(task.source.bucket, task.source.key) for task in batch_tasks(event)]
    records = event.get("Records") or [] if isinstance(event, dict) else []
    return [(r["s3"]["bucket"]["name"], unquote_plus(r["s3"]["object"]["key"])) for r in records if "s3" in r]


def entry_for(event: Any) -> str:
    """The function that template.yaml sends such an event to."""
    return "upload" if s3_objects(event) else "api"


def with_image(event: dict[str, Any], image: Path) -> dict[str, Any]:
    """An HTTP event whose multipart ``file`` part carries ``image`` instead (same boundary, new length)."""
    headers = event.get("headers") or {}
    content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
    boundary = content_type.partition("boundary=")[2].strip('"')
    if not boundary:
        raise SystemExit(f"--image: this event carries no multipart body to put {image.name} in")
    part_header = (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{image.name}"\r\n'
                   "Content-Type: application/octet-stream\r\n\r\n")
    body = part_header.encode() + image.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
    new_headers = {k: (str(len(body)) if k.lower() == "content-length" else v) for k, v in headers.items()}
    updated = {**event, "headers": new_headers, "body": base64.b64encode(body).decode(), "isBase64Encoded": True}
    if "multiValueHeaders" in event:  # REST API v1 events repeat every header as a list
        updated["multiValueHeaders"] = {k: [v] for k, v in new_headers.items()}
    return updated


def seed(client: Any, objects: list[tuple[str, str]], image: Path | None) -> None:
    """Creates the buckets and puts ``image`` (else a sample, by the key's extension) at each key."""
    for bucket in sorted({bucket for bucket, _ in objects}):
        client.create_bucket(Bucket=bucket)
    for bucket, key in objects:
        sample = image or SAMPLE_IMAGES.get(Path(key).suffix.lower(), DEFAULT_SAMPLE)
        client.put_object(Bucket=bucket, Key=key, Body=sample.read_bytes())


@contextmanager
def local_s3(event: dict[str, Any], image: Path | None) -> Iterator[None]:
    """moto's S3 on loopback for this process, seeded with the event's objects."""
    from scripts.local_s3 import local_aws_env, moto_in_thread  # here: moto is heavy, and only S3 events need it

    with moto_in_thread() as endpoint:
        os.environ.update(local_aws_env(endpoint))
        import boto3

        seed(boto3.client("s3"), s3_objects(event), image)
        yield


def summarise_http(response: dict[str, Any], out: Path) -> dict[str, Any]:
    headers = {name.lower(): value for name, value in (response.get("headers") or {}).items()}
    body = response.get("body") or ""
    raw = base64.b64decode(body) if response.get("isBase64Encoded") else body.encode()
    summary = {"kind": "http", "statusCode": response["statusCode"], "isBase64Encoded": response.get("isBase64Encoded"),
               "headers": headers, "body_bytes": len(raw)}
    suffix = SAVED_BODIES.get(headers.get("content-type", ""))
    if suffix is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.with_suffix(suffix).write_bytes(raw)
        summary["saved"] = str(out.with_suffix(suffix))
    else:
        summary["body"] = body[:2000]
    return summary


def written_under_overlays(buckets: set[str]) -> dict[tuple[str, str], str]:
    """(bucket, key) -> ETag of every object under overlays/: what the function wrote shows as a change."""
    import boto3

    client = boto3.client("s3")
    return {(bucket, item["Key"]): item["ETag"] for bucket in sorted(buckets)
            for item in client.list_objects_v2(Bucket=bucket, Prefix="overlays/").get("Contents", [])}


def fetch_outputs(before: dict[tuple[str, str], str], buckets: set[str], out_dir: Path) -> list[str]:
    """Downloads what the function wrote under overlays/ (outputs and summaries) into ``out_dir``."""
    import boto3

    client, saved = boto3.client("s3"), []
    for (bucket, key), etag in sorted(written_under_overlays(buckets).items()):
        if before.get((bucket, key)) == etag:
            continue  # seeded from the event, not written
        target = out_dir / key
        target.parent.mkdir(parents=True, exist_ok=True)
        client.download_file(bucket, key, str(target))
        saved.append(str(target))
    return saved


def invoke(event: dict[str, Any], entry: str, out: Path, download: bool) -> dict[str, Any]:
    """Imports the entry (its init runs now, as in a cold start) and calls its handler once."""
    handler = importlib.import_module(ENTRIES[entry]).handler
    buckets = {bucket for bucket, _ in s3_objects(event)} if download else set()
    before = written_under_overlays(buckets)
    result = handler(event, LambdaContext())
    if "statusCode" in result and "error" not in result:
        return summarise_http(result, out)
    saved = fetch_outputs(before, buckets, out.parent / out.stem)
    if "records" in result:
        return {"kind": "s3", "records": result["records"], "saved": saved}
    if "results" in result:
        return {"kind": "batch", **result, "saved": saved}
    return {"kind": "unsupported", **result}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("event", type=Path, help="an event file, e.g. events/http_api_post_predict.json")
    parser.add_argument("--image", type=Path, help="your image: in the HTTP event's body, or at the S3 event's keys")
    parser.add_argument("--function", choices=sorted(ENTRIES), help="the entry to run (default: by the event)")
    parser.add_argument("--local-s3", action="store_true", help="serve the event's S3 objects from moto on loopback")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where image bodies and S3 outputs are saved")
    parser.add_argument("--json", action="store_true", help="print the summary as one JSON line")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=sys.stderr)
    event = load_event(args.event)
    if args.image and not s3_objects(event):
        event = with_image(event, args.image.expanduser())
    entry = args.function or entry_for(event)
    try:  # the function's logs and EMF metrics are written to stdout: send them to stderr
        with redirect_stdout(sys.stderr), local_s3(event, args.image) if args.local_s3 else nullcontext():
            summary = invoke(event, entry, args.out / args.event.stem, download=args.local_s3)
    except Exception as error:  # what Lambda would record as a failed invocation
        summary = {"kind": "error", "error": type(error).__name__, "detail": str(error)}
    print(json.dumps(summary) if args.json else describe(summary))  # noqa: T201
    return 1 if summary["kind"] == "error" else 0


def describe(summary: dict[str, Any]) -> str:
    """The summary for people: one line per fact."""
    lines = [f"== {summary['kind']} =="]
    lists = {"kind", "records", "results", "headers"}
    lines += [f"{name}: {value}" for name, value in summary.items() if name not in lists]
    lines += [f"header {name}: {value}" for name, value in summary.get("headers", {}).items()]
    lines += [f"record {r['key']}: {r['status']} ({r['detail']})" for r in summary.get("records", [])]
    lines += [f"task {r['taskId']}: {r['resultCode']} ({r['resultString']})" for r in summary.get("results", [])]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
