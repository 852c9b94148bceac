"""The code blocks of the documents as a reader meets them: which run, which are output, what their markers say.

Whether a block runs is decided by its fence's language alone: ```bash, ```sh and ```shell are commands, ```python
and ```py are programs; ```json, ```text, ```diff, ```toml, ```yaml and ```csv are output samples or file contents
and never run. Any other fence, one with no language included, is refused (``problems``): a command can never pass
for output by being left unlabelled. A marker is an HTML comment on the lines right before a fence:

    <!-- doctest: skip - needs an AWS account -->    not run; its reason must name AWS, Docker or a GPU
    <!-- doctest: server - make serve-local -->      run against that command's server instead of make serve's
    <!-- doctest: run - about a minute on 2 CPUs --> its long make verbs (runner.LONG_VERBS) run for real
    <!-- doctest: dry-run - rebuilds the venv -->    a shell block whose commands are not run: its make lines are
                                                     checked with make -n, the rest is shown commented out
"""

from __future__ import annotations

import glob
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass, replace

from tests.support import REPO

# The documents whose blocks `make test` runs.
DOCUMENTS = ("README.md", "docs/*.md")
SHELL_LANGUAGES = frozenset({"bash", "sh", "shell"})
PYTHON_LANGUAGES = frozenset({"python", "py"})
OUTPUT_LANGUAGES = frozenset({"json", "text", "diff", "toml", "yaml", "csv"})
MARKER_KINDS = frozenset({"skip", "server", "run", "dry-run"})
REASONED_KINDS = frozenset({"skip", "run", "dry-run"})  # a marker of these kinds says why
SHELL_ONLY_KINDS = frozenset({"run", "dry-run"})  # they change what a shell block's make does
# Why a block may be skipped: what the test machine cannot stand in for (a real account, a daemon, a device).
SKIP_REASON = re.compile(r"\b(AWS|Docker|GPU)\b")
# The `make` verbs that serve until stopped: the test starts them and runs the block against them.
SERVE_VERBS = ("serve", "serve-local", "serve-gpu")
DOCUMENTED_URL = "http://127.0.0.1:8000"  # make serve's address in every document
FENCE = re.compile(r"^(?P<indent> *)(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`]*)$")
MARKER = re.compile(r"^\s*<!--\s*doctest:\s*(?P<kind>[\w-]+)\s*(?:-\s*(?P<text>.*?))?\s*-->\s*$")
ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
SEPARATORS = frozenset({"&&", "||", ";", "|", "&"})
# `curl ... # 401`: a curl line whose comment starts with a status expects that status (prelude.sh).
EXPECTED_STATUS = re.compile(r"^(?P<indent>\s*)(?P<command>curl\s.*\s#\s*(?P<status>[1-5]\d\d)\b.*)$")


@dataclass(frozen=True)
class Marker:
    kind: str
    text: str
    line: int


@dataclass(frozen=True)
class ServeCommand:
    """``[NAME=value ...] make VERB [ARGS...]`` for a serve verb: the environment, the verb, make's arguments."""

    env: tuple[tuple[str, str], ...]
    verb: str
    args: tuple[str, ...]


MAKE_SERVE = ServeCommand(env=(), verb="serve", args=())


@dataclass(frozen=True)
class Block:
    document: str  # relative to the repository, e.g. docs/api.md
    line: int  # the opening fence's, from 1
    language: str
    source: str
    markers: tuple[Marker, ...]

    @property
    def id(self) -> str:
        return f"{self.document}:{self.line}"

    @property
    def runs(self) -> bool:
        return self.language in SHELL_LANGUAGES | PYTHON_LANGUAGES

    def marker(self, kind: str) -> Marker | None:
        return next((marker for marker in self.markers if marker.kind == kind), None)

    def serve_lines(self) -> list[ServeCommand]:
        """The block's own ``make serve...`` lines (shell blocks only)."""
        if self.language not in SHELL_LANGUAGES:
            return []
        return [command for line in self.source.splitlines() if (command := parse_serve(line))]


def parse_serve(line: str) -> ServeCommand | None:
    """A line of its own that starts a serve verb, as a person types it in a second terminal; else None."""
    command = parse_make(line)
    if command is None:
        return None
    env, args = command
    verb = next((word for word in args if not word.startswith("-") and "=" not in word), None)
    if verb not in SERVE_VERBS:
        return None
    return ServeCommand(env, verb, tuple(word for word in args if word != verb))


