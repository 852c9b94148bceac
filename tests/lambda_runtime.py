"""Lambda's Runtime API on loopback, so a test runs the image's entries the way Lambda does.

AWS's Python base images start a function as ``python -m awslambdaric <handler>`` (the image's CMD, or
template.yaml's ImageConfig Command) with ``AWS_LAMBDA_RUNTIME_API`` naming this API. The runtime then
loops: GET the next invocation (it blocks until there is one), call the handler, POST the result or the
error; a handler that cannot even be loaded is reported once on the init error path, and the process exits.
Reference: https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html (API version 2018-06-01).

    with lambda_entry("app.lambda_api.handler", env, log) as entry:
        reply = entry.invoke(event)   # a Reply: what the runtime posted for this invocation
"""

from __future__ import annotations

import json
import os
import queue
import re
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

from tests.support import REPO

T = TypeVar("T")
HOST = "127.0.0.1"
NEXT = "/2018-06-01/runtime/invocation/next"
INIT_ERROR = "/2018-06-01/runtime/init/error"
INVOCATION_POST = re.compile(r"/2018-06-01/runtime/invocation/(?P<request_id>[^/]+)/(?P<kind>response|error)")
ERROR_TYPE_HEADER = "Lambda-Runtime-Function-Error-Type"
FUNCTION_ARN = "arn:aws:lambda:us-east-1:123456789012:function:unet-segmentation-local"
TRACE_ID = "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=9a9197af755a6419;Sampled=1"  # the docs' example
TASK_ROOT = REPO / "function"  # the image's LAMBDA_TASK_ROOT holds the package `app`, as function/ does
DEADLINE_S = 60  # the deadline each invocation is given: generous, for a 2-core machine that is also training
WAIT_S = 120.0  # how long a test waits for the runtime to poll or to answer before it fails


@dataclass(frozen=True)
class Reply:
    """One POST from the runtime: ``kind`` is "response", "error" (an invocation's) or "init_error"."""

    kind: str
    request_id: str | None  # None for init_error, which belongs to no invocation
    body: Any  # the posted JSON
    headers: dict[str, str]  # names lower-cased: HTTP's are case-insensitive, and the native client's are lower case

    @property
    def error_type(self) -> str | None:
        """The Lambda-Runtime-Function-Error-Type header: awslambdaric sends it with init errors only (4.2.2)."""
        return self.headers.get(ERROR_TYPE_HEADER.lower())


class RuntimeApi:
    """The fake's state: events queued for GET .../next, every POST recorded, the time of each poll."""

    def __init__(self) -> None:
        self.events: queue.Queue[tuple[str, bytes] | None] = queue.Queue()  # None: stop answering
        self.replies: queue.Queue[Reply] = queue.Queue()
        self.polls: queue.Queue[float] = queue.Queue()  # one entry per GET .../next received


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a GET .../next still waiting when a test ends must not keep pytest alive

    def __init__(self, api: RuntimeApi) -> None:
        super().__init__((HOST, 0), _Handler)
        self.api = api

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Silent when the runtime goes away mid-connection (each test kills it); anything else is printed."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.1: the runtime's native client (libcurl) keeps its connection open and may send
    # "Expect: 100-continue" with a large body, which http.server answers only for 1.1.
    protocol_version = "HTTP/1.1"
    server: _Server

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        if self.path != NEXT:
            self._answer(404, b"{}")
            return
        self.server.api.polls.put(time.time())
        item = self.server.api.events.get()  # a long poll, as Lambda's: the runtime waits for work
        if item is None:
            self.close_connection = True
            return
        request_id, body = item
        self._answer(200, body, {
            "Lambda-Runtime-Aws-Request-Id": request_id,
            "Lambda-Runtime-Deadline-Ms": str(int((time.time() + DEADLINE_S) * 1000)),
            "Lambda-Runtime-Invoked-Function-Arn": FUNCTION_ARN,
            "Lambda-Runtime-Trace-Id": TRACE_ID,
        })

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        kind, request_id = route(self.path)
        if kind is None:
            self._answer(404, b"{}")
            return
        posted = json.loads(body) if body else None
        headers = {name.lower(): value for name, value in self.headers.items()}
        self.server.api.replies.put(Reply(kind, request_id, posted, headers))
        self._answer(202, b'{"status":"OK"}')  # 202 Accepted: what Lambda answers to each of these

    def _answer(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in {"Content-Type": "application/json", **(headers or {})}.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base class's signature)
        """Quiet: the runtime's own output (in the entry's log file) is what a failing test shows."""


def route(path: str) -> tuple[str | None, str | None]:
    """(kind, request id) of a POST path; (None, None) for a path the Runtime API does not have."""
    if path == INIT_ERROR:
        return "init_error", None
    match = INVOCATION_POST.fullmatch(path)
    return (match["kind"], match["request_id"]) if match else (None, None)


@dataclass
class Entry:
    """A running ``python -m awslambdaric <handler>`` and the API it talks to."""

    api: RuntimeApi
    process: subprocess.Popen[bytes]
    log: Path

    def invoke(self, event: Any) -> Reply:
        """Queues ``event`` as Lambda would and returns what the runtime posted for it."""
        request_id = str(uuid.uuid4())
        self.api.events.put((request_id, json.dumps(event).encode()))
        reply = self.next_reply()
        assert reply.request_id == request_id, f"a reply to another invocation: {reply}"
        return reply

    def next_reply(self) -> Reply:
        return self._wait(self.api.replies, "posted nothing")

    def wait_for_poll(self) -> float:
        """The time of the runtime's next GET .../next: it finished init (or the previous invocation)."""
        return self._wait(self.api.polls, "never asked for an invocation")

    def _wait(self, source: queue.Queue[T], failure: str) -> T:
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            try:
                return source.get(timeout=0.2)
            except queue.Empty:
                if self.process.poll() is not None and source.empty():
                    raise AssertionError(f"the runtime exited ({self.process.returncode}) and {failure}: "
                                         f"{self.log.read_text()[-3000:]}") from None
        raise AssertionError(f"the runtime {failure} within {WAIT_S:.0f} s: {self.log.read_text()[-3000:]}")


@contextmanager
def runtime_api() -> Iterator[tuple[RuntimeApi, str]]:
    """The fake API on a free loopback port; yields it and its address (AWS_LAMBDA_RUNTIME_API's value)."""
    api = RuntimeApi()
    server = _Server(api)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield api, f"{HOST}:{server.server_address[1]}"
    finally:
        api.events.put(None)  # releases a GET .../next still waiting
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@contextmanager
def lambda_entry(handler: str, env: dict[str, str], log: Path) -> Iterator[Entry]:
    """``python -m awslambdaric HANDLER`` in the task root, with ``env`` (and no other variables but PATH),
    against a fresh fake API; the runtime is killed at exit, as Lambda freezes and then discards it."""
    with runtime_api() as (api, address), log.open("wb") as output:
        lambda_variables = {"AWS_LAMBDA_RUNTIME_API": address, "LAMBDA_TASK_ROOT": str(TASK_ROOT)}
        process = subprocess.Popen(
            [sys.executable, "-m", "awslambdaric", handler], cwd=TASK_ROOT,
            env={"PATH": os.environ["PATH"], **env, **lambda_variables},
            stdout=output, stderr=subprocess.STDOUT,  # a file, not a pipe that could fill and stall it
        )
        try:
            yield Entry(api, process, log)
        finally:
            process.kill()
            process.wait(timeout=10)
