"""Both Lambda functions with a model published to S3 (moto): downloaded, verified, refused, picked up late."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from app.aws.lambda_http import make_http_handler
from app.aws.lambda_s3 import make_upload_handler
from app.aws.observability import LambdaHandler
from app.aws.s3_client import get_s3_client
from app.aws.s3_trigger import S3Trigger
from app.core.inference.holder import ModelNotReady
from app.core.settings import Settings
from app.http.factory import create_app
from app.http.work_queue import WorkQueue
from app.runtime import build_holder
from scripts.invoke import LambdaContext
from tests.support import BUCKET, SAMPLE_JPEG, load_event, sha256_of

MODEL_KEY = "models/tiny.onnx"


@dataclass(frozen=True)
class Functions:
    """What app.lambda_api and app.lambda_upload build at init, over the given settings."""

    api: LambdaHandler
    upload: LambdaHandler
    loaded_at_init: bool


def deploy(settings: Settings) -> Functions:
    holder = build_holder(settings)
    loaded = holder.try_load()
    app = create_app(settings, holder, WorkQueue.from_settings(settings))
    trigger = S3Trigger(get_s3_client, holder, settings)
    return Functions(make_http_handler(app), make_upload_handler(trigger), loaded)


@pytest.fixture
def s3_model(s3: Any, tiny_model_path: Path, tmp_path: Path) -> Callable[..., Functions]:
    """``s3_model(sha256=..., publish=True)``: both functions with MODEL_URI the tiny model in moto's S3."""

    def make(sha256: str | None = None, publish: bool = True) -> Functions:
        if publish:
            s3.upload_file(str(tiny_model_path), BUCKET, MODEL_KEY)
        return deploy(Settings(MODEL_URI=f"s3://{BUCKET}/{MODEL_KEY}", MODEL_SHA256=sha256,
                               MODEL_CACHE_DIR=tmp_path / "cache", MODEL_RETRY_SECONDS=0.05))

    return make


# --- the model from S3 ----------------------------------------------------------------------


def test_model_downloaded_from_s3_serves_the_s3_trigger(
    s3: Any, s3_model: Callable[..., Functions], tiny_model_path: Path, lambda_context: LambdaContext, tmp_path: Path,
) -> None:
    sha = sha256_of(tiny_model_path)
    functions = s3_model(sha256=sha)
    s3.put_object(Bucket=BUCKET, Key="uploads/my photo+1.jpg", Body=SAMPLE_JPEG.read_bytes())
    functions.upload(load_event("s3_put_upload.json"), lambda_context)
    summary = json.loads(s3.get_object(Bucket=BUCKET, Key="overlays/my photo+1.jpg.json")["Body"].read())
    assert summary["model"] == {"name": "tiny-test-unet", "version": "0.0.1", "sha256": sha}
    [cached] = (tmp_path / "cache").iterdir()
    assert cached.read_bytes() == tiny_model_path.read_bytes()


def test_sha_mismatch_refuses_to_serve(s3_model: Callable[..., Functions], lambda_context: LambdaContext) -> None:
    functions = s3_model(sha256="0" * 64)
    response = functions.api(load_event("http_api_post_predict.json"), lambda_context)
    assert response["statusCode"] == 503
    assert "ModelIntegrityError" in json.loads(response["body"])["detail"]
    assert functions.api(load_event("http_api_get_root.json"), lambda_context)["statusCode"] == 200  # alive, not ready
    with pytest.raises(ModelNotReady, match="MODEL_SHA256 is 0000"):
        functions.upload(load_event("s3_put_upload.json"), lambda_context)


def test_model_published_after_init_is_picked_up_without_a_new_environment(
    s3: Any, s3_model: Callable[..., Functions], tiny_model_path: Path, lambda_context: LambdaContext,
) -> None:
    functions = s3_model(publish=False)
    assert not functions.loaded_at_init  # nothing published yet
    assert functions.api(load_event("http_api_post_predict.json"), lambda_context)["statusCode"] == 503
    s3.upload_file(str(tiny_model_path), BUCKET, MODEL_KEY)  # make publish-model
    time.sleep(0.25)  # well past MODEL_RETRY_SECONDS (0.05): the back-off, not a speed, decides
    assert functions.api(load_event("http_api_post_predict.json"), lambda_context)["statusCode"] == 200
