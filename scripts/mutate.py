"""Mutation testing of the core and AWS packages with mutmut; the report -> docs/mutation.md.

    python -m scripts.mutate                      # make mutate: every module below (about 30 min on 2 cores)
    python -m scripts.mutate --max-children 1     # gentler on a shared machine
    python -m scripts.mutate --retest             # after adding tests: only the last run's survivors again
    python -m scripts.mutate --module app/aws/keys.py --tests tests/unit/aws/test_s3_keys.py \\
        --workspace /tmp/m --report /tmp/m/mutation.md    # one module against one test file

mutmut makes small changes to the code (``and`` -> ``or``, ``<`` -> ``<=``, a constant, a
dropped argument) and runs the tests that call the changed function: a mutant the tests
pass with is a behaviour nobody checks. mutmut 3 forks one warm pytest per mutant, so the
whole run fits on two cores.

Why a workspace (runs/mutate): mutmut copies the code into ``mutants/``, puts only
``mutants/`` (or ``mutants/src``) first on sys.path and names modules by their path from
its working directory. Our package is ``function/app``, installed editable (a .pth puts
``function/`` on sys.path): run from the checkout, the modules would be named
``function.app.*`` and the tests would import the unmutated ``app`` through the editable
install. In the workspace ``app/`` is at the top, ``mutants/app`` shadows ``function/app``
and the names match. Scores mean something only if mutants are really what the tests run:
``tests/deploy/test_mutation.py`` (in ``make test``) checks that every mutant of a small
module is killed, which testing the unmutated code could never do.

``--retest`` keeps the last run's workspace and verdicts and runs only the mutants it did not kill
(or never ran: it also resumes an interrupted run) against the current tests, and every mutant of a
module that changed since. Sound while tests are only added or tightened: a mutant killed before by
unchanged code stays killed. Where no run has left its verdicts (a fresh checkout), it makes a full run instead.

Survivors that cannot change behaviour are listed with their reason in
docs/mutation-equivalents.toml; the report marks every other survivor as unexplained.
Exit status 1 when a module misses the goal or a survivor is unexplained.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
WORKSPACE = REPO / "runs" / "mutate"
REPORT = REPO / "docs" / "mutation.md"
FIGURES = REPO / "docs" / "mutation.json"  # the same figures as data: the next run's "previous" column
EQUIVALENTS = REPO / "docs" / "mutation-equivalents.toml"
MUTMUT = Path(sys.executable).parent / "mutmut"
GOAL = 0.90  # issue 16: at least 90% of each module's mutants killed

# Issue 16's scope: the core a request goes through, the S3 trigger, Batch Operations, the model
# store, the upload flow's keys and options, the work queue.
MODULES = (
    "app/core/decoding/imaging.py", "app/core/inference/segmenter.py", "app/core/output/drawing.py",
    "app/core/output/encoding.py",
    "app/core/pipeline.py", "app/core/options.py", "app/aws/s3_trigger.py", "app/aws/batch_operations.py",
    "app/aws/model_store.py", "app/aws/keys.py", "app/aws/uploads.py", "app/http/work_queue.py",
)
# The fast tests, and the S3 ones on moto in a thread (in-process, so they see the mutants). Not the
# tests that run the code in a subprocess (it imports the unmutated app), nor the model's training.
TESTS = (
    "tests/unit/core", "tests/unit/aws", "tests/unit/http", "tests/unit/cli", "tests/functional",
    "tests/integration/aws/test_s3_trigger.py", "tests/integration/aws/test_batch_operations.py",
    "tests/integration/aws/test_model_store.py", "tests/integration/aws/test_lambda_entries.py",
    "tests/integration/aws/test_upload_ownership.py", "tests/integration/aws/test_events.py",
    "tests/integration/aws/test_upload_results.py",
)
PYTEST_ARGS = (
    "-p", "no:cacheprovider",
    # Imported before pytest captures output: the Powertools handler keeps the sys.stdout of import time,
    # and mutmut runs pytest more than once in one process (an earlier run's capture is closed by then).
    "-p", "app.aws.observability",
    "-p", "scripts.mutate",  # the quick tests first: pytest_collection_modifyitems below
    "-m", "not slow",  # whole corpora and 30 MP photos: minutes per surviving mutant, nothing the others miss
    # The checkout's model path is derived from app/'s location; in the workspace that is the link below.
    "--deselect", "tests/unit/core/test_settings.py::test_model_uri_defaults_to_the_bundled_model_of_this_checkout",
)
TINY_MODEL = "tiny.onnx"  # the tests' tiny model, exported once: ~6 s (torch) in each of thousands of runs
# Read by the tests, never mutated: every other top-level folder is linked, not copied (model/weights is 38 MB).
NOT_LINKED = frozenset({"function", "tests", "runs", "build"})  # app/ and tests/ are copied; the rest are outputs
DETECTED = ("killed", "timeout")  # mutmut's own score counts a mutant that hangs as caught

log = logging.getLogger("mutate")


def export_tiny_model(path: Path) -> None:
    """tests.support's tiny model (imported here: torch only for this)."""
    from tests.support import export_tiny_model as export

    export(path)


