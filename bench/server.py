"""A real uvicorn server in a subprocess on a free loopback port, driven as the old client drives it.

``Server`` starts ``python -m uvicorn app.main:app --app-dir function`` the way ``make serve``
does (from the repository root), always terminates it on exit, and reads its peak RSS (VmHWM) from
/proc before doing so. ``post_image`` is the seed client's call verbatim,
``requests.post(url, files={"file": open(path, "rb")})``, plus a timeout so a hung
server cannot hang the benchmark. ``KeepAliveClient`` is the leanest client there is: what the
service itself adds over loopback, without a client library's own cost per call.
"""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from urllib.parse import urlsplit

import requests

from bench import REPO
from bench.memory import vmhwm_mb

REQUEST_TIMEOUT_S = 120  # a 12 MP request takes seconds on 2 cores; this only bounds a hang
START_DEADLINE_S = 60  # the server must answer its first /predict within this
RETRY_INTERVAL_S = 0.01  # polling step while the server is starting: the resolution of start-to-first-answer


def free_port() -> int:
    """A port the kernel just found free on 127.0.0.1 (released again for uvicorn to bind)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def post_image(url: str, path: Path) -> requests.Response:
    """The seed service's client call."""
    with open(path, "rb") as image:
        response = requests.post(url, files={"file": image}, timeout=REQUEST_TIMEOUT_S)
    response.raise_for_status()
    return response


def timed_post_image(url: str, path: Path) -> tuple[dict[str, float], int]:
    """``post_image``'s answer as ``bench.around`` keeps it: its Server-Timing stages and its size."""
    response = post_image(url, path)
    return server_timing(response), len(response.content)


def server_timing(response: requests.Response | http.client.HTTPResponse) -> dict[str, float]:
    """The server's stage milliseconds from its ``Server-Timing`` header (``decode;dur=1.2, ...``)."""
    headers: Mapping[str, str] | http.client.HTTPMessage = response.headers
    stages: dict[str, float] = {}
    for entry in filter(None, (part.strip() for part in (headers.get("Server-Timing") or "").split(","))):
        name, _, duration = entry.partition(";dur=")
        stages[name] = float(duration)
    return stages


class KeepAliveClient:
    """POST /predict of one image on one keep-alive connection (``http.client``), its multipart body built once.

    The seed's ``requests.post`` builds the multipart body in Python, opens a connection and reads the
    answer in 10 KB pieces on every call: that is the client's cost, not the service's. ``make bench``
    times both, side by side (``http_png`` and ``http_png_seed_client``).
    """

    def __init__(self, url: str, image: Path) -> None:
        parts = urlsplit(url)
        self._path, boundary = parts.path, uuid.uuid4().hex
        head = (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{image.name}"\r\n'
                "Content-Type: application/octet-stream\r\n\r\n")
        self._body = b"".join((head.encode(), image.read_bytes(), f"\r\n--{boundary}--\r\n".encode()))
        self._headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
        self._connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port,
                                                      timeout=REQUEST_TIMEOUT_S)

    def post(self) -> tuple[dict[str, float], int]:
        """One answer's stage timings and size; an answer other than 200 raises. A connection the server closed
        while idle (uvicorn's keep-alive timeout, 5 s by default) is opened again, once."""
        try:
            response = self._exchange()
        except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
            self._connection.close()  # the next request opens a new one
            response = self._exchange()
        body = response.read()
        if response.status != 200:
            raise RuntimeError(f"POST {self._path}: {response.status} {body[:200]!r}")
        return server_timing(response), len(body)

    def close(self) -> None:
        self._connection.close()

    def _exchange(self) -> http.client.HTTPResponse:
        self._connection.request("POST", self._path, self._body, self._headers)
        return self._connection.getresponse()


class Server:
    """``with Server(model, log) as server:`` a fresh uvicorn process; ``server.url`` is POST /predict."""

    def __init__(self, model_path: Path, log_path: Path, app_module: str = "app.main",
                 extra_env: dict[str, str] | None = None, uvicorn_args: tuple[str, ...] = ()) -> None:
        self.port = free_port()
        self._uvicorn_args = uvicorn_args  # e.g. ("--http", "h11"): bench.changes compares uvicorn's parsers
        # Experiments (bench.session_options) serve another module exposing ``app``, with their own variables.
        self._app_module, self._extra_env = app_module, extra_env or {}
        self.url = f"http://127.0.0.1:{self.port}/predict"
        self._model_path, self._log_path = model_path, log_path
        self.process: subprocess.Popen[bytes] | None = None
        self.launched_at = 0.0

    def __enter__(self) -> Server:
        env = {**os.environ, "MODEL_URI": str(self._model_path), **self._extra_env}
        command = [sys.executable, "-m", "uvicorn", f"{self._app_module}:app", "--app-dir", "function",
                   "--host", "127.0.0.1", "--port", str(self.port), *self._uvicorn_args]
        self._log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self._log_path, "wb") as log:
            self.launched_at = time.perf_counter()
            self.process = subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)

    def wait_ready(self) -> float:
        """Seconds from launch until ``GET /`` answers: imports done, model loaded, port open."""
        assert self.process is not None, "use Server in a with-block"
        root = self.url.removesuffix("/predict") + "/"
        while time.perf_counter() - self.launched_at < START_DEADLINE_S:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited with {self.process.returncode}: see {self._log_path}")
            try:
                requests.get(root, timeout=REQUEST_TIMEOUT_S).raise_for_status()
            except requests.ConnectionError:
                time.sleep(RETRY_INTERVAL_S)
                continue
            return time.perf_counter() - self.launched_at
        raise TimeoutError(f"the server did not answer GET / within {START_DEADLINE_S} s: see {self._log_path}")

    def first_answer(self, image: Path) -> tuple[float, float]:
        """Seconds from launch to the first /predict answer, and that request's own seconds."""
        self.wait_ready()
        sent = time.perf_counter()
        post_image(self.url, image)
        done = time.perf_counter()
        return done - self.launched_at, done - sent

    def peak_rss_mb(self) -> float:
        assert self.process is not None, "use Server in a with-block"
        return vmhwm_mb(self.process.pid)
