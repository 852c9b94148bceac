"""The installed console script `unet-segment` in fresh processes: stdout, exit status, and a model in S3 (moto)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support import BUCKET, PNGSUITE, REPO, SAMPLE_JPEG, sha256_of

UNET_SEGMENT = Path(sys.executable).with_name("unet-segment")  # what `make` installs with the package


def run(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(UNET_SEGMENT), *argv], cwd=REPO, env={**os.environ, **(env or {})},
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """in/{cat.jpg, broken.png (PngSuite's xs1n0g01: a bad signature)}."""
    (tmp_path / "in").mkdir()
    shutil.copy(SAMPLE_JPEG, tmp_path / "in" / "cat.jpg")
    shutil.copy(PNGSUITE / "xs1n0g01.png", tmp_path / "in" / "broken.png")
    return tmp_path / "in"


def test_the_console_script_is_installed_and_answers_on_stdout(folder: Path, tmp_path: Path,
                                                               tiny_model_path: Path) -> None:
    done = run(str(folder), "-o", str(tmp_path / "out"), "--model", str(tiny_model_path))
    summary = json.loads(done.stdout)  # the only line on stdout
    assert (done.returncode, summary["processed"], summary["failed"], summary["skipped"]) == (1, 1, 1, 0)
    assert f"unet-segment: failed {folder / 'broken.png'}: the file is not a recognised image" in done.stderr
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == ["cat.jpg.png"]


def test_help_shows_an_example_and_usage_errors_exit_2() -> None:
    assert "unet-segment photos -o out --recursive" in run("--help").stdout
    done = run("in", "-o", "out", "--alpha", "7")
    assert (done.returncode, done.stdout) == (2, "")
    assert "unet-segment: error: --alpha 7: Input should be less than or equal to 1" in done.stderr


def test_a_model_in_s3_through_the_runtimes_loader(s3: Any, aws_env: dict[str, str], folder: Path, tmp_path: Path,
                                                   tiny_model_path: Path) -> None:
    s3.upload_file(str(tiny_model_path), BUCKET, "models/tiny.onnx")
    cache = {"MODEL_CACHE_DIR": str(tmp_path / "cache"), "MODEL_SHA256": sha256_of(tiny_model_path)}
    done = run(str(folder / "cat.jpg"), "-o", str(tmp_path / "out"), "--model", f"s3://{BUCKET}/models/tiny.onnx",
               env={**aws_env, **cache})
    assert (done.returncode, json.loads(done.stdout)["processed"]) == (0, 1), done.stderr
    assert [path.read_bytes() for path in (tmp_path / "cache").iterdir()] == [tiny_model_path.read_bytes()]