@dataclass(frozen=True)
class Run:
    """How the verdicts were reached: mutmut's time, its workers, and for ``--retest`` how many it reran."""

    seconds: float
    workers: int
    retested: int | None = None
    total_seconds: float = 0.0  # this run's and the earlier ones' whose verdicts a --retest kept


@dataclass
class ModuleResult:
    """One module's mutants by mutmut's status, and its survivors (name -> diff)."""

    module: str
    statuses: Counter[str] = field(default_factory=Counter)
    survivors: dict[str, str] = field(default_factory=dict)
    equivalent: dict[str, str] = field(default_factory=dict)  # survivor name -> reason

    @property
    def total(self) -> int:
        return sum(self.statuses.values())

    @property
    def detected(self) -> int:
        return sum(self.statuses[status] for status in DETECTED)

    @property
    def score(self) -> float:
        return self.detected / self.total if self.total else 1.0

    @property
    def unexplained(self) -> list[str]:
        return [name for name in self.survivors if name not in self.equivalent]

    def meets_goal(self) -> bool:
        return self.score >= GOAL and not self.unexplained


def mutmut_config(modules: Sequence[str], tests: Sequence[str]) -> str:
    """pyproject's ``[tool.mutmut]`` table for the workspace (JSON string arrays are valid TOML)."""
    return "\n".join([
        "", "[tool.mutmut]",
        f"source_paths = {json.dumps(['app'])}",
        f"only_mutate = {json.dumps(list(modules))}",
        f"pytest_add_cli_args_test_selection = {json.dumps(list(tests))}",
        f"pytest_add_cli_args = {json.dumps(list(PYTEST_ARGS))}",
        # Fork each mutant from a process that has only collected the tests: forked from one that has run
        # them, children hang on locks held by threads they do not have (moto's server, thread pools).
        'process_isolation = "forkserver"',
        "",
    ])


def prepare_workspace(workspace: Path, modules: Sequence[str], tests: Sequence[str]) -> None:
    """A fresh workspace: app/ and tests/ copied, pyproject with the mutmut table, the rest linked."""
    shutil.rmtree(workspace, ignore_errors=True)
    ignore = shutil.ignore_patterns("__pycache__", "_failures", "_artifacts")
    shutil.copytree(REPO / "function" / "app", workspace / "app", ignore=ignore)
    shutil.copytree(REPO / "tests", workspace / "tests", ignore=ignore)
    pyproject = (REPO / "pyproject.toml").read_text()
    (workspace / "pyproject.toml").write_text(pyproject + mutmut_config(modules, tests))
    (workspace / "mutants").mkdir()
    link_folders(workspace)
    (workspace / "model").symlink_to(REPO / "model")
    export_tiny_model(workspace / TINY_MODEL)
    shared = REPO.parent / "shared"  # tests.support: the sample corpora beside the checkout
    if shared.is_dir():
        (workspace / "shared").symlink_to(shared)


