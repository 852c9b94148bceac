"""A local S3 for machines without AWS: moto's server on loopback, on a free port.

boto3 reaches it through the standard ``AWS_ENDPOINT_URL_S3`` variable with dummy
credentials (``local_aws_env``), so the code under test has no test-only path.
Used by the tests, ``make invoke`` on S3 events (``--local-s3``) and
scripts/lambda_memory.py (which runs it in its own process, out of the RSS it measures).
"""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

from moto.server import ThreadedMotoServer

HOST = "127.0.0.1"
STARTUP_TIMEOUT_S = 60.0  # 30 s was not enough on 2 cores beside a training run
STOP_TIMEOUT_S = 10.0  # a child that has not exited by then after SIGTERM is killed


def local_aws_env(endpoint: str) -> dict[str, str]:
    """What boto3 needs to talk to ``endpoint`` instead of AWS (never real credentials)."""
    return {
        "AWS_ENDPOINT_URL_S3": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }


@contextmanager
def moto_in_thread() -> Iterator[str]:
    """moto's server in this process, its access log silenced (werkzeug's); yields its endpoint URL."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address=HOST, port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@contextmanager
def moto_in_subprocess(port: int) -> Iterator[str]:
    """moto's server as a child process (its memory stays out of ours); yields its endpoint URL.

    In a session of its own: a terminal's Ctrl-C reaches the caller alone, which stops moto after what uses it.
    """
    endpoint = f"http://{HOST}:{port}"
    command = [sys.executable, "-m", "moto.server", "-H", HOST, "-p", str(port)]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_until_up(endpoint, server)
        yield endpoint
    finally:
        stop_process(server)


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL if it has not exited within STOP_TIMEOUT_S; reaped either way."""
    process.terminate()
    try:
        process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def free_port() -> int:
    """A port free on loopback now (another process could take it before moto does: rare)."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def wait_until_up(endpoint: str, server: subprocess.Popen) -> None:
    wait_until_answering(f"{endpoint}/moto-api/", server, STARTUP_TIMEOUT_S, "moto's server")


def wait_until_answering(url: str, process: subprocess.Popen, timeout_s: float, name: str) -> None:
    """Until ``url`` answers 2xx, while ``process`` lives; RuntimeError when it exits or ``timeout_s`` passes."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode} (its log is above): is {url}'s port taken?")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:  # refused, not yet listening, or an HTTP error status (urllib's HTTPError)
            time.sleep(0.1)
    raise RuntimeError(f"{name} did not answer {url} within {timeout_s:.0f} s (its log is above)")


def reset(endpoint: str) -> None:
    """Forget every bucket and object (moto's reset API)."""
    request = urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST")
    with urllib.request.urlopen(request, timeout=10):
        pass
