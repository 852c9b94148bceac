"""Debian's Chromium (/usr/bin/chromium) driven by Playwright through pytest-playwright's fixtures (``page``), and
the page's server: `make serve` on a free port. Screenshots of each state go to tests/_artifacts/page/.

Playwright cannot download its own browser builds here, so it launches Debian's. Without it these tests skip with
one line saying how to install it; under CI (CI=true) they fail instead: .ci/run installs it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import BrowserContext, Page

from tests.servers import make_serve
from tests.support import REPO

# Debian's package; CHROMIUM_PATH names another build (a snap's /snap/bin/chromium, Google Chrome).
CHROMIUM = Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))
INSTALL_HINT = f"no Chromium at {CHROMIUM}: the browser tests need it (sudo apt-get install chromium)"
# Headless, and none of Chromium's own connections (updates, sync, field trials): on a closed network they are
# refused, and they are traffic no test asked for.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ARTIFACTS = REPO / "tests" / "_artifacts" / "page"


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Without Chromium (and not under CI) every test here skips. Skipped from this hook, not from a fixture, so
    the summary folds them into one line at this location instead of one per test."""
    if not CHROMIUM.is_file() and os.environ.get("CI") != "true":
        pytest.skip(INSTALL_HINT)


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    """pytest-playwright's launch options, pointed at Debian's Chromium."""
    if not CHROMIUM.is_file():  # under CI only: elsewhere the folder was skipped above
        pytest.fail(f"{INSTALL_HINT}; under CI (CI=true) the browser tests must run, never skip: .ci/run installs it")
    return {**browser_type_launch_args, "executable_path": str(CHROMIUM), "args": CHROMIUM_ARGS}


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args: dict[str, Any]) -> dict[str, Any]:
    """A laptop-sized window; reduced motion, so a screenshot never catches the busy spinner mid-turn."""
    return {**browser_context_args, "viewport": {"width": 1200, "height": 900}, "reduced_motion": "reduce"}


@pytest.fixture
def context(new_context: Callable[..., BrowserContext]) -> BrowserContext:
    """pytest-playwright's browser context, as its own ``context`` fixture makes it (tests/conftest.py refuses the
    name elsewhere, where it would be mistaken for Lambda's context)."""
    return new_context()


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`make serve` as a user types it: the bundled model, the default limits, no upload flow."""
    with make_serve({}, tmp_path_factory.mktemp("page-server") / "server.log") as url:
        yield url


@pytest.fixture
def shot(page: Page) -> Callable[[str], Path]:
    """``shot(name)``: a full-page screenshot of the page as it is now, kept for a person to look at."""

    def take(name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take