def refresh_workspace(workspace: Path, modules: Sequence[str], tests: Sequence[str]) -> list[str]:
    """For ``--retest``: the current code and tests into the last run's workspace, mutmut's map of which test
    calls what dropped (rebuilt with the new tests); the mutants to run again: those that run did not kill,
    and every mutant of a module that changed since (a constant's change moves no function's hash)."""
    changed = refresh_code(workspace, modules)
    link_folders(workspace)  # a folder the checkout has gained since
    pyproject = (REPO / "pyproject.toml").read_text()  # the test selection may have grown
    (workspace / "pyproject.toml").write_text(pyproject + mutmut_config(modules, tests))
    ignore = shutil.ignore_patterns("__pycache__", "_failures", "_artifacts")
    for copy in (workspace / "tests", workspace / "mutants" / "tests"):
        shutil.rmtree(copy)
        shutil.copytree(REPO / "tests", copy, ignore=ignore)
    (workspace / "mutants" / "mutmut-stats.json").unlink(missing_ok=True)  # no stats: mutmut keeps every verdict
    export_tiny_model(workspace / TINY_MODEL)  # as the tests make it now
    survivors = [name for module in modules if module not in changed
                 for name, status in statuses(workspace, module).items() if status not in DETECTED]
    return survivors + [module.removesuffix(".py").replace("/", ".") + ".*" for module in changed]


def refresh_code(workspace: Path, modules: Sequence[str]) -> list[str]:
    """Copies what changed in function/app into the workspace: a module in scope for mutmut to mutate again,
    any other file (code, the page's HTML) straight to where the tests import it (mutants/) too. Returns the
    changed modules in scope."""
    changed = []
    for source in sorted((REPO / "function" / "app").rglob("*")):
        if not source.is_file() or "__pycache__" in source.parts:
            continue
        relative = source.relative_to(REPO / "function")
        if (workspace / relative).is_file() and (workspace / relative).read_bytes() == source.read_bytes():
            continue
        targets = [workspace / relative] + ([] if str(relative) in modules else [workspace / "mutants" / relative])
        for target in targets:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, target)  # a newer mtime: mutmut mutates it again
        if str(relative) in modules:
            changed.append(str(relative))
    return changed


def statuses(workspace: Path, module: str) -> dict[str, str]:
    """Each mutant of ``module`` and mutmut's status for it, from its per-file results (mutants/<module>.meta)."""
    from mutmut.stats import status_by_exit_code  # mutmut's own names for its exit codes

    meta = json.loads((workspace / "mutants" / f"{module}.meta").read_text())
    return {name: status_by_exit_code[code] for name, code in meta["exit_code_by_key"].items()}


def link_folders(workspace: Path) -> None:
    """The checkout's other folders (model, events, scripts, bench, ...) where the tests look: beside tests/."""
    for folder in sorted(REPO.iterdir()):
        link = workspace / "mutants" / folder.name
        if folder.is_dir() and not folder.name.startswith(".") and folder.name not in NOT_LINKED and not link.exists():
            link.symlink_to(folder)


def run_mutmut(workspace: Path, max_children: int, names: Sequence[str] = ()) -> float:
    """``mutmut run`` in the workspace (only ``names``, if given); its seconds. Its progress goes to stderr."""
    started = time.monotonic()
    command = [str(MUTMUT), "run", "--max-children", str(max_children), *names]
    from tests.support import TINY_MODEL_VARIABLE

    env = {**os.environ, TINY_MODEL_VARIABLE: str(workspace / TINY_MODEL)}  # not exported again in each run
    mutmut = subprocess.Popen(command, cwd=workspace, env=env, stdout=sys.stderr, start_new_session=True)
    try:
        returncode = mutmut.wait()
    finally:  # Ctrl-C or a kill of this script: mutmut's fork server and its children go too
        if mutmut.poll() is None:
            os.killpg(mutmut.pid, signal.SIGTERM)
    if returncode != 0:
        raise SystemExit(f"mutmut run failed (exit {returncode}): see its output above")
    return time.monotonic() - started


