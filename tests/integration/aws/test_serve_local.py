"""`make serve-local` as a person runs it: the upload flow on one machine, nothing of AWS, and a clean Ctrl-C.

The command runs in a session of its own, as in a terminal; the test uploads as the README's large-image snippet
does and runs no upload function itself: the S3 event reaches ``app.lambda_upload.handler`` through the bucket's
notification, moto's queue and the command's worker, or the result stays pending and the test fails. The tests of
the module share one command in file order; the last one stops it with SIGINT sent to its process group, which is
what a terminal's Ctrl-C does.
"""

from __future__ import annotations

import io
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest
import requests
from PIL import Image, ImageOps

from tests.support import EVENTS, REPO

PHOTO = EVENTS / "images" / "person.jpg"
STARTUP_TIMEOUT_S = 420  # moto, the API, the model: ~15 s on a quiet machine, 4-5 min seen on 2 cores beside training
RESULT_TIMEOUT_S = 60  # ~1 s on a quiet machine, 20 s seen beside training
STOP_TIMEOUT_S = 60  # the command gives each child 10 s before it kills it
# The first test pays for the module's command starting: pytest's default 300 s is not always enough.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(STARTUP_TIMEOUT_S + RESULT_TIMEOUT_S + 2 * STOP_TIMEOUT_S + 60)]
URL_LINE = re.compile(rb"^(http://127\.0\.0\.1:\d+)$", re.MULTILINE)
# The suite's own interpreter, already installed: `make test` made the venv's stamps, and a bare pytest run must not
# have make reinstall the venv it is running in.
MAKE_SERVE_LOCAL = ["make", "--no-print-directory", "-o", ".venv/.aws-installed", "-o", ".venv/.serve-installed",
                    "serve-local", f"PY={sys.executable}"]


