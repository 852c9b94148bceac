"""A fault injector between boto3 and moto's server: a loopback HTTP proxy that forwards every request, or
answers it with the fault a test asked for.

boto3 reaches it as it reaches any S3 endpoint (``AWS_ENDPOINT_URL_S3``), so the code under test runs
unchanged and botocore meets the faults on a real socket: its retry mode, its HTTP client and its
streaming body see what they would see from S3. A ``Rule`` names a method, a pattern searched in the
decoded path (``/bucket/key``) and a fault, for ``times`` matching requests (None: every one):

- ``Status(503, "SlowDown")``, ``Status(500, "InternalError")``: S3's XML error document, not forwarded
  (https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html: how S3 throttles and fails);
- ``Reset(keep=n)``: forwarded; moto's status, headers and ``n`` bytes of its body reach the client,
  then the connection is reset (an RST: ``SO_LINGER`` 0), as a network dropping a download does;
- ``Short(keep=n)``: the same, then the connection closed cleanly: a body shorter than its
  Content-Length, as a proxy or load balancer cut off mid-answer leaves it;
- ``Drop()``: not forwarded, no answer: the connection reset, as a network failing mid-request does.

``requests`` lists every request seen, with the fault it got (None: forwarded as it was).
"""

from __future__ import annotations

import fcntl
import http.client
import re
import socket
import struct
import termios
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

ERROR_XML = ('<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{message}</Message>'
             "<RequestId>injected-fault</RequestId></Error>")
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length"}
SENT_WAIT_S = 5.0  # at most this long for the client to acknowledge the bytes sent before a reset


@dataclass(frozen=True)
class Status:
    """An S3 error answer instead of the real one."""

    status: int
    code: str
    message: str = "injected by tests.faults"


@dataclass(frozen=True)
class Reset:
    """The real answer's headers and ``keep`` body bytes, then a connection reset."""

    keep: int


@dataclass(frozen=True)
class Short:
    """The real answer's headers (its Content-Length too) and ``keep`` body bytes, then a clean close."""

    keep: int


@dataclass(frozen=True)
class Drop:
    """No answer at all: the connection reset once the request is read."""


Fault = Status | Reset | Short | Drop


@dataclass
class Rule:
    """``fault`` for the next ``times`` requests (None: all) whose method is ``method`` and path matches ``path``."""

    method: str
    path: str
    fault: Fault
    times: int | None = 1

    def take(self, method: str, path: str) -> Fault | None:
        if method != self.method or not re.search(self.path, path) or self.times == 0:
            return None
        if self.times is not None:
            self.times -= 1
        return self.fault


@dataclass(frozen=True)
class Seen:
    """One request the proxy received, and the fault it answered with (None: forwarded)."""

    method: str
    path: str
    fault: Fault | None


