"""Running a documented block as a reader would: in a copy of the checkout, against a real server, in a fresh shell."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import zlib
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import psutil

from app.core.settings import Settings
from scripts.local_s3 import free_port
from tests.docs.markdown_blocks import SERVE_VERBS, Block, ServeCommand
from tests.servers import wait_until_ready
from tests.support import REPO

PRELUDE = Path(__file__).with_name("prelude.sh")
VENV = REPO / ".venv"
# The verbs that run for minutes to hours: dry-run, except in a block whose `doctest: run` marker says it is short.
LONG_VERBS = (
    "mutate", "bench", "fuzz", "api-fuzz", "load", "lambda-memory",  # long runs by design (make test runs short ones)
    "data", "train", "train-person", "export", "evaluate", "ensemble", "quantize",  # the model's loop: hours
)
# The verbs a block's `make VERB` is checked with `make -n` for instead of run, and why (docstring of
# test_docs_run.py): the suite itself, runs of minutes to hours, what needs the network or AWS, what destroys.
DRY_RUN_VERBS = (
    "test", "check", "lint",  # the suite, or part of it: it would run this test again
    *LONG_VERBS,
    "audit", "lambda-size",  # PyPI's advisory data, pip resolving for Lambda: the network
    "build", "deploy", "publish-model",  # Docker, the SAM CLI, an AWS account
    "clean",  # removes the venv and outputs that later commands need
)
BLOCK_TIMEOUT_S = 240  # the upload flow polled until done, or README's 1-minute training, on 2 busy cores
STARTUP_TIMEOUT_S = 300  # make serve-local took 175 s to answer /health under `nice -n 19` beside a training run
STOP_TIMEOUT_S = 60  # serve-local's orderly stop (its worker, the API, moto) took ~45 s on the same machine
VENV_STAMP = re.compile(r"^\$\(VENV\)/(\.[\w-]+-installed):", re.MULTILINE)  # the Makefile's venv stamps


def reader_environment() -> dict[str, str]:
    """This process's environment as a reader's fresh shell: the venv's bin first on PATH (activated), and no AWS
    variable (nothing may reach a real account) nor any of the service's settings (a block sets what it needs)."""
    settings = set(Settings.model_fields)
    env = {name: value for name, value in os.environ.items() if not name.startswith("AWS_") and name not in settings}
    env["PATH"] = f"{VENV / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return env