def collect(workspace: Path, modules: Sequence[str]) -> list[ModuleResult]:
    """Each module's mutants by status, its survivors with their diffs."""
    results = []
    for module in modules:
        result = ModuleResult(module)
        for name, status in statuses(workspace, module).items():
            result.statuses[status] += 1
            if status not in DETECTED:
                result.survivors[name] = diff_of(workspace, module, name)
        results.append(result)
    return results


def diff_of(workspace: Path, module: str, name: str) -> str:
    """The mutant's change as a unified diff (what ``mutmut show`` prints, in-process), without its header."""
    from mutmut.mutation.diff_apply import get_diff_for_mutant
    from mutmut.utils.file_utils import change_cwd

    with change_cwd(workspace):  # mutmut reads mutants/ relative to the working directory
        lines = get_diff_for_mutant(name, path=module).splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("@@")), len(lines))
    return "\n".join(lines[start:])


def added_lines(diff: str) -> list[str]:
    return [line[1:].strip() for line in diff.splitlines() if line.startswith("+") and not line.startswith("+++")]


def function_of(name: str) -> str:
    """``app.aws.keys.x_is_upload_key__mutmut_3`` -> ``app.aws.keys.x_is_upload_key``."""
    return name.partition("__mutmut_")[0]


def match_equivalents(results: Sequence[ModuleResult], entries: Sequence[dict[str, str]]) -> None:
    """Marks the survivors that an entry explains: same function, and its change is the mutant's added line.

    Matching on the change rather than mutmut's number keeps an entry valid while other code moves,
    and makes it lapse when the line it explains changes."""
    for result in results:
        for name, diff in result.survivors.items():
            for entry in entries:
                if entry["function"] == function_of(name) and entry["change"].strip() in added_lines(diff):
                    result.equivalent[name] = entry["reason"]
                    break