def parse_make(line: str) -> tuple[tuple[tuple[str, str], ...], tuple[str, ...]] | None:
    """``[NAME=value ...] make ARGS...`` and nothing else on the line (no ``&&``, ``;``, pipe or background): the
    variables and make's arguments; else None."""
    try:
        words = shlex.split(line, comments=True)
    except ValueError:
        return None
    env = []
    while words and ASSIGNMENT.match(words[0]):
        name, value = words.pop(0).split("=", 1)
        env.append((name, value))
    if words[:1] != ["make"] or any(word in SEPARATORS or word.endswith(";") for word in words):
        return None
    return tuple(env), tuple(words[1:])


def read_blocks(text: str, document: str) -> tuple[list[Block], list[Marker]]:
    """Every fenced block of a markdown text, and the markers that stand before no block (mistakes)."""
    lines = text.splitlines()
    blocks: list[Block] = []
    orphans: list[Marker] = []
    pending: list[Marker] = []
    index = 0
    while index < len(lines):
        marker, opening = MARKER.match(lines[index]), FENCE.match(lines[index])
        if marker:
            pending.append(Marker(marker["kind"], marker["text"] or "", index + 1))
        elif opening:
            start = index
            body, index = fence_body(lines, start, opening)
            language = opening["info"].split()[0].lower() if opening["info"].strip() else ""
            blocks.append(Block(document, start + 1, language, body, tuple(pending)))
            pending = []
        elif lines[index].strip():
            orphans.extend(pending)
            pending = []
        index += 1
    return blocks, orphans + pending


def fence_body(lines: list[str], start: int, opening: re.Match[str]) -> tuple[str, int]:
    """The text between the fence at ``start`` and its closing fence, less the fence's indentation; the closing
    fence's index."""
    indent, fence = len(opening["indent"]), opening["fence"]
    closing = re.compile(rf"^\s*{re.escape(fence[0])}{{{len(fence)},}}\s*$")
    body: list[str] = []
    index = start + 1
    while index < len(lines) and not closing.match(lines[index]):
        line = lines[index]
        body.append(line[min(indent, len(line) - len(line.lstrip(" "))):])
        index += 1
    return "".join(f"{line}\n" for line in body), index


def document_paths() -> list[str]:
    """DOCUMENTS expanded, relative to the repository; a pattern that matches nothing is a mistake."""
    paths: list[str] = []
    for pattern in DOCUMENTS:
        found = sorted(glob.glob(pattern, root_dir=REPO))
        if not found:
            raise AssertionError(f"DOCUMENTS: {pattern!r} matches no file in {REPO}")
        paths.extend(found)
    return paths


def collect() -> tuple[list[Block], list[Marker]]:
    """The blocks of every document in DOCUMENTS, and the markers that stand before no block."""
    blocks: list[Block] = []
    orphans: list[Marker] = []
    for path in document_paths():
        found, lost = read_blocks((REPO / path).read_text(), path)
        blocks.extend(found)
        orphans.extend(Marker(marker.kind, f"{path}: {marker.text}", marker.line) for marker in lost)
    return blocks, orphans


def problems(block: Block) -> list[str]:
    """What is wrong with a block as written, each with what to do instead."""
    found = []
    if not block.runs and block.language not in OUTPUT_LANGUAGES:
        found.append(f"{block.id}: a fence labelled {block.language or 'nothing'!r}: label it ```text (or ```json, "
                     "...) if it is output, ```bash or ```python if it runs")
    for marker in block.markers:
        if marker.kind not in MARKER_KINDS:
            found.append(f"{block.id}: unknown marker 'doctest: {marker.kind}' (known: {sorted(MARKER_KINDS)})")
        elif not block.runs:
            found.append(f"{block.id}: a 'doctest: {marker.kind}' marker on a block that never runs")
        elif marker.kind in SHELL_ONLY_KINDS and block.language not in SHELL_LANGUAGES:
            found.append(f"{block.id}: a 'doctest: {marker.kind}' marker on a {block.language} block: it changes "
                         "what a shell block's make does")
        elif marker.kind in REASONED_KINDS and not marker.text:
            found.append(f"{block.id}: 'doctest: {marker.kind}' without a reason: write <!-- doctest: "
                         f"{marker.kind} - why -->")
        elif marker.kind == "skip" and not SKIP_REASON.search(marker.text):
            found.append(f"{block.id}: skip reason {marker.text!r} names neither AWS, Docker nor a GPU: "
                         "only those may keep a block from running")
        elif marker.kind == "server" and not parse_serve(marker.text):
            found.append(f"{block.id}: 'doctest: server - {marker.text}' is not a make {'/'.join(SERVE_VERBS)} line")
    if len(block.serve_lines()) > 1:
        found.append(f"{block.id}: more than one make serve line: split the block")
    return found


