"""The upload flow on one machine, no AWS account: a local S3, the API, and the upload function on every upload.

    make serve-local                                # prints the API's URL; Ctrl-C stops everything
    make serve-local ARGS="--port 8000"             # the API on a fixed port (default: a free one)
    python -m scripts.serve_local --port 8000       # the same without make

Everything listens on 127.0.0.1 and lives in memory: it is gone when the command stops.

1. moto's server (a child process, a free port) is S3 and SQS. The bucket's notification
   configuration sends ``s3:ObjectCreated:*`` under ``uploads/`` to a queue, as template.yaml's
   ``Upload`` event sends it to the upload function; moto delivers it with S3's own event shape
   (moto 5.2.5 URL-encodes the key's ``/`` too, which S3 leaves as is: ``unquote_plus`` reads both).
2. The API (``uvicorn app.main:app --app-dir function``, a child process) with UPLOAD_BUCKET,
   AWS_ENDPOINT_URL_S3 and dummy credentials: ``POST /uploads`` signs POSTs into that bucket.
3. The upload function, in this process: ``app.lambda_upload`` is imported once (its cold start), then
   a worker long-polls the queue and hands each message's S3 event, unchanged (keys URL-encoded, as S3
   sends them), to its ``handler`` with a Lambda-like context. A message is deleted once the handler
   returns; one that raised comes back after VISIBILITY_TIMEOUT_S and, after MAX_RECEIVES tries, moves
   to the failure queue: Lambda's asynchronous retries and template.yaml's UploadFailures, locally.

SIGINT (Ctrl-C) or SIGTERM: the worker finishes the upload in hand, the API then moto are stopped, exit 0.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import boto3

from app.aws.keys import UPLOAD_PREFIX  # template.yaml's trigger filter
from scripts.invoke import LambdaContext
from scripts.local_s3 import HOST, free_port, local_aws_env, moto_in_subprocess, stop_process, wait_until_answering

REPO = Path(__file__).resolve().parents[1]
BUCKET = "unet-segmentation-local"
QUEUE = "unet-segmentation-local-uploads"  # stands in for Lambda's own queue of asynchronous invocations
FAILURE_QUEUE = "unet-segmentation-local-upload-failures"  # template.yaml's UploadFailures
MAX_RECEIVES = 3  # template.yaml: MaximumRetryAttempts 2, so three tries in all
VISIBILITY_TIMEOUT_S = 60  # a failed event is tried again after this; longer than any one image takes here
WAIT_S = 20  # SQS's longest long poll; a stop signal ends the wait at once
STARTUP_TIMEOUT_S = 120.0  # the API's imports and model load: seconds here, a minute on 2 busy cores
# Variables that could send boto3 to a real account, another endpoint or another region: never inherited.
FOREIGN_AWS_VARIABLES = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL", "AWS_CONFIG_FILE",
                         "AWS_SHARED_CREDENTIALS_FILE", "AWS_REGION")
# The bucket's CORS rules as template.yaml's, for the API's own origin: the page at / posts large files too.
CORS_METHODS = (["POST"], ["GET", "HEAD"])

logger = logging.getLogger("serve_local")

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


class Stop(BaseException):
    """A stop signal, raised where waiting can be cut short (not Exception: nothing on the way may swallow it)."""


class Shutdown:
    """SIGINT and SIGTERM: raise ``Stop`` while the command only waits, else ask the worker to stop after its event."""

    def __init__(self) -> None:
        self.requested = False
        self._interruptible = False
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, self._on_signal)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True
        if self._interruptible:
            self._interruptible = False  # stopping the children is never cut short itself
            raise Stop

    @contextmanager
    def interruptible(self) -> Iterator[None]:
        """A block that a stop signal ends at once (a signal that came just before it ends it too)."""
        self._interruptible = True
        try:
            if self.requested:
                raise Stop
            yield
        finally:
            self._interruptible = False


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=0, help="the API's port on 127.0.0.1 (default: a free one)")
    return parser.parse_args(argv)


def local_environment(endpoint: str) -> dict[str, str]:
    """This process's environment from now on, and the API's: moto with dummy credentials, the upload bucket."""
    for name in FOREIGN_AWS_VARIABLES:
        os.environ.pop(name, None)
    os.environ.update({**local_aws_env(endpoint), "UPLOAD_BUCKET": BUCKET})
    return dict(os.environ)


def queue_arn(sqs: Any, queue_url: str) -> str:
    return str(sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"])


def create_queues(sqs: Any) -> str:
    """The event queue, redriven to the failure queue after MAX_RECEIVES tries; returns its URL."""
    failures = queue_arn(sqs, sqs.create_queue(QueueName=FAILURE_QUEUE)["QueueUrl"])
    redrive = json.dumps({"deadLetterTargetArn": failures, "maxReceiveCount": MAX_RECEIVES})
    attributes = {"VisibilityTimeout": str(VISIBILITY_TIMEOUT_S), "RedrivePolicy": redrive}
    return str(sqs.create_queue(QueueName=QUEUE, Attributes=attributes)["QueueUrl"])


def create_bucket(s3: Any, queue: str, api_origin: str) -> None:
    """The bucket, its CORS rules for the API's page, and ObjectCreated under uploads/ sent to ``queue`` (an ARN)."""
    s3.create_bucket(Bucket=BUCKET)
    rules = [{"AllowedMethods": methods, "AllowedOrigins": [api_origin], "AllowedHeaders": ["*"],
              "ExposeHeaders": ["ETag", "Content-Length", "Content-Type"], "MaxAgeSeconds": 3000}
             for methods in CORS_METHODS]
    s3.put_bucket_cors(Bucket=BUCKET, CORSConfiguration={"CORSRules": rules})
    trigger = {"Id": "Upload", "QueueArn": queue, "Events": ["s3:ObjectCreated:*"],
               "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": UPLOAD_PREFIX}]}}}
    notifications = {"QueueConfigurations": [trigger]}
    s3.put_bucket_notification_configuration(Bucket=BUCKET, NotificationConfiguration=notifications)


