"""scripts/: `make invoke` in fresh processes (a Lambda init each), `make publish-model`, the Makefile wiring."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from app.aws.model_store import fetch_model
from scripts import publish_model
from tests.support import BUCKET, REPO, sha256_of

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def invoke(event: str, env: dict[str, str], *flags: str, out: Path) -> tuple[int, dict[str, Any]]:
    """`python -m scripts.invoke` in a new process: import (init) and one invocation, like a cold start."""
    command = [sys.executable, "-m", "scripts.invoke", f"events/{event}", "--json", "--out", str(out), *flags]
    done = subprocess.run(command, cwd=REPO, env={**os.environ, **env}, capture_output=True, text=True, timeout=120)
    return done.returncode, json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture
def bundled_in_s3(s3: Any, bundled_model_path: Path, aws_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    """The environment of a deployed function: the bundled model published to moto's bucket, pinned by sha256."""
    key, sha = publish_model.publish(bundled_model_path, BUCKET)
    model = {"MODEL_URI": f"s3://{BUCKET}/{key}", "MODEL_SHA256": sha, "MODEL_CACHE_DIR": str(tmp_path / "tmp")}
    return {**aws_env, **model}


@pytest.mark.slow
def test_cold_starts_download_the_model_once_per_environment(bundled_in_s3: dict[str, str], tmp_path: Path) -> None:
    # GIVEN a first init: the model comes from S3 into the cache, and the request is served
    status, summary = invoke("http_api_post_predict.json", bundled_in_s3, out=tmp_path / "out")
    assert (status, summary["statusCode"], summary["isBase64Encoded"]) == (0, 200, True)
    assert Path(summary["saved"]).read_bytes().startswith(PNG_SIGNATURE)
    [cached] = Path(bundled_in_s3["MODEL_CACHE_DIR"]).iterdir()
    before = cached.stat()
    # WHEN the environment initialises again (same /tmp) THEN the cached file is reused, not rewritten
    status, summary = invoke("http_api_post_predict.json", bundled_in_s3, out=tmp_path / "out")
    assert (status, summary["statusCode"]) == (0, 200)
    after = cached.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("event", "expected_status", "expected"),
    [
        ("http_api_post_predict.json", 0, {"kind": "http", "statusCode": 503}),
        ("http_api_get_root.json", 0, {"kind": "http", "statusCode": 200}),
        ("s3_put_upload.json", 1, {"kind": "error", "error": "ModelNotReady"}),
    ],
)
def test_sha_mismatch_at_init(
    bundled_in_s3: dict[str, str], tmp_path: Path, event: str, expected_status: int, expected: dict[str, Any]
) -> None:
    env = {**bundled_in_s3, "MODEL_SHA256": "f" * 64}
    status, summary = invoke(event, env, out=tmp_path / "out")
    assert status == expected_status
    assert {key: summary[key] for key in expected} == expected


@pytest.mark.slow
def test_invoke_serves_s3_events_from_a_local_s3(tmp_path: Path) -> None:
    """`make invoke EVENT=events/s3_put_batch.json` on a machine without AWS."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("AWS_") and name != "MODEL_URI"}
    command = [sys.executable, "-m", "scripts.invoke", "events/s3_put_batch.json", "--local-s3", "--json",
               "--out", str(tmp_path)]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=True)
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert [record["status"] for record in summary["records"]] == ["processed", "processed", "skipped"]
    saved = sorted(Path(path).relative_to(tmp_path / "s3_put_batch").as_posix() for path in summary["saved"])
    assert saved == sorted(f"overlays/batch/{name}{suffix}" for name in ("blobs.jpg", "blobs(2).png")
                           for suffix in (".png", ".mask.png", ".json"))
    assert "PUT /" not in done.stderr  # moto's access log stays out of the way


@pytest.mark.slow
@pytest.mark.parametrize(
    ("event", "result", "saved"),
    [
        ("s3_batch_operations_v1.json", "overlays/photos/2019/summer holiday/cat+dog 1.jpg.png",
         [f"overlays/photos/2019/summer holiday/cat+dog 1.jpg{suffix}" for suffix in (".json", ".mask.png", ".png")]),
        ("s3_batch_operations_v2.json", "overlays/archive/scans/page 7+8.png.cutout.webp",
         [f"overlays/archive/scans/page 7+8.png{suffix}" for suffix in (".cutout.webp", ".json", ".mask.png")]),
    ],
)
def test_invoke_runs_batch_operations_events_on_a_local_s3(
    event: str, result: str, saved: list[str], tmp_path: Path
) -> None:
    """`make invoke EVENT=events/s3_batch_operations_v1.json`: the task's answer, and its outputs downloaded."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("AWS_") and name != "MODEL_URI"}
    command = [sys.executable, "-m", "scripts.invoke", f"events/{event}", "--local-s3", "--json",
               "--out", str(tmp_path)]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=True)
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert (summary["kind"], summary["treatMissingKeysAs"]) == ("batch", "PermanentFailure")
    assert [(r["resultCode"], r["resultString"]) for r in summary["results"]] == [("Succeeded", result)]
    out = tmp_path / event.removesuffix(".json")
    assert [Path(path).relative_to(out).as_posix() for path in summary["saved"]] == saved


@pytest.mark.slow
@pytest.mark.parametrize("event", ["http_api_post_predict.json", "rest_api_post_predict.json", "s3_put_upload.json"])
def test_invoke_takes_the_users_image_and_prints_only_the_summary(event: str, tmp_path: Path) -> None:
    """`make invoke EVENT=... IMAGE=photo.jpg`: the result has the user's image's size; stdout is the summary alone."""
    photo = tmp_path / "photo.jpg"
    Image.new("RGB", (61, 37), (10, 200, 30)).save(photo)
    env = {name: value for name, value in os.environ.items() if not name.startswith("AWS_") and name != "MODEL_URI"}
    command = [sys.executable, "-m", "scripts.invoke", f"events/{event}", "--local-s3", "--json",
               "--image", str(photo), "--out", str(tmp_path / "out")]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=True)
    [line] = done.stdout.splitlines()  # the app's JSON logs and metrics went to stderr
    summary = json.loads(line)
    results = [path for path in summary["saved"] if path.endswith(".jpg.png")]  # S3: the overlay, not the mask
    saved = summary["saved"] if summary["kind"] == "http" else results[0]
    with Image.open(saved) as result:
        assert result.size == (61, 37)
    assert '"message":"model loaded"' in done.stderr


def test_publish_model_uploads_content_addressed_with_its_sha(
    s3: Any, tiny_model_path: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    publish_model.main(["--model", str(tiny_model_path), "--bucket", BUCKET])
    sha = sha256_of(tiny_model_path)
    key = f"models/tiny-{sha[:12]}.onnx"
    assert s3.head_object(Bucket=BUCKET, Key=key)["Metadata"] == {"sha256": sha}
    printed = capsys.readouterr().out.splitlines()
    assert printed[:2] == [f"ModelKey={key}", f"ModelSha256={sha}"]
    # the printed values are exactly what the functions then load and verify
    assert fetch_model(f"s3://{BUCKET}/{key}", sha, tmp_path).sha256 == sha