def shell_script(block: Block, url: str) -> str:
    """The block as the test runs it: make serve's URL is ``url``, its serve lines are started by the test (kept as
    comments, so line numbers still match the document), a ``curl ... # 401`` line expects that status."""
    lines = []
    for line in block.source.replace(DOCUMENTED_URL, url).splitlines():
        expected = EXPECTED_STATUS.match(line)
        if parse_serve(line):
            line = f"# started by the test: {line.strip()}"
        elif expected:
            line = f"{expected['indent']}DOC_EXPECT_STATUS={expected['status']} {expected['command']}"
        lines.append(line)
    return stop_after_and_lists("".join(f"{line}\n" for line in lines))


def split_at_serve(block: Block) -> tuple[Block, Block]:
    """The lines before the block's serve line, and the rest (each with the other's lines blank, so line numbers still
    match): a reader runs the first part, then starts the server, then types the rest in a second terminal."""
    lines = block.source.splitlines()
    at = next((index for index, line in enumerate(lines) if parse_serve(line)), len(lines))
    before = [*lines[:at], *[""] * (len(lines) - at)]
    after = [*[""] * at, *lines[at:]]
    return (replace(block, source="".join(f"{line}\n" for line in before)),
            replace(block, source="".join(f"{line}\n" for line in after)))


def dry_run_script(script: str) -> str:
    """A dry-run block as the test runs it: its make command lines kept (the test has make check them with make -n),
    every other command line commented out, so line numbers still match."""
    parts, start = [], 0
    for code_end, line_end, _ in command_lines(script):
        command = script[start:line_end]
        if parse_make(script[start:code_end]) is None:
            command = "".join(f"# dry-run, not run: {line}" if line.strip() else line
                              for line in command.splitlines(keepends=True))
        parts.append(command)
        start = line_end
    return "".join(parts) + script[start:]


def stop_after_and_lists(script: str) -> str:
    """Each ``A && B`` command line with ``|| exit $?`` after it (before its comment): errexit ignores a failure of
    A, and a reader would not go on. Lines with ``||`` already, or run in the background, are left as they are."""
    parts, start = [], 0
    for code_end, line_end, operators in command_lines(script):
        code = script[start:code_end]
        if "&&" in operators and "||" not in operators and not code.rstrip().endswith("&"):
            code = f"{code.rstrip()} || exit $?{code[len(code.rstrip()):]}"
        parts.append(code + script[code_end:line_end])
        start = line_end
    return "".join(parts) + script[start:]


def command_lines(script: str) -> Iterator[tuple[int, int, set[str]]]:
    """Each command line as bash reads it: (where its code ends, where the line ends, the ``&&``/``||`` outside
    quotes). Quotes and a line ending in ``\\``, ``&&``, ``||`` or ``|`` go on to the next line; a ``#`` at a
    word's start outside quotes begins a comment."""
    quote, comment, start, operators, index = "", -1, 0, set(), 0
    while index < len(script):
        char = script[index]
        if comment < 0 and quote != "'" and char == "\\":
            index += 1  # the next character is taken as it is (a newline: the line goes on)
        elif comment < 0 and quote:
            quote = "" if char == quote else quote
        elif comment < 0 and char in "'\"":
            quote = char
        elif comment < 0 and char == "#" and (index == 0 or script[index - 1].isspace()):
            comment = index
        elif comment < 0 and script[index:index + 2] in ("&&", "||"):
            operators.add(script[index:index + 2])
            index += 1
        elif char == "\n" and (comment >= 0 or not script[start:index].rstrip().endswith(("&&", "||", "|"))):
            yield (comment if comment >= 0 else index), index + 1, operators
            comment, start, operators = -1, index + 1, set()
        index += 1
    if start < len(script):
        yield (comment if comment >= 0 else len(script)), len(script), operators


def python_source(block: Block, url: str) -> str:
    return block.source.replace(DOCUMENTED_URL, url)