def load_equivalents(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    return list(tomllib.loads(path.read_text()).get("equivalent", []))


def git_commit() -> str:
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
    return done.stdout.strip() or "unknown"


def mutmut_version() -> str:
    from importlib.metadata import version

    return version("mutmut")


def table(results: Sequence[ModuleResult], previous: dict[str, Any]) -> list[str]:
    """The per-module table: mutants by status, the score against the goal and the previous run's score."""
    before = {module: previous_score(figures) for module, figures in previous.get("modules", {}).items()}
    lines = [f"| module | mutants | killed | timeout | survived | no tests | other | explained | score | "
             f"previous run ({previous.get('commit', 'none')}) | goal |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for r in results:
        s = r.statuses
        other = r.total - r.detected - s["survived"] - s["no tests"]
        verdict = "met" if r.meets_goal() else "**missed**"
        lines.append(f"| `{r.module}` | {r.total} | {s['killed']} | {s['timeout']} | {s['survived']} | "
                     f"{s['no tests']} | {other} | {len(r.equivalent)} | {r.score:.1%} | "
                     f"{before.get(r.module, '')} | {verdict} |")
    total, detected = sum(r.total for r in results), sum(r.detected for r in results)
    lines.append(f"| all | {total} | | | | | | {sum(len(r.equivalent) for r in results)} | "
                 f"{detected / total if total else 1:.1%} | | |")
    return lines


def survivor_sections(results: Sequence[ModuleResult]) -> list[str]:
    """Every survivor with its diff: the equivalent ones with their reason, then the unexplained ones."""
    lines: list[str] = []
    sections = (("Explained survivors: equivalent, or caught where mutmut does not look", True),
                ("Unexplained survivors (a test should kill them)", False))
    for title, explained in sections:
        lines += ["", f"## {title}", ""]
        shown = 0
        for r in results:
            for name, diff in r.survivors.items():
                if (name in r.equivalent) != explained:
                    continue
                shown += 1
                reason = f": {r.equivalent[name]}" if explained else ""
                lines += [f"- `{name}`{reason}", "", "  ```diff", *[f"  {line}" for line in diff.splitlines()],
                          "  ```", ""]
        if not shown:
            lines.append("None.")
    return lines


def previous_score(figures: dict[str, Any]) -> str:
    """A module's score in the previous run; over the mutants it reached if it was stopped before the end."""
    statuses = figures["statuses"]
    total, unrun = sum(statuses.values()), statuses.get("not checked", 0)
    detected = sum(statuses.get(status, 0) for status in DETECTED)
    if not unrun:
        return f"{detected / total:.1%}" if total else ""
    return f"{detected / (total - unrun):.1%} of {total - unrun} run" if total > unrun else "not run"


def how_it_ran(run: Run) -> str:
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    took = f"{run.workers} workers, {run.seconds / 60:.1f} min"
    if run.retested is not None:
        took = (f"`--retest` of {run.retested} mutants (the last run's survivors and unrun ones, and every mutant "
                f"of a module changed since; {took}); the other verdicts are kept from the earlier runs "
                f"({run.total_seconds / 60:.1f} min in all)")
    return f"Generated by `make mutate` (scripts/mutate.py), not typed: {now}, commit {git_commit()}, " \
           f"mutmut {mutmut_version()}, {took}."


def report(results: Sequence[ModuleResult], run: Run, previous: dict[str, Any]) -> str:
    lines = [
        "# Mutation testing",
        "",
        how_it_ran(run),
        "mutmut changes the code one small step at a time and runs the tests that call what changed; a mutant",
        "the tests pass with (survived) is a behaviour no test checks. Score: killed and timed-out mutants over",
        f"all of a module's. Goal (issue 16): at least {GOAL:.0%} in each module, and every survivor either",
        "killed by a test or explained in docs/mutation-equivalents.toml: equivalent (it cannot change",
        "behaviour), or caught in a way mutmut does not count (the test process aborts). \"no tests\": no",
        "selected test calls the function. \"other\": mutmut's suspicious (a test process that died oddly).",
        "",
        *table(results, previous),
        *survivor_sections(results),
    ]
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--module", action="append", help="a module to mutate (repeatable); default: all in scope")
    parser.add_argument("--tests", action="append", help="tests to run (repeatable); default: the fast suite")
    parser.add_argument("--max-children", type=int, default=2, help="mutants run at once (default: 2)")
    parser.add_argument("--retest", action="store_true", help="rerun only the last run's survivors (see above)")
    parser.add_argument("--report-only", action="store_true", help="no run: the report again from the last one "
                        "(after editing docs/mutation-equivalents.toml)")
    parser.add_argument("--workspace", type=Path, default=WORKSPACE)
    parser.add_argument("--report", type=Path, default=REPORT)
    parser.add_argument("--json", type=Path, default=FIGURES, help="the figures as data (the next run reads them)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a kill stops mutmut too (run_mutmut's finally)
    modules = args.module or list(MODULES)
    # 1. mutmut (or the last run's figures), 2. results and equivalents, 3. report and figures
    run, previous = last_run(args.json) if args.report_only else run_once(args, modules)
    results = collect(args.workspace, modules)
    match_equivalents(results, load_equivalents(EQUIVALENTS))
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(report(results, run, previous))
    args.json.write_text(json.dumps(figures(results, run, previous), indent=2) + "\n")
    for r in results:
        log.info("%-28s %4d mutants, %.1f%% killed, %d unexplained survivors", r.module, r.total, 100 * r.score,
                 len(r.unexplained))
    log.info("report: %s (%.1f min)", args.report, run.seconds / 60)
    return 0 if all(r.meets_goal() for r in results) else 1


def run_once(args: argparse.Namespace, modules: list[str]) -> tuple[Run, dict[str, Any]]:
    """A full run in a fresh workspace, or a --retest in the last one; the previous run's figures."""
    tests = args.tests or list(TESTS)
    if args.retest and not has_verdicts(args.workspace, modules):
        log.warning("--retest: no earlier run's verdicts in %s (a fresh checkout?): a full run instead", args.workspace)
        args.retest = False
    names = refresh_workspace(args.workspace, modules, tests) if args.retest else []
    if not args.retest:
        prepare_workspace(args.workspace, modules, tests)
    seconds = run_mutmut(args.workspace, args.max_children, names)
    earlier = json.loads(args.json.read_text()) if args.json.is_file() else {}
    kept = earlier.get("total_seconds", earlier.get("seconds", 0.0)) if args.retest else 0.0
    run = Run(seconds, args.max_children, len(names) if args.retest else None, seconds + kept)
    return run, {"commit": earlier.get("commit"), "modules": earlier.get("modules", {})}


def has_verdicts(workspace: Path, modules: Sequence[str]) -> bool:
    """Whether an earlier run left mutmut's verdicts for every module in scope (what --retest builds on)."""
    return all((workspace / "mutants" / f"{module}.meta").is_file() for module in modules)


def last_run(path: Path) -> tuple[Run, dict[str, Any]]:
    """For --report-only: the last run as its figures describe it, and the run before it."""
    data = json.loads(path.read_text())
    run = Run(data["seconds"], data["workers"], data.get("retested"), data["total_seconds"])
    return run, data.get("previous", {})


def figures(results: Sequence[ModuleResult], run: Run, previous: dict[str, Any]) -> dict[str, object]:
    """The run as data: per module, mutants by status, survivors and which are equivalent; the run before's."""
    modules = {r.module: {"statuses": dict(r.statuses), "score": round(r.score, 4), "survivors": sorted(r.survivors),
                          "equivalent": sorted(r.equivalent)} for r in results}
    before = {module: {"statuses": data["statuses"]} for module, data in previous.get("modules", {}).items()}
    return {"commit": git_commit(), "seconds": round(run.seconds, 1), "workers": run.workers,
            "retested": run.retested, "total_seconds": round(run.total_seconds, 1), "modules": modules,
            "previous": {"commit": previous.get("commit"), "modules": before}}


# --- The pytest plugin each mutant's tests run with (-p scripts.mutate). mutmut passes -x and the tests
# that call the mutated function in no particular order: unit tests first, then functional, then the S3
# ones, quickest files first, so a killed mutant (most of them) stops at a unit test in well under a second.
LAYERS = ("tests/unit/", "tests/functional/", "tests/integration/")


def pytest_collection_modifyitems(items: list[Any]) -> None:
    """Reorders whole files (their fixtures are set up once): by layer, then by the time their tests took."""
    durations = recorded_durations()
    per_file: dict[str, float] = {}
    for item in items:
        per_file.setdefault(item.nodeid.partition("::")[0], 0.0)
        per_file[item.nodeid.partition("::")[0]] += durations.get(item.nodeid, 0.0)

    def rank(item: Any) -> tuple[int, float, str]:
        path = item.nodeid.partition("::")[0]
        layer = next((i for i, prefix in enumerate(LAYERS) if path.startswith(prefix)), len(LAYERS))
        return layer, per_file[path], path

    items.sort(key=rank)  # stable: a file's tests keep their order


@functools.cache  # read once in mutmut's fork server; each mutant's process inherits it
def recorded_durations() -> dict[str, float]:
    """Each test's duration from mutmut's first run (mutants/mutmut-stats.json), where there is one."""
    stats = Path("mutmut-stats.json")  # mutmut runs pytest in mutants/
    if not stats.is_file():
        return {}
    return dict(json.loads(stats.read_text()).get("duration_by_test", {}))


if __name__ == "__main__":
    sys.exit(main())