@dataclass
class Command:
    """A command started as a terminal would, its log, the API's URL it printed, and every process it started."""

    process: subprocess.Popen[bytes]
    log: Path
    url: str
    tree: list[psutil.Process]

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def start(command: list[str], log: Path) -> Command:
    with log.open("wb") as output:  # a file, not a pipe that could fill and stall the command
        process = subprocess.Popen(command, cwd=REPO, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        url = wait_for_url(process, log)
    except BaseException:
        kill_what_is_left(Command(process, log, "", tree_of(process)))
        raise
    return Command(process, log, url, tree_of(process))


def tree_of(process: subprocess.Popen[bytes]) -> list[psutil.Process]:
    """The process and all its descendants, those in sessions of their own too."""
    try:
        leader = psutil.Process(process.pid)
        return [leader, *leader.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def wait_for_url(process: subprocess.Popen[bytes], log: Path) -> str:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        found = URL_LINE.search(log.read_bytes())
        if found:
            return found.group(1).decode()
        if process.poll() is not None:
            raise AssertionError(f"the command exited with {process.returncode}: {log.read_text()[-3000:]}")
        time.sleep(0.5)
    raise AssertionError(f"no URL printed within {STARTUP_TIMEOUT_S} s: {log.read_text()[-3000:]}")


def kill_what_is_left(command: Command) -> None:
    """After a failed start or test: nothing of the command may outlive it."""
    for process in command.tree:
        try:
            process.kill()
        except psutil.NoSuchProcess:
            pass
    command.process.wait(timeout=10)  # reaped by its Popen, which would otherwise warn that it still runs
    psutil.wait_procs(command.tree[1:], timeout=10)


def assert_stopped_cleanly(command: Command) -> None:
    """Every process the command started has exited, and the command said so without a traceback."""
    assert psutil.wait_procs(command.tree, timeout=10)[1] == []
    output = command.output()
    assert "Traceback" not in output and "make: ***" not in output, output[-3000:]
    assert "serve-local: stopped: every process it started has exited" in output


@pytest.fixture(scope="module")
def serve_local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Command]:
    command = start(MAKE_SERVE_LOCAL, tmp_path_factory.mktemp("serve-local") / "serve-local.log")
    try:
        yield command
    finally:
        kill_what_is_left(command)


def upload(api: str, filename: str, data: bytes) -> dict[str, Any]:
    """The README's snippet: sign, then POST the file to S3 (the fields first, the file last)."""
    created = requests.post(f"{api}/uploads", json={"filename": filename, "content_type": "image/jpeg"}, timeout=30)
    assert created.status_code == 201, created.text
    target = created.json()["upload"]
    posted = requests.post(target["url"], data=target["fields"], files={"file": (filename, data, "image/jpeg")},
                           timeout=60)
    assert posted.status_code == 204, posted.text
    return created.json()  # type: ignore[no-any-return]


def poll(api: str, created: dict[str, Any]) -> dict[str, Any]:
    """GET /results/{id} until it is no longer 202 (pending), within RESULT_TIMEOUT_S."""
    deadline = time.monotonic() + RESULT_TIMEOUT_S
    while (answer := requests.get(api + created["result"], timeout=30)).status_code == 202:
        assert time.monotonic() < deadline, f"still pending after {RESULT_TIMEOUT_S} s: nothing ran the function"
        time.sleep(0.5)
    assert answer.status_code == 200, answer.text
    return answer.json()  # type: ignore[no-any-return]


def test_the_process_tree_is_make_the_command_moto_and_the_api(serve_local: Command) -> None:
    commands = [" ".join(process.cmdline()) for process in serve_local.tree]
    assert len(commands) == 4, commands
    assert [any(part in line for line in commands) for part in
            ("make", "-m scripts.serve_local", "-m moto.server -H 127.0.0.1", "-m uvicorn app.main:app")] == [True] * 4


def test_an_upload_is_segmented_by_the_upload_function_on_its_s3_event(serve_local: Command) -> None:
    # GIVEN a name that S3 URL-encodes in its event (the space, the plus)
    with Image.open(PHOTO) as photo:
        size = ImageOps.exif_transpose(photo).size
    # WHEN the file goes up as the README's snippet sends it
    created = upload(serve_local.url, "my photo+1.jpg", PHOTO.read_bytes())
    # THEN the result is done, under the decoded name, and the overlay is a PNG of the photo's size
    body = poll(serve_local.url, created)
    key = f"uploads/{created['id']}/my photo+1.jpg"
    assert (body["status"], body["summary"]["source"]["key"]) == ("done", key)
    assert body["summary"]["image"] == {"width": size[0], "height": size[1]}
    assert body["summary"]["outputs"]["result"] == f"overlays/{created['id']}/my photo+1.jpg.png"
    overlay = requests.get(body["overlay_url"], timeout=30)
    assert overlay.status_code == 200
    image = Image.open(io.BytesIO(overlay.content))
    assert (image.format, image.size) == ("PNG", size)
    assert f"serve-local: upload function: {key} processed" in serve_local.output()


def test_a_file_that_is_not_an_image_ends_rejected(serve_local: Command) -> None:
    body = poll(serve_local.url, upload(serve_local.url, "bad.jpg", b"not an image"))
    assert body["status"] == "rejected" and "not a recognised image" in body["reason"]


def test_ctrl_c_stops_every_process_cleanly(serve_local: Command) -> None:
    """Last in the module: it stops the command the tests above used."""
    # WHEN the terminal's Ctrl-C reaches the foreground process group: make and the command (the API and moto run
    # in sessions of their own, so the command stops them itself, in order)
    os.killpg(serve_local.process.pid, signal.SIGINT)
    status = serve_local.process.wait(timeout=STOP_TIMEOUT_S)
    # THEN make, once its child exited 0, ends by the same SIGINT (GNU make re-raises it: the shell shows 130)
    assert status == -signal.SIGINT
    assert_stopped_cleanly(serve_local)


def test_sigterm_stops_the_module_with_status_0(tmp_path: Path) -> None:
    # GIVEN the command without make; WHEN a supervisor sends SIGTERM to it alone
    command = start([sys.executable, "-m", "scripts.serve_local"], tmp_path / "serve-local.log")
    try:
        command.process.send_signal(signal.SIGTERM)
        # THEN it stops the API and moto and exits 0
        assert command.process.wait(timeout=STOP_TIMEOUT_S) == 0
        assert_stopped_cleanly(command)
    finally:
        kill_what_is_left(command)
