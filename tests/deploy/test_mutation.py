"""`make mutate`'s configuration, kept from rotting: one small module through the same workspace and mutmut
settings (every mutant killed: testing the unmutated code would kill none), and how survivors are explained."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from scripts.mutate import ModuleResult, match_equivalents
from tests.support import REPO

KEYS_DIFF = """@@ -1,3 +1,3 @@
 def is_upload_key(key: str) -> bool:
-    return key.startswith(UPLOAD_PREFIX) and not key.endswith("/")
+    return key.startswith(UPLOAD_PREFIX) or not key.endswith("/")"""


@pytest.mark.slow
@pytest.mark.timeout(300)  # ~15 s on a quiet 2-CPU machine
def test_every_mutant_of_the_s3_keys_is_killed_by_their_tests(tmp_path: Path) -> None:
    """Also --retest where no run has been (a fresh checkout): a full run instead, not a traceback."""
    report, figures = tmp_path / "mutation.md", tmp_path / "mutation.json"
    command = [sys.executable, "-m", "scripts.mutate", "--retest", "--module", "app/aws/keys.py",
               "--tests", "tests/unit/aws/test_s3_keys.py", "--workspace", str(tmp_path / "workspace"),
               "--report", str(report), "--json", str(figures), "--max-children", "1"]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=280)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "no earlier run's verdicts" in done.stderr
    keys = json.loads(figures.read_text())["modules"]["app/aws/keys.py"]
    assert keys["statuses"]["killed"] >= 40 and set(keys["statuses"]) == {"killed"}, keys
    assert "| `app/aws/keys.py` |" in report.read_text() and "100.0%" in report.read_text()


def survivor(diff: str) -> ModuleResult:
    return ModuleResult("app/aws/keys.py", Counter(survived=1), {"app.aws.keys.x_is_upload_key__mutmut_1": diff})


@pytest.mark.parametrize(
    ("entry", "explained"),
    [
        ({"function": "app.aws.keys.x_is_upload_key", "change": 'return key.startswith(UPLOAD_PREFIX) or not '
          'key.endswith("/")', "reason": "r"}, True),
        ({"function": "app.aws.keys.x_is_source_key", "change": 'return key.startswith(UPLOAD_PREFIX) or not '
          'key.endswith("/")', "reason": "r"}, False),  # another function
        ({"function": "app.aws.keys.x_is_upload_key", "change": 'return key.startswith(UPLOAD_PREFIX) and not '
          'key.endswith("/")', "reason": "r"}, False),  # the removed line, not the mutant's
    ],
)
def test_a_survivor_is_explained_only_by_an_entry_for_its_function_and_change(
    entry: dict[str, str], explained: bool
) -> None:
    result = survivor(KEYS_DIFF)
    match_equivalents([result], [entry])
    assert (result.unexplained == [], result.meets_goal()) == (explained, False)  # 1 mutant, 0 killed: 0%
