"""app.settings: defaults, environment overrides and validation."""

from __future__ import annotations

from pathlib import Path

import pytest
from app import settings as settings_module
from app.settings import Settings, default_model_uri, get_settings
from pydantic import ValidationError

REPO = Path(__file__).resolve().parents[2]

DEFAULTS = {
    "MODEL_SHA256": None,
    "MODEL_CACHE_DIR": Path("/tmp/models"),
    "MODEL_RETRY_SECONDS": 5.0,
    "MAX_UPLOAD_BYTES": 4_400_000,
    "MAX_PIXELS": 50_000_000,
    "MAX_RESPONSE_BYTES": None,
    "S3_MAX_UPLOAD_BYTES": 50_000_000,
    "S3_MAX_PIXELS": 100_000_000,
    "OVERLAY_COLOR": "#ff3b30",
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


def test_model_uri_defaults_to_the_bundled_model_of_this_checkout(clean_env: pytest.MonkeyPatch) -> None:
    assert Settings().MODEL_URI == str(REPO / "model" / "weights" / "unet.onnx")


def test_model_uri_falls_back_to_the_copy_next_to_the_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    packaged = tmp_path / "app" / "model" / "unet.onnx"
    packaged.parent.mkdir(parents=True)
    packaged.write_bytes(b"onnx")
    monkeypatch.setattr(settings_module, "CHECKOUT_MODEL", tmp_path / "missing.onnx")
    monkeypatch.setattr(settings_module, "PACKAGED_MODEL", packaged)
    assert default_model_uri() == str(packaged)
    packaged.unlink()
    assert default_model_uri() == str(tmp_path / "missing.onnx")  # neither: the checkout path, named in errors


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("MODEL_URI", "s3://bucket/models/unet.onnx", "s3://bucket/models/unet.onnx"),
        ("MODEL_SHA256", "ab" * 32, "ab" * 32),
        ("MAX_UPLOAD_BYTES", "1000", 1000),
        ("MAX_PIXELS", "2000000", 2_000_000),
        ("MAX_RESPONSE_BYTES", "4400000", 4_400_000),
        ("OVERLAY_COLOR", "0,255,0", "0,255,0"),
        ("OVERLAY_ALPHA", "1", 1.0),
        ("LOG_LEVEL", "debug", "DEBUG"),
        ("INFERENCE_THREADS", "3", 3),
        ("MAX_CONCURRENCY", "2", 2),
        ("MAX_QUEUE", "0", 0),
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
    ],
)
def test_invalid_values_fail_at_startup(clean_env: pytest.MonkeyPatch, name: str, value: str) -> None:
    clean_env.setenv(name, value)
    with pytest.raises(ValidationError, match=name):
        Settings()


def test_get_settings_is_built_once() -> None:
    assert get_settings() is get_settings()