class FaultProxy(ThreadingHTTPServer):
    """The proxy's server: ``upstream`` is moto's endpoint; ``rules`` and ``requests`` are the tests'."""

    daemon_threads = True

    def __init__(self, upstream: str) -> None:
        super().__init__(("127.0.0.1", 0), ProxyHandler)
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.rules: list[Rule] = []
        self.requests: list[Seen] = []
        self.lock = threading.Lock()

    @property
    def endpoint(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"

    def inject(self, method: str, path: str, fault: Fault, times: int | None = 1) -> Rule:
        rule = Rule(method, path, fault, times)
        with self.lock:
            self.rules.append(rule)
        return rule

    def clear(self) -> None:
        with self.lock:
            self.rules.clear()
            self.requests.clear()

    def decide(self, method: str, path: str) -> Fault | None:
        """The first rule that takes this request, recorded with it."""
        with self.lock:
            fault = next((f for f in (rule.take(method, path) for rule in self.rules) if f is not None), None)
            self.requests.append(Seen(method, path, fault))
        return fault

    def seen(self, method: str, path: str) -> list[Seen]:
        """The requests of ``method`` whose decoded path matches ``path``, in order."""
        with self.lock:
            return [r for r in self.requests if r.method == method and re.search(path, r.path)]


class ProxyHandler(BaseHTTPRequestHandler):
    """Forwards one request to moto, or answers it with its fault."""

    protocol_version = "HTTP/1.1"  # keep-alive, as botocore's connection pool expects
    server: FaultProxy

    def do_GET(self) -> None:  # noqa: N802 (http.server's names)
        self.relay()

    do_PUT = do_POST = do_HEAD = do_DELETE = do_GET  # noqa: N815

    def relay(self) -> None:
        body = self.read_body()
        fault = self.server.decide(self.command, unquote(urlsplit(self.path).path))
        if isinstance(fault, Drop):
            self.reset()
            return
        if isinstance(fault, Status):
            self.answer(fault.status, {"Content-Type": "application/xml"},
                        ERROR_XML.format(code=fault.code, message=fault.message).encode())
            return
        status, headers, content = self.forward(body)
        if fault is None:
            self.answer(status, headers, content)
        else:
            self.cut(status, headers, content, fault)

    def read_body(self) -> bytes:
        """The request's body: by Content-Length, or chunk by chunk (RFC 9112 section 7.1)."""
        if self.headers.get("Transfer-Encoding", "").lower() != "chunked":
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))
        chunks = []
        while size := int(self.rfile.readline().split(b";")[0], 16):
            chunks.append(self.rfile.read(size))
            self.rfile.readline()
        while self.rfile.readline() not in (b"\r\n", b"\n", b""):  # trailers
            pass
        return b"".join(chunks)

    def forward(self, body: bytes) -> tuple[int, dict[str, str], bytes]:
        headers = {name: value for name, value in self.headers.items() if name.lower() not in HOP_BY_HOP}
        if body or self.command in ("PUT", "POST"):
            headers["Content-Length"] = str(len(body))
        upstream = http.client.HTTPConnection(*self.server.upstream, timeout=60)
        try:
            upstream.request(self.command, self.path, body=body, headers=headers)
            response = upstream.getresponse()
            content = response.read()
            kept = {name: value for name, value in response.getheaders() if name.lower() not in HOP_BY_HOP}
            if self.command == "HEAD":  # moto's Content-Length is the object's, with no body
                kept["Content-Length"] = response.getheader("Content-Length", "0")
            return response.status, kept, content
        finally:
            upstream.close()

    def answer(self, status: int, headers: dict[str, str], content: bytes) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        if "Content-Length" not in headers:
            self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(content)

    def cut(self, status: int, headers: dict[str, str], content: bytes, fault: Reset | Short) -> None:
        """The answer as moto gave it, its Content-Length too, but only ``fault.keep`` bytes of its body."""
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        self.wfile.write(content[: fault.keep])
        self.wfile.flush()
        self.close_connection = True
        if isinstance(fault, Reset):
            wait_until_acknowledged(self.connection)
            self.reset()

    def reset(self) -> None:
        """Close with an RST: SO_LINGER on with 0 s makes close() drop the connection (socket(7))."""
        self.close_connection = True
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (http.server's signature)
        pass  # the tests read ``requests``; an access log on stderr would only be noise


def wait_until_acknowledged(connection: socket.socket) -> None:
    """Until the peer's TCP has acknowledged every byte sent, so the reset comes after them, mid-body. TIOCOUTQ
    is tcp(7)'s SIOCOUTQ, which on Linux counts the bytes not yet acknowledged (``write_seq - snd_una``)."""
    deadline = time.monotonic() + SENT_WAIT_S
    queued = bytearray(4)
    while time.monotonic() < deadline:
        fcntl.ioctl(connection.fileno(), termios.TIOCOUTQ, queued)
        if int.from_bytes(queued, "little") == 0:
            return
        time.sleep(0.01)


@contextmanager
def fault_proxy(upstream: str) -> Iterator[FaultProxy]:
    """The proxy on a free loopback port in front of ``upstream``, served from a thread until the block ends."""
    proxy = FaultProxy(upstream)
    thread = threading.Thread(target=proxy.serve_forever, name="fault-proxy", daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        proxy.shutdown()
        proxy.server_close()
        thread.join(timeout=10)
