"""The Makefile: every verb listed by `make help`, every wrapping verb passes ARGS through."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import REPO

MAKEFILE = (REPO / "Makefile").read_text()


def dry_run(*arguments: str) -> list[str]:
    """The commands make would run, each space-separated once (an empty ARGS leaves two spaces mid-line)."""
    done = subprocess.run(["make", "-n", *arguments], cwd=REPO, capture_output=True, text=True, check=True)
    return [" ".join(line.split()) for line in done.stdout.splitlines()]


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("serve", "-m uvicorn app.main:app --app-dir function --host 127.0.0.1 --port 8000"),
        ("serve HOST=0.0.0.0 PORT=9000", "-m uvicorn app.main:app --app-dir function --host 0.0.0.0 --port 9000"),
        ("test ARGS=-x", " --dist loadscope --no-loadscope-reorder -x"),  # -n: a worker per CPU
        ("test TEST_WORKERS=0", "-m pytest -n 0 --dist loadscope --no-loadscope-reorder"),
        ("bench ARGS=--quick", "-m bench.run --quick"),
        ("mutate ARGS=--max-children=1", "-m scripts.mutate --max-children=1"),
        ("train ARGS=--epochs=1", "-m model.train --epochs=1"),
        ("train-person CCP=ccp-clone", "CCP=ccp-clone PY=.venv/bin/python bash model/train_person.sh"),
        ("export CKPT=a.pt OUT=b.onnx ARGS=--version=2.0.0", "-m model.export a.pt b.onnx --version=2.0.0"),
        ("evaluate ARGS=--limit=50", "-m model.evaluate model/weights/unet-int8.onnx --limit=50"),
        ("evaluate MODEL=x.onnx", "-m model.evaluate x.onnx"),
        ("quantize ARGS=a.onnx", "-m model.quantize a.onnx"),
        ("ensemble ARGS=a.onnx", "-m model.ensemble a.onnx"),
        ("segment IN=photos OUT=out ARGS=--recursive",
         "/unet-segment photos -o out --recursive || .venv/bin/python -m scripts.exit_status unet-segment $?"),
        ("segment IN=a.jpg", "/unet-segment a.jpg -o runs/segment || .venv/bin/python -m scripts.exit_status "
         "unet-segment $?"),
        ("export CKPT=a.pt", "-m model.export a.pt"),  # segment's default OUT is its own
        ("invoke EVENT=events/s3_batch_operations_v2.json",
         "-m scripts.invoke events/s3_batch_operations_v2.json --local-s3"),
        ("invoke EVENT=events/s3_put_upload.json", "-m scripts.invoke events/s3_put_upload.json --local-s3"),
        ("invoke EVENT=events/s3_put_upload.json S3=aws", "-m scripts.invoke events/s3_put_upload.json"),
        ("invoke EVENT=events/s3_put_upload.json IMAGE=me.jpg",
         "-m scripts.invoke events/s3_put_upload.json --local-s3 --image me.jpg"),
        ("publish-model", "-m scripts.publish_model --model model/weights/unet-int8.onnx --stack unet-segmentation"),
        ("lambda-size ARGS=--json", "-m scripts.lambda_size --json"),
        ("lambda-memory", "-m scripts.lambda_memory"),
        ("serve-local ARGS=--port=8000", "-m scripts.serve_local --port=8000"),
        ("serve-gpu", "-m uvicorn app.main:app --app-dir function --host 127.0.0.1 --port 8000"),
        ("gpu-check ARGS=--threads=1", "-m scripts.gpu_check --out runs/gpu_check.json --threads=1"),
        ("fuzz SECONDS=120 ARGS=--targets=decode", "-m fuzz.campaign --seconds 120 --targets=decode"),
        ("api-fuzz EXAMPLES=50", "API_FUZZ_EXAMPLES=50 API_FUZZ_REPORT=runs/api-fuzz .venv/bin/python -m pytest "
         "tests/integration/test_api_schema.py -s --timeout=3600"),
        ("audit", "/pip-audit -r function/requirements.txt --no-deps --disable-pip --strict --progress-spinner off"),
        ("load ARGS=--levels=1,16", "-m bench.load --seconds 60 --out runs/load --levels=1,16"),
        ("load LOAD_SECONDS=300", "-m bench.load --seconds 300 --out runs/load"),
        ("check ARGS=-x", ' --dist loadscope --no-loadscope-reorder tests/unit tests/functional -m "not slow" -q -x'),
        ("data", "-m model.ccp ../shared/datasets/clothing-co-parsing --out data/ccp"),
        ("data CCP=ccp-clone", "-m model.ccp ccp-clone --out data/ccp"),
        ("build", "sam build"),
        ("deploy ARGS=--guided", "sam deploy --stack-name unet-segmentation --guided"),
    ],
)
def test_verbs_run_their_command_with_args(target: str, expected: str) -> None:
    lines = dry_run(*target.split())
    assert any(line.endswith(expected) for line in lines), lines


def test_help_lists_every_verb_with_a_description() -> None:
    verbs = set(re.findall(r"^([a-z][a-z-]*):", MAKEFILE, re.MULTILINE))
    done = subprocess.run(["make", "help"], cwd=REPO, capture_output=True, text=True, check=True)
    listed = {line.split()[1] for line in done.stdout.splitlines() if line.strip().startswith("make ")}
    assert listed == verbs
    assert all(len(line.split(maxsplit=2)) == 3 for line in done.stdout.splitlines())  # verb and description


def test_clean_removes_what_the_verbs_create() -> None:
    [command, *_] = [line for line in dry_run("clean") if line.startswith("rm -rf")]
    for created in (".venv", "runs", "bench/out", "tests/_artifacts", ".pytest_cache", ".mypy_cache"):
        assert f" {created}" in command


@pytest.fixture
def fake_venv(tmp_path: Path) -> Path:
    """A venv whose unet-segment exits with $FAKE_STATUS, already installed as far as make can tell."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").symlink_to(sys.executable)
    fake = venv / "bin" / "unet-segment"
    fake.write_text('#!/bin/sh\necho "unet-segment: failed a.jpg: the file is empty" >&2\nexit "$FAKE_STATUS"\n')
    fake.chmod(0o755)
    (venv / ".serve-installed").touch()  # newer than the requirements: nothing to install
    return venv


