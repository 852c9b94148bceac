"""Security lint of the runtime code: bandit over function/ finds nothing, and every finding silenced is named
and justified where it is silenced (docs/security.md)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from tests.support import REPO

BANDIT = Path(sys.executable).with_name("bandit")
NOSEC = re.compile(r"#\s*nosec\b(.*)")


def bandit(target: Path) -> tuple[int, dict]:
    done = subprocess.run([str(BANDIT), "-q", "-r", str(target), "-f", "json"], cwd=REPO, capture_output=True,
                          text=True, timeout=300)
    return done.returncode, json.loads(done.stdout)


def test_bandit_finds_nothing_in_the_runtime_code() -> None:
    code, report = bandit(REPO / "function")
    assert [(r["filename"], r["line_number"], r["test_id"]) for r in report["results"]] == []
    assert code == 0


def test_bandit_would_catch_an_insecure_line(tmp_path: Path) -> None:
    (tmp_path / "bad.py").write_text("import subprocess\n\nsubprocess.run('ls ' + input(), shell=True)\n")
    code, report = bandit(tmp_path)
    assert code == 1 and [r["test_id"] for r in report["results"]] == ["B404", "B602"]


def test_every_nosec_names_its_check_and_says_why() -> None:
    for path in sorted((REPO / "function").rglob("*.py")):
        lines = path.read_text().splitlines()
        for number, line in enumerate(lines):
            found = NOSEC.search(line)
            if found is None:
                continue
            where = f"{path.relative_to(REPO)}:{number + 1}"
            assert re.match(r"\s*B\d{3}\b", found.group(1)), f"{where}: a bare nosec silences every check"
            reason = " ".join(lines[max(0, number - 2) : number + 1])
            assert re.search(rf"nosec {found.group(1).split()[0].rstrip(':')}:\s*\S", reason), f"{where}: no reason"