def copy_checkout(target: Path) -> Path:
    """The checkout's files as they are on disk (tracked, and new ones git does not ignore), their times kept so make
    finds the venv's stamps up to date, and the venv linked: a copy that a block may write into."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            capture_output=True, check=True).stdout.decode()
    for name in filter(None, listed.split("\0")):
        if (REPO / name).is_file():  # a tracked file deleted on disk is not there for a reader either
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, target / name)
    (target / ".venv").symlink_to(VENV)
    return target


@cache
def keep_venv() -> tuple[str, ...]:
    """make's ``-o`` for every venv stamp the Makefile has, there or not: make takes the venv the suite runs in as it
    is, and never installs into it (a stamp it lacks included)."""
    stamps = VENV_STAMP.findall((REPO / "Makefile").read_text())
    return tuple(word for stamp in stamps for word in ("-o", f"{VENV.name}/{stamp}"))


def sandbox(checkout: Path, target: Path) -> Path:
    """A block's own working directory: the copy's files hard-linked (new files are the block's alone)."""
    shutil.copytree(checkout, target, symlinks=True, copy_function=os.link)
    return target


def make_arguments(command: ServeCommand, port: int) -> list[str]:
    """The command's make arguments with the test's port: PORT= for serve and serve-gpu, --port in ARGS= for
    serve-local (given last, so it wins over a port the document names)."""
    if command.verb != "serve-local":
        return [*command.args, f"PORT={port}"]
    given = [word.split("=", 1)[1] for word in command.args if word.startswith("ARGS=")]
    others = [word for word in command.args if not word.startswith("ARGS=")]
    return [*others, "ARGS=" + " ".join([*given, "--port", str(port)])]


@contextmanager
def serve(command: ServeCommand, cwd: Path, log: Path) -> Iterator[str]:
    """The command typed in ``cwd`` on a free loopback port; yields its URL once /health is 200, stops every process
    it started at the end (those in sessions of their own too, as serve-local's children are)."""
    assert command.verb in SERVE_VERBS, command
    port = free_port()
    argv = ["make", "--no-print-directory", *keep_venv(), command.verb, *make_arguments(command, port)]
    with log.open("wb") as output:  # a file, not a pipe that could fill and stall the server
        server = subprocess.Popen(argv, cwd=cwd, env={**reader_environment(), **dict(command.env)}, stdout=output,
                                  stderr=subprocess.STDOUT, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_ready(url, server, log, STARTUP_TIMEOUT_S)
        yield url
    finally:
        stop(server)


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the process group, as a terminal's window closing would; whatever is left after STOP_TIMEOUT_S
    (children in sessions of their own included) is killed."""
    try:
        tree = [psutil.Process(process.pid), *psutil.Process(process.pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        tree = []
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    _, alive = psutil.wait_procs(tree, timeout=STOP_TIMEOUT_S)
    for left in alive:
        left.kill()
    process.wait()


@dataclass
class ServerPool:
    """The servers blocks share, each started once, on first use, in the checkout, by the command that names it."""

    stack: ExitStack
    folder: Path
    urls: dict[ServeCommand, str] = field(default_factory=dict)
    failures: dict[ServeCommand, str] = field(default_factory=dict)  # not tried again for the next block

    def url(self, command: ServeCommand) -> str:
        if command in self.failures:
            raise AssertionError(f"an earlier block's start failed: {self.failures[command]}")
        if command not in self.urls:
            try:
                self.urls[command] = self.stack.enter_context(serve(command, REPO, self.log(command)))
            except AssertionError as error:
                self.failures[command] = str(error)
                raise
        return self.urls[command]

    def log(self, command: ServeCommand) -> Path:
        return self.folder / f"{command.verb}-{zlib.crc32(repr(command).encode()):08x}.log"


@dataclass(frozen=True)
class Outcome:
    returncode: int | None  # None: killed at BLOCK_TIMEOUT_S
    output: str


def run_shell(script: str, cwd: Path, scratch: Path, dry_run: str = " ".join(DRY_RUN_VERBS)) -> Outcome:
    """``bash script`` in ``cwd`` with prelude.sh sourced first, so the script's line N is the block's line N; its
    make checks the verbs in ``dry_run`` (``*``: every verb) with make -n."""
    path = scratch / "block.sh"
    path.write_text(script)
    env = {**reader_environment(), "BASH_ENV": str(PRELUDE), "DOC_SERVE_VERBS": " ".join(SERVE_VERBS),
           "DOC_DRY_RUN_VERBS": dry_run, "DOC_KEEP_VENV": " ".join(keep_venv())}
    return run(["bash", str(path)], cwd, env, scratch / "block.log")


def dry_run_verbs(block: Block) -> str:
    """The verbs the block's make checks with make -n: every one in a dry-run block, all but LONG_VERBS in a block
    marked run, else DRY_RUN_VERBS."""
    if block.marker("dry-run"):
        return "*"
    short = block.marker("run") is not None
    return " ".join(verb for verb in DRY_RUN_VERBS if not (short and verb in LONG_VERBS))


def run_python(source: str, cwd: Path, scratch: Path) -> Outcome:
    """The venv's python on the block, in ``cwd``, so the traceback's line N is the block's line N."""
    path = scratch / "block.py"
    path.write_text(source)
    return run([sys.executable, str(path)], cwd, reader_environment(), scratch / "block.log")


def run(argv: list[str], cwd: Path, env: dict[str, str], log: Path) -> Outcome:
    """Runs to the end or BLOCK_TIMEOUT_S; anything the block left running in its session is stopped after."""
    with log.open("wb") as output:
        process = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=output,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    try:
        returncode: int | None = process.wait(timeout=BLOCK_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        returncode = None
    finally:
        stop(process)
    return Outcome(returncode, log.read_text(errors="replace"))


@cache
def have_docker() -> bool:
    """A Docker daemon this user can reach (a client alone is not Docker)."""
    return bool(shutil.which("docker")) and subprocess.run(["docker", "info"], capture_output=True,
                                                            timeout=30).returncode == 0


@cache
def have_gpu() -> bool:
    return bool(shutil.which("nvidia-smi")) and subprocess.run(["nvidia-smi", "-L"], capture_output=True,
                                                                timeout=30).returncode == 0


def skip_reason(block: Block) -> str | None:
    """The block's skip marker, where it holds on this machine: AWS always (no test reaches a real account); Docker
    and a GPU only where this machine lacks them."""
    marker = block.marker("skip")
    if marker is None:
        return None
    text = marker.text
    lacking = "AWS" in text or ("Docker" in text and not have_docker()) or ("GPU" in text and not have_gpu())
    return f"{block.id}: {text}" if lacking else None


def tail(log: Path, characters: int = 3000) -> str:
    return log.read_text(errors="replace")[-characters:] if log.exists() else "(no log)"
