"""The layers, checked by import-linter (pyproject's contracts), and the upload entry's cold start kept lean."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.support import REPO

LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
WEB_STACK = ("fastapi", "starlette", "mangum")


def lint_imports(package_parent: Path | None = None) -> subprocess.CompletedProcess[str]:
    """``lint-imports`` with pyproject's contracts, over the checkout's ``app`` or a copy under ``package_parent``."""
    env = {**os.environ, "PYTHONPATH": str(package_parent)} if package_parent else None
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=120)


def test_the_import_contracts_are_kept() -> None:
    contracts = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    done = lint_imports()
    assert done.returncode == 0, done.stdout
    assert f"{len(contracts)} kept, 0 broken" in done.stdout and len(contracts) == 7


@pytest.mark.parametrize(
    ("module", "line", "broken"),
    [
        ("core/timing.py", "import fastapi", "The core imports no web or AWS library"),
        ("core/pipeline.py", "import boto3", "The core imports no web or AWS library"),
        ("aws/s3_client.py", "from app.http import schemas", "Layers: entry points > HTTP > AWS > core"),
        ("aws/s3_trigger.py", "import starlette", "The AWS layer imports no web framework"),
        ("aws/lambda_s3.py", "import mangum", "The upload function's entry never loads the web stack"),
        ("cli/runner.py", "from app.http import batch", "The command line never loads the web stack"),
        ("runtime.py", "import app.cli", "Layers: entry points > HTTP > AWS > core"),
        ("core/options.py", "from app.core import settings", "options and decoding never read settings"),
        ("core/decoding/imaging.py", "import app.core.settings", "options and decoding never read settings"),
        ("core/decoding/colour.py", "from app.core.output import encoding", "Inside the core"),
        ("core/resources/cpus.py", "from app.core.inference import segmenter", "Inside the core"),
        ("core/inference/segmenter.py", "from app.core import pipeline", "Inside the core"),
    ],
)
def test_a_wrong_way_import_breaks_a_contract(tmp_path: Path, module: str, line: str, broken: str) -> None:
    # GIVEN a copy of the package with one import the architecture forbids
    copy = tmp_path / "app"
    shutil.copytree(REPO / "function" / "app", copy, ignore=shutil.ignore_patterns("__pycache__"))
    with (copy / module).open("a") as source:
        source.write(f"\n{line}  # noqa\n")
    # THEN lint-imports (as make lint and make test run it) fails, naming the contract
    done = lint_imports(tmp_path)
    assert done.returncode != 0
    assert f"{broken}" in done.stdout and "BROKEN" in done.stdout


def test_the_upload_entry_never_imports_the_web_stack() -> None:
    """What import-linter reads statically, checked at run time: the upload function's init, then sys.modules."""
    probe = (
        "import sys, app.lambda_upload; "
        f"print(','.join(sorted(m for m in {WEB_STACK!r} if m in sys.modules)) or 'none')"
    )
    env = {**os.environ, "LOG_LEVEL": "WARNING"}
    done = subprocess.run([sys.executable, "-c", probe], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=120, check=True)
    assert done.stdout.strip().splitlines()[-1] == "none"
