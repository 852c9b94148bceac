"""The collector and the prelude that test_docs_run.py relies on: what counts as a block, a marker, a serve line, and
that the prelude's make and curl checks fail where a reader's command would."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.docs.markdown_blocks import (
    ServeCommand,
    dry_run_script,
    parse_serve,
    problems,
    read_blocks,
    shell_script,
    split_at_serve,
    stop_after_and_lists,
)
from tests.docs.runner import DRY_RUN_VERBS, LONG_VERBS, dry_run_verbs, make_arguments, run_shell
from tests.support import REPO

DOCUMENT = """\
# Title

<!-- doctest: skip - needs an AWS account -->

```bash
aws s3 ls
```

1. A step:

   ```json
   {"id": 1}
   ```

<!-- doctest: server - make serve-local -->
````python
print("```")
````

<!-- doctest: skip - needs AWS -->
A paragraph, not a block.

```
a diagram
```
"""


def test_blocks_their_lines_languages_and_markers() -> None:
    blocks, orphans = read_blocks(DOCUMENT, "doc.md")

    assert [(block.line, block.language, block.source) for block in blocks] == [
        (5, "bash", "aws s3 ls\n"),
        (11, "json", '{"id": 1}\n'),  # the list's indentation removed
        (16, "python", 'print("```")\n'),  # a longer fence holds a shorter one
        (23, "", "a diagram\n"),
    ]
    assert [[(marker.kind, marker.text) for marker in block.markers] for block in blocks] == [
        [("skip", "needs an AWS account")], [], [("server", "make serve-local")], []]
    assert [(marker.line, marker.text) for marker in orphans] == [(20, "needs AWS")]


@pytest.mark.parametrize(
    ("markdown", "expected"),
    [
        ("```bash\nls\n```\n", []),
        ("```\nls\n```\n", ["doc.md:1: a fence labelled 'nothing'"]),
        ("```console\n$ ls\n```\n", ["doc.md:1: a fence labelled 'console'"]),
        ("<!-- doctest: skip - slow -->\n```bash\nls\n```\n", ["doc.md:2: skip reason 'slow' names neither"]),
        ("<!-- doctest: skip - needs Docker -->\n```bash\nls\n```\n", []),
        ("<!-- doctest: ignore -->\n```bash\nls\n```\n", ["doc.md:2: unknown marker 'doctest: ignore'"]),
        ("<!-- doctest: skip - needs AWS -->\n```json\n{}\n```\n", ["doc.md:2: a 'doctest: skip' marker on a block"]),
        ("<!-- doctest: server - make test -->\n```bash\nls\n```\n", ["doc.md:2: 'doctest: server - make test'"]),
        ("```bash\nmake serve\nmake serve-local\n```\n", ["doc.md:1: more than one make serve line"]),
        ("<!-- doctest: run - a minute -->\n```bash\nmake train\n```\n", []),
        ("<!-- doctest: run -->\n```bash\nmake train\n```\n", ["doc.md:2: 'doctest: run' without a reason"]),
        ("<!-- doctest: dry-run - the venv -->\n```python\n1\n```\n", ["doc.md:2: a 'doctest: dry-run' marker on a"]),
    ],
)
def test_problems(markdown: str, expected: list[str]) -> None:
    blocks, _ = read_blocks(markdown, "doc.md")

    found = problems(blocks[0])

    assert len(found) == len(expected) and all(a.startswith(b) for a, b in zip(found, expected, strict=True)), found


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("make serve", ServeCommand((), "serve", ())),
        ("make serve   # creates .venv", ServeCommand((), "serve", ())),
        ("API_KEYS=k-1,k-2 make serve", ServeCommand((("API_KEYS", "k-1,k-2"),), "serve", ())),
        ('make serve-local ARGS="--port 8000"', ServeCommand((), "serve-local", ("ARGS=--port 8000",))),
        ("make serve-gpu HOST=0.0.0.0", ServeCommand((), "serve-gpu", ("HOST=0.0.0.0",))),
        ("make serve &", None),  # not a line of its own: the prelude's make refuses it
        ("make serve && curl http://127.0.0.1:8000/", None),
        ("make test", None),
        ("# make serve", None),
        ("echo make serve", None),
    ],
)
def test_parse_serve(line: str, expected: ServeCommand | None) -> None:
    assert parse_serve(line) == expected


def test_shell_script_keeps_the_lines_of_the_document() -> None:
    blocks, _ = read_blocks("```bash\nAPI_KEYS=k make serve\ncurl http://127.0.0.1:8000/predict   # 401\n"
                            "curl http://127.0.0.1:8000/   # {\"message\": ...}\n```\n", "doc.md")

    script = shell_script(blocks[0], "http://127.0.0.1:5000")

    assert script.splitlines() == [
        "# started by the test: API_KEYS=k make serve",
        "DOC_EXPECT_STATUS=401 curl http://127.0.0.1:5000/predict   # 401",
        'curl http://127.0.0.1:5000/   # {"message": ...}',
    ]


def test_the_lines_before_a_serve_line_run_before_it() -> None:
    blocks, _ = read_blocks("```bash\nmake train\nMODEL_URI=m.onnx make serve\ncurl http://127.0.0.1:8000/\n```\n",
                            "doc.md")

    before, after = split_at_serve(blocks[0])

    assert (before.source, after.source) == ("make train\n\n\n",
                                             "\nMODEL_URI=m.onnx make serve\ncurl http://127.0.0.1:8000/\n")


def test_a_dry_run_block_keeps_only_its_make_lines() -> None:
    script = "python3 -m venv .venv && pip install \\\n  torch\nmake test   # all of it\n\nX=1 make lint\n"

    assert dry_run_script(script).splitlines() == [
        "# dry-run, not run: python3 -m venv .venv && pip install \\",
        "# dry-run, not run:   torch",
        "make test   # all of it",
        "",
        "X=1 make lint",
    ]


@pytest.mark.parametrize(
    ("marker", "dry_run"),
    [
        ("", set(DRY_RUN_VERBS)),
        ("<!-- doctest: run - a minute -->\n", set(DRY_RUN_VERBS) - set(LONG_VERBS)),
        ("<!-- doctest: dry-run - the venv -->\n", {"*"}),
    ],
)
def test_markers_choose_the_verbs_make_only_shows(marker: str, dry_run: set[str]) -> None:
    blocks, _ = read_blocks(f"{marker}```bash\nmake train\n```\n", "doc.md")

    assert set(dry_run_verbs(blocks[0]).split()) == dry_run


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ("a && b\n", "a && b || exit $?\n"),
        ("a && b   # the stack's URL\nc\n", "a && b || exit $?   # the stack's URL\nc\n"),
        ("a &&\n  b\n", "a &&\n  b || exit $?\n"),  # the list goes on after a trailing &&
        ("a \\\n  && b", "a \\\n  && b || exit $?"),
        ("a || b && c\n", "a || b && c\n"),  # a fallback is the document's own
        ("a && b &\n", "a && b &\n"),
        ("echo 'x && y'\npython3 -c 'import os\nos && 1'\n", "echo 'x && y'\npython3 -c 'import os\nos && 1'\n"),
        ('echo "a\\" && b"\n', 'echo "a\\" && b"\n'),
        ("echo ${#x} && b\n", "echo ${#x} && b || exit $?\n"),
    ],
)
def test_and_lists_stop_at_a_failure(script: str, expected: str) -> None:
    assert stop_after_and_lists(script) == expected


def test_a_failure_inside_an_and_list_fails_the_block(tmp_path: Path) -> None:
    blocks, _ = read_blocks("```bash\nfalse && true\necho reached\n```\n", "doc.md")

    outcome = run_shell(shell_script(blocks[0], "http://127.0.0.1:1"), tmp_path, tmp_path)

    assert (outcome.returncode, "reached" in outcome.output) == (1, False), outcome.output


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        (ServeCommand((), "serve", ("HOST=0.0.0.0",)), ["HOST=0.0.0.0", "PORT=5000"]),
        (ServeCommand((), "serve-local", ()), ["ARGS=--port 5000"]),
        (ServeCommand((), "serve-local", ("ARGS=--port 8000",)), ["ARGS=--port 8000 --port 5000"]),
    ],
)
def test_make_arguments_put_the_server_on_the_tests_port(command: ServeCommand, expected: list[str]) -> None:
    assert make_arguments(command, 5000) == expected


@pytest.mark.parametrize(
    ("line", "returncode", "said"),
    [
        ("make bench ARGS=--quick", 0, "-m bench.run --quick"),  # a dry-run verb: printed, not run
        ("make train CKPT=runs/a.pt", 1, "CKPT=runs/a.pt does not reach what make would run"),
        ("make no-such-verb", 2, "No rule to make target"),
        ("make serve && true", 2, "must be a line of its own"),
    ],
)
def test_prelude_make(line: str, returncode: int, said: str, tmp_path: Path) -> None:
    outcome = run_shell(f"{line}\n", REPO, tmp_path)  # make -n and a make that fails at once: nothing is written

    assert (outcome.returncode, said in outcome.output) == (returncode, True), outcome.output


def test_prelude_make_shows_every_verb_in_a_dry_run_block(tmp_path: Path) -> None:
    outcome = run_shell("make segment IN=a.jpg\n", REPO, tmp_path, dry_run="*")  # a verb that otherwise runs

    assert (outcome.returncode, "doctest: make -n segment IN=a.jpg" in outcome.output) == (0, True), outcome.output


class Answers(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # http.server's name for it
        self.send_response(401 if self.path == "/secret" else 200)
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, format: str, *args: object) -> None:  # quiet: no line per request on stderr
        pass


@pytest.fixture
def web() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Answers)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    thread.join()
    server.server_close()


@pytest.mark.parametrize(
    ("line", "returncode"),
    [
        ("curl -sS {web}/", 0),
        ("curl -sS {web}/secret", 22),  # an HTTP error fails the block, as it fails the reader
        ("curl -sS {web}/secret   # 401", 0),  # unless the line says that is the answer
        ("curl -sS {web}/   # 401", 1),
        ("curl -sS -F file=@photo.jpg {web}/", 26),  # a file the block names and the checkout lacks
        ("curl -sS {web}/ | false; echo the rest", 1),  # pipefail, then errexit: nothing after a failure runs
    ],
)
def test_prelude_curl(line: str, returncode: int, web: str, tmp_path: Path) -> None:
    blocks, _ = read_blocks(f"```bash\n{line.format(web=web)}\n```\n", "doc.md")

    outcome = run_shell(shell_script(blocks[0], web), tmp_path, tmp_path)

    assert outcome.returncode == returncode, outcome.output
