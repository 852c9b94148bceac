"""`make serve` as a test's real server: a subprocess on a free loopback port, stopped with its process group."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

from scripts.local_s3 import free_port
from tests.support import REPO

STARTUP_TIMEOUT_S = 60


@contextmanager
def make_serve(env: dict[str, str], log: Path) -> Iterator[str]:
    """``make serve`` typed in the checkout with ``env`` on top of ours; yields its base URL once /health is 200."""
    port = free_port()
    with log.open("wb") as output:  # a file, not a pipe that could fill and stall the server
        server = subprocess.Popen(
            ["make", "--no-print-directory", "serve", f"PORT={port}", f"PYTHON={sys.executable}"],
            cwd=REPO, env={**os.environ, **env}, stdout=output, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until_ready(base, server, log)
        yield base
    finally:  # make and the server it started, as Ctrl-C in a terminal would stop both
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def wait_until_ready(
    base: str, server: subprocess.Popen[bytes], log: Path, timeout_s: float = STARTUP_TIMEOUT_S
) -> None:
    """Until /health is 200; fails at once if the server exits or answers 503 (the model is loaded before the
    server answers at all, so a 503 is a load that failed: a missing file, a bad MODEL_URI)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"{server.args!r} exited with {server.returncode}: {log.read_text()[-2000:]}")
        try:
            health = requests.get(f"{base}/health", timeout=5)
            if health.status_code == 200:
                return
            raise AssertionError(f"{server.args!r}: /health answered {health.status_code}: {health.text}")
        except requests.ConnectionError:
            time.sleep(0.2)
    raise AssertionError(f"{server.args!r}: /health not 200 within {timeout_s} s: {log.read_text()[-2000:]}")
