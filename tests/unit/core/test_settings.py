"""app.core.settings: defaults, environment overrides and validation."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from app.core import settings as settings_module
from app.core.resources import memory_limit
from app.core.settings import Settings, default_model_uri, get_settings
from tests.support import REPO

DEFAULTS = {
    "MODEL_SHA256": None,
    "MODEL_CACHE_DIR": Path("/tmp/models"),
    "MODEL_RETRY_SECONDS": 5.0,
    "MAX_UPLOAD_BYTES": 4_400_000,
    "MAX_PIXELS": 50_000_000,
    "MAX_RESPONSE_BYTES": None,
    "S3_MAX_UPLOAD_BYTES": 50_000_000,
    "S3_MAX_PIXELS": 100_000_000,
    "OVERLAY_COLOR": (255, 59, 48),  # "#ff3b30", parsed where it is read
    "OVERLAY_ALPHA": 0.5,
    "LOG_LEVEL": "INFO",
    "INFERENCE_THREADS": None,
    "MAX_CONCURRENCY": None,
    "MAX_QUEUE": 8,
}


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in [*DEFAULTS, "MODEL_URI"]:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.mark.parametrize(("name", "expected"), DEFAULTS.items())
def test_defaults(clean_env: pytest.MonkeyPatch, name: str, expected: object) -> None:
    assert getattr(Settings(), name) == expected


def test_the_memory_budget_defaults_to_what_the_process_may_use(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.delenv("MEMORY_BUDGET_MB", raising=False)
    # The limit itself (cgroup, Lambda, physical) has app.core.resources.memory_limit's own tests.
    clean_env.setattr(memory_limit, "memory_limit_bytes", lambda: 1_234_567_890)
    assert Settings().MEMORY_BUDGET_MB == 1234


def test_model_uri_defaults_to_the_bundled_model_of_this_checkout(clean_env: pytest.MonkeyPatch) -> None:
    assert Settings().MODEL_URI == str(REPO / "model" / "weights" / "unet-int8.onnx")


def test_model_uri_falls_back_to_the_image_copy_then_the_installed_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    packaged, installed = tmp_path / "app" / "model" / "unet.onnx", tmp_path / "share" / "unet.onnx"
    for path in (packaged, installed):
        path.parent.mkdir(parents=True)
        path.write_bytes(b"onnx")
    monkeypatch.setattr(settings_module, "CHECKOUT_MODEL", tmp_path / "missing.onnx")
    monkeypatch.setattr(settings_module, "PACKAGED_MODEL", packaged)
    monkeypatch.setattr(settings_module, "INSTALLED_MODEL", installed)
    assert default_model_uri() == str(packaged)
    packaged.unlink()
    assert default_model_uri() == str(installed)  # pip install .'s data file
    installed.unlink()
    assert default_model_uri() == str(tmp_path / "missing.onnx")  # none: the checkout path, named in errors


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("MODEL_URI", "s3://bucket/models/unet.onnx", "s3://bucket/models/unet.onnx"),
        ("MODEL_SHA256", "ab" * 32, "ab" * 32),
        ("MAX_UPLOAD_BYTES", "1000", 1000),
        ("MAX_PIXELS", "2000000", 2_000_000),
        ("MAX_RESPONSE_BYTES", "4400000", 4_400_000),
        ("OVERLAY_COLOR", "0,255,0", (0, 255, 0)),
        ("OVERLAY_COLOR", "#00c8ff", (0, 200, 255)),
        ("MODEL_URI", "/abs/model.onnx", "/abs/model.onnx"),
        ("OVERLAY_ALPHA", "1", 1.0),
        ("LOG_LEVEL", "debug", "DEBUG"),
        ("INFERENCE_THREADS", "3", 3),
        ("MAX_CONCURRENCY", "2", 2),
        ("MAX_QUEUE", "0", 0),
        ("MEMORY_BUDGET_MB", "600", 600),
    ],
)
def test_environment_overrides(clean_env: pytest.MonkeyPatch, name: str, value: str, expected: object) -> None:
    clean_env.setenv(name, value)
    assert getattr(Settings(), name) == expected


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("OVERLAY_COLOR", "red"),
        ("OVERLAY_ALPHA", "1.5"),
        ("LOG_LEVEL", "LOUD"),
        ("MAX_PIXELS", "0"),
        ("MAX_UPLOAD_BYTES", "lots"),
        ("MAX_QUEUE", "-1"),
        ("INFERENCE_THREADS", "0"),
        ("MODEL_RETRY_SECONDS", "0"),
        ("MEMORY_BUDGET_MB", "0"),
        ("MEMORY_BUDGET_MB", "600MB"),
    ],
)
def test_invalid_values_fail_at_startup(clean_env: pytest.MonkeyPatch, name: str, value: str) -> None:
    clean_env.setenv(name, value)
    with pytest.raises(ValidationError, match=name):
        Settings()


@pytest.mark.parametrize("relative", ["runs/mine/unet.onnx", "./unet.onnx", "../elsewhere/unet.onnx"])
def test_a_relative_model_uri_is_relative_to_where_the_command_was_typed(
    clean_env: pytest.MonkeyPatch, tmp_path: Path, relative: str
) -> None:
    clean_env.chdir(tmp_path)
    clean_env.setenv("MODEL_URI", relative)
    assert Settings().MODEL_URI == str(Path(tmp_path, relative).absolute())


def test_get_settings_is_built_once() -> None:
    assert get_settings() is get_settings()
