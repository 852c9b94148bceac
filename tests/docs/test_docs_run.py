"""Documentation that cannot drift (issue 23): every command and program in the documents runs in `make test`.

What runs. The documents are markdown_blocks.DOCUMENTS (README.md and docs/*.md). A block
runs by its fence's language alone: ```bash/```sh/```shell and ```python/```py run; ```json, ```text, ```diff,
```toml, ```yaml and ```csv are output samples or file contents and never run; any other label, or none, fails
test_fences_and_markers (label it). A block is skipped only by a marker on the lines before it,
``<!-- doctest: skip - needs an AWS account -->``, whose reason names AWS (always skipped: no test reaches a real
account), Docker or a GPU (skipped only where this machine lacks them); the skip's reason repeats the marker. Every
block, skipped or not, must at least parse (bash -n, compile). Two more markers change what a shell block's make
does, each with its reason: ``<!-- doctest: run - about a minute on 2 CPUs -->`` runs the long verbs
(runner.LONG_VERBS: the model's loop, benchmarks) for real, for a recipe short by design; ``<!-- doctest: dry-run -
rebuilds .venv from the network -->`` runs none of the block's commands but its make lines, every verb with make -n,
for a block that would replace the venv the suite runs in.

How. Each block runs in its own directory, a copy of the checkout's files (tracked and new, as on disk; the venv
linked), so the files it names exist (events/images/person.jpg) and what it writes never dirties the checkout; with
a reader's environment (the venv activated, no AWS or service variables); against a real server whose URL replaces
http://127.0.0.1:8000: `make serve`, started once per session on a free loopback port, or the command a
``<!-- doctest: server - make serve-local -->`` marker names (once per session too). A shell block runs under
``set -euo pipefail``, so every command's exit status counts (``A && B`` lines get ``|| exit $?``: errexit alone
lets a failed A pass), and with prelude.sh's two checks: curl fails on an HTTP error (--fail-with-body), and a curl
line whose comment names a status (``# 401``) must get that one. A
python block runs with the venv's python. A block that fails, or runs past runner.BLOCK_TIMEOUT_S, fails the test
with its output and its server's log.

Commands that are long or recursive. A block's own `[NAME=value ...] make serve` (serve-local, serve-gpu) line is
checked by the server it starts: the lines before it run first, then the test starts that same command (its variables
and arguments, the test's port) in the block's directory, waits for /health to answer 200, and runs the rest of the
block against it, as a reader types it in a second terminal. A `make VERB` for a verb in runner.DRY_RUN_VERBS (the
suite itself: test, check, lint; runs of minutes to hours: mutate, bench, fuzz, api-fuzz, load, lambda-memory and the
model's data/train/train-person/export/evaluate/ensemble/quantize; the network: audit, lambda-size; Docker/AWS:
build, deploy, publish-model; clean) runs as `make -n VERB ARGS...`: make must know
the verb, and every NAME=value given must appear in what make would run, so a renamed verb or a variable the
Makefile no longer reads fails; the recipe is printed in the log. Every other verb runs for real (with the venv's
stamps taken as they are: make never reinstalls the venv the suite runs in). `sam` and `aws` need an account and
Docker: their blocks carry an AWS skip marker.

Mechanism, chosen by measurement on docs/*.md (12 blocks that run, 9 of them shell): pytest-markdown-docs 0.9.2
collected 3 (```python fences only; a skip is a ```python notest info string, not a visible marker with a reason;
no URL substitution short of a custom runner; the code runs inside pytest's own process); phmdoctest 1.4.0 made
2 tests of docs/api.md's 6 (python only, as a generated file to keep in step). Neither runs a shell block, most
of what the documents show, nor starts a server for one. This collector (markdown_blocks.py) reads all 79 fences
of the 7 documents in 2 ms of CPU, collects all 12, and runs the 7 that need no AWS account or GPU.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path

import pytest

from tests.docs.markdown_blocks import (
    DOCUMENTED_URL,
    MAKE_SERVE,
    SHELL_LANGUAGES,
    Block,
    collect,
    dry_run_script,
    parse_serve,
    problems,
    python_source,
    shell_script,
    split_at_serve,
)
from tests.docs.runner import (
    BLOCK_TIMEOUT_S,
    STARTUP_TIMEOUT_S,
    STOP_TIMEOUT_S,
    ServerPool,
    copy_checkout,
    dry_run_verbs,
    run_python,
    run_shell,
    sandbox,
    serve,
    skip_reason,
    tail,
)

BLOCKS, ORPHAN_MARKERS = collect()
RUNNABLE = [block for block in BLOCKS if block.runs]


@pytest.fixture(scope="session")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_checkout(tmp_path_factory.mktemp("checkout"))


@pytest.fixture(scope="session")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerPool]:
    with ExitStack() as stack:
        yield ServerPool(stack, tmp_path_factory.mktemp("server-logs"))


def test_fences_and_markers() -> None:
    """Every fence labelled with a language that says whether it runs; every marker valid and before a block."""
    found = [problem for block in BLOCKS for problem in problems(block)]
    found += [f"line {marker.line}: 'doctest: {marker.kind} - {marker.text}' stands before no block"
              for marker in ORPHAN_MARKERS]
    assert not found, "\n".join(found)


@pytest.mark.parametrize("block", RUNNABLE, ids=lambda block: block.id)
def test_block_parses(block: Block, tmp_path: Path) -> None:
    """Skipped blocks too: a reader copies them."""
    if block.language in SHELL_LANGUAGES:
        (tmp_path / "block.sh").write_text(block.source)
        checked = subprocess.run(["bash", "-n", str(tmp_path / "block.sh")], capture_output=True, text=True)
        assert checked.returncode == 0, f"{block.id}: {checked.stderr}"
    else:
        compile(block.source, block.id, "exec")


@pytest.mark.slow
@pytest.mark.timeout(2 * BLOCK_TIMEOUT_S + STARTUP_TIMEOUT_S + 2 * STOP_TIMEOUT_S + 60)  # one server, two parts at most
@pytest.mark.parametrize("block", RUNNABLE, ids=lambda block: block.id)
def test_block_runs(block: Block, checkout: Path, servers: ServerPool, tmp_path: Path) -> None:
    reason = skip_reason(block)
    if reason:
        pytest.skip(reason)
    cwd = sandbox(checkout, tmp_path / "cwd")
    own = block.serve_lines()
    if own:  # the block's own `make serve...` line, typed where the block runs once the lines before it have run
        before, after = split_at_serve(block)
        if before.source.strip():  # no server yet; a scratch folder of its own, so that its log is kept
            scratch = tmp_path / "before"
            scratch.mkdir()
            check(before, DOCUMENTED_URL, cwd, tmp_path / "server.log", scratch)
        with serve(own[0], cwd, tmp_path / "server.log") as url:
            check(after, url, cwd, tmp_path / "server.log", tmp_path)
        return
    named = block.marker("server")
    command = parse_serve(named.text) if named else MAKE_SERVE
    assert command, f"{block.id}: test_fences_and_markers says what is wrong with its server marker"
    check(block, servers.url(command), cwd, servers.log(command), tmp_path)


def check(block: Block, url: str, cwd: Path, server_log: Path, scratch: Path) -> None:
    if block.language in SHELL_LANGUAGES:
        shown = replace(block, source=dry_run_script(block.source)) if block.marker("dry-run") else block
        outcome = run_shell(shell_script(shown, url), cwd, scratch, dry_run_verbs(block))
    else:
        outcome = run_python(python_source(block, url), cwd, scratch)
    status = "timed out" if outcome.returncode is None else f"exited {outcome.returncode}"
    assert outcome.returncode == 0, (
        f"{block.id} {status} (line N of the output's script is line {block.line} + N of the document)\n"
        f"--- output\n{outcome.output[-6000:]}\n--- server log ({server_log})\n{tail(server_log)}")
