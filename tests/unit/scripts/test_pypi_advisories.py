"""make audit's first step: whether PyPI's vulnerability service answers, with the network faked (no request)."""

from __future__ import annotations

import io
import socket
from dataclasses import dataclass, field
from email.message import Message
from urllib.error import HTTPError, URLError

import pytest

from scripts import pypi_advisories
from scripts.pypi_advisories import PROBE_URL, TIMEOUT_S, main, unreachable_reason

RELEASE_JSON = b'{"info": {"name": "pip", "version": "24.0"}, "vulnerabilities": []}'
NOT_JSON = f"{PROBE_URL} answered something other than PyPI's JSON"


@dataclass
class FakePyPI:
    """urlopen as the probe calls it: raises ``outcome`` if it is an exception, else answers it as the body."""

    outcome: BaseException | bytes = RELEASE_JSON
    asked: list[tuple[str, float]] = field(default_factory=list)  # (url, timeout) of each call

    def urlopen(self, url: str, timeout: float) -> io.BytesIO:
        self.asked.append((url, timeout))
        if isinstance(self.outcome, BaseException):
            raise self.outcome
        return io.BytesIO(self.outcome)


@pytest.fixture
def pypi(monkeypatch: pytest.MonkeyPatch) -> FakePyPI:
    fake = FakePyPI()
    monkeypatch.setattr(pypi_advisories, "urlopen", fake.urlopen)
    return fake


@pytest.mark.parametrize(("outcome", "reason"), [
    (URLError(socket.gaierror(-3, "Temporary failure in name resolution")),
     f"{PROBE_URL}: [Errno -3] Temporary failure in name resolution"),
    (URLError(ConnectionRefusedError(111, "Connection refused")), f"{PROBE_URL}: [Errno 111] Connection refused"),
    (TimeoutError("timed out"), f"{PROBE_URL}: timed out"),
    (HTTPError(PROBE_URL, 404, "Not Found", Message(), None),
     f"{PROBE_URL} answered HTTP 404 (Not Found) for a release PyPI has"),
    (b"<html>sign in to this network</html>", NOT_JSON),
    (b"[]", NOT_JSON),
    (RELEASE_JSON, None),
], ids=["dns", "refused", "timeout", "not-found", "html", "other-json", "reachable"])
def test_what_the_probe_makes_of_each_answer(pypi: FakePyPI, outcome: BaseException | bytes,
                                             reason: str | None) -> None:
    pypi.outcome = outcome
    assert unreachable_reason() == reason
    assert pypi.asked == [(PROBE_URL, TIMEOUT_S)] and TIMEOUT_S <= 10  # one request, a bounded wait


def test_unreachable_is_said_in_one_line_and_exits_1(pypi: FakePyPI, capsys: pytest.CaptureFixture[str]) -> None:
    pypi.outcome = URLError(socket.gaierror(-2, "Name or service not known"))
    assert main() == 1
    assert capsys.readouterr() == ("", (
        f"PyPI's vulnerability service could not be reached: {PROBE_URL}: [Errno -2] Name or service not known. "
        "make audit needs it (pip-audit reads each release's advisories from pypi.org): run it where "
        "https://pypi.org answers.\n"))


def test_reachable_says_nothing_and_exits_0(pypi: FakePyPI, capsys: pytest.CaptureFixture[str]) -> None:
    assert main() == 0
    assert capsys.readouterr() == ("", "")