@contextmanager
def api_server(port: int, env: dict[str, str]) -> Iterator[str]:
    """``uvicorn app.main:app`` as a child in its own session (a terminal's Ctrl-C reaches us, and we stop it)."""
    url = f"http://{HOST}:{port}"
    command = [sys.executable, "-m", "uvicorn", "app.main:app", "--app-dir", "function",
               "--host", HOST, "--port", str(port)]
    server = subprocess.Popen(command, cwd=REPO, env=env, start_new_session=True)
    try:
        wait_until_answering(f"{url}/health", server, STARTUP_TIMEOUT_S, "the API")
        yield url
    finally:
        stop_process(server)


@dataclass
class Worker:
    """The upload function's local trigger: the queue's S3 events, one at a time, into ``handler``."""

    sqs: Any
    queue_url: str
    handler: Handler

    def run(self, shutdown: Shutdown) -> None:
        """Long-polls until a stop is asked for; a signal during the poll ends it at once."""
        while not shutdown.requested:
            with shutdown.interruptible():
                response = self.sqs.receive_message(QueueUrl=self.queue_url, WaitTimeSeconds=WAIT_S,
                                                    MaxNumberOfMessages=1)
            for message in response.get("Messages", []):
                self.deliver(message)

    def deliver(self, message: dict[str, Any]) -> None:
        """The message's S3 event through the handler; the message is deleted unless the handler raised."""
        event = json.loads(message["Body"])
        if event.get("Event") == "s3:TestEvent":  # what S3 sends once when the notification is configured
            self.delete(message)
            return
        try:
            result = self.handler(event, LambdaContext())
        except Exception as error:  # the function logged it; Lambda would retry the event, and so does the queue
            logger.warning("upload function failed (%s): the event comes back in %d s", error, VISIBILITY_TIMEOUT_S)
            return
        for record in result.get("records", []):
            logger.info("upload function: %s %s %s", record["key"], record["status"], record["detail"])
        self.delete(message)

    def delete(self, message: dict[str, Any]) -> None:
        self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])


def start(args: argparse.Namespace, stack: ExitStack) -> tuple[str, Worker]:
    """1. moto, 2. the bucket and its trigger, 3. the API, 4. the upload function; returns the API's URL."""
    endpoint = stack.enter_context(moto_in_subprocess(free_port()))
    env = local_environment(endpoint)
    port = args.port or free_port()
    sqs = boto3.client("sqs", endpoint_url=endpoint)
    queue_url = create_queues(sqs)
    create_bucket(boto3.client("s3"), queue_arn(sqs, queue_url), f"http://{HOST}:{port}")
    url = stack.enter_context(api_server(port, env))
    from app.lambda_upload import handler  # its init now, as a cold start: settings, logging, the model

    return url, Worker(sqs, queue_url, handler)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="serve-local: %(message)s", stream=sys.stderr)
    logger.setLevel(logging.INFO)  # ours at INFO; botocore's INFO lines (credentials found...) are noise here
    shutdown = Shutdown()
    try:
        with ExitStack() as stack:  # unwinds in reverse: the API, then moto
            with shutdown.interruptible():
                url, worker = start(args, stack)
            logger.info("up: bucket %s, %s -> queue %s -> app.lambda_upload.handler; Ctrl-C stops it all",
                        BUCKET, UPLOAD_PREFIX, QUEUE)
            print(url, flush=True)  # noqa: T201 - the API's URL, for people and scripts
            worker.run(shutdown)
    except Stop:
        pass
    except RuntimeError as error:  # a child that did not start: what it said is above
        logger.error("%s", error)
        return 1
    logger.info("stopped: every process it started has exited")
    return 0


if __name__ == "__main__":
    sys.exit(main())