@pytest.mark.parametrize(("status", "meaning"), [
    (0, None),
    (1, "some inputs failed (each is named above with its reason); the others are written"),
    (2, "a usage error (see above); nothing was written"),
    (130, "interrupted; ARGS=--skip-existing resumes the run"),
    (3, "see the lines above"),
], ids=["ok", "some-failed", "usage", "interrupted", "unknown"])
def test_segment_says_which_status_unet_segment_exited_with(fake_venv: Path, status: int,
                                                            meaning: str | None) -> None:
    done = subprocess.run(["make", "--no-print-directory", "segment", f"VENV={fake_venv}", "IN=a.jpg", "OUT=out"],
                          cwd=REPO, capture_output=True, text=True, env={**os.environ, "FAKE_STATUS": str(status)},
                          timeout=60)
    said = [line for line in done.stderr.splitlines() if line.startswith("unet-segment exited")]
    if meaning is None:
        assert (done.returncode, said) == (0, [])
        return
    # THEN make still exits 2, but only after one line that says unet-segment's own status and what it means
    assert done.returncode == 2
    assert said == [f"unet-segment exited with status {status}: {meaning}. make reports any failed command as "
                    "status 2."]
    assert done.stderr.splitlines()[-1].endswith(f"segment] Error {status}")  # make's line repeats it


def test_audit_asks_whether_pypi_answers_before_pip_audit() -> None:
    lines = dry_run("audit")
    [probe] = [index for index, line in enumerate(lines) if line.endswith("-m scripts.pypi_advisories")]
    [audit] = [index for index, line in enumerate(lines) if "/pip-audit " in line]
    assert probe < audit  # make stops at the probe's exit 1, before pip-audit's "Dependency not found on PyPI"


def test_no_example_in_help_writes_over_the_bundled_models() -> None:
    """make help's examples are run as written: an output path under model/weights would replace a committed model
    (the quantize example once wrote model/weights/unet-int8.onnx)."""
    listing = subprocess.run(["make", "help"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    outputs = re.findall(r"(?:-o|OUT=|\.onnx) +(\S+\.onnx)", listing) + re.findall(r"\S+\.onnx (\S+\.onnx)", listing)
    assert "runs/int8.onnx" in outputs
    assert not [path for path in outputs if path.startswith("model/weights")]
