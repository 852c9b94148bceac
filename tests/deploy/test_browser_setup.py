"""The browser tests on a machine without Chromium: one line saying how to install it on a user's machine, a failed
run under CI (CI=true), where .ci/run installs it and a skip would hide that the page went untested."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from tests.support import REPO

pytestmark = pytest.mark.slow
BROWSER_TESTS = "tests/integration/browser/test_docs_offline.py"  # one test, and no server started before the check
HINT = "no Chromium at /nowhere/chromium: the browser tests need it (sudo apt-get install chromium)"
SKIP_LINE = re.compile(rf"SKIPPED \[1\] tests/integration/browser/conftest.py:\d+: {re.escape(HINT)}")  # -rs's line


def pytest_without_chromium(ci: str | None) -> subprocess.CompletedProcess[str]:
    """The browser tests run by pytest as `make test` runs it, with CHROMIUM_PATH naming a browser that is absent."""
    env = {name: value for name, value in os.environ.items() if name != "CI"}
    env["CHROMIUM_PATH"] = "/nowhere/chromium"
    if ci is not None:
        env["CI"] = ci
    return subprocess.run([sys.executable, "-m", "pytest", BROWSER_TESTS, "-q", "-rs", "-p", "no:cacheprovider"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("ci", [None, "false"])
def test_off_ci_they_skip_with_one_line_saying_how_to_install_it(ci: str | None) -> None:
    run = pytest_without_chromium(ci)
    assert run.returncode == 0, run.stdout[-2000:]
    skipped = [line for line in run.stdout.splitlines() if "SKIPPED" in line]
    assert len(skipped) == 1 and SKIP_LINE.fullmatch(skipped[0]), run.stdout[-2000:]


def test_under_ci_a_missing_chromium_fails_the_run() -> None:
    run = pytest_without_chromium("true")
    assert run.returncode == 1, run.stdout[-2000:]
    assert f"{HINT}; under CI (CI=true) the browser tests must run, never skip" in run.stdout
    assert run.stdout.splitlines()[-1].startswith("1 error in")  # not a skip
