"""app.model_holder: load once, 503-able failures, retry after a back-off, never wedged."""

from __future__ import annotations

import hashlib
import shutil
import threading
from pathlib import Path

import pytest
from app import model_holder
from app.model_holder import ModelHolder, ModelNotReady
from app.settings import Settings


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def fetch_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records every model fetch (the real one still runs)."""
    calls: list[str] = []
    real = model_holder.fetch_model

    def counting(uri: str, expected_sha256: str | None, cache_dir: Path) -> object:
        calls.append(uri)
        return real(uri, expected_sha256, cache_dir)

    monkeypatch.setattr(model_holder, "fetch_model", counting)
    return calls


def test_loads_once_and_reports_the_file_sha256(tiny_model_path: Path, fetch_calls: list[str]) -> None:
    holder = ModelHolder(Settings(MODEL_URI=str(tiny_model_path)))
    assert holder.loaded is None
    segmenter = holder.get()
    assert holder.get() is segmenter is holder.loaded
    assert segmenter.info.sha256 == hashlib.sha256(tiny_model_path.read_bytes()).hexdigest()
    assert fetch_calls == [str(tiny_model_path)]


def test_a_failed_load_is_retried_only_after_the_back_off(
    tiny_model_path: Path, tmp_path: Path, fetch_calls: list[str]
) -> None:
    # GIVEN no model file yet, and a clock we move by hand
    path, clock = tmp_path / "late.onnx", FakeClock()
    holder = ModelHolder(Settings(MODEL_URI=str(path), MODEL_RETRY_SECONDS=5), clock=clock)
    # WHEN loading at import THEN it fails quietly
    assert holder.try_load() is False
    assert len(fetch_calls) == 1
    # WHEN asked again within the back-off THEN 503 material, and no new attempt
    clock.now += 1
    with pytest.raises(ModelNotReady) as raised:
        holder.get()
    assert raised.value.retry_after_s == pytest.approx(4.0)
    assert str(path) in raised.value.detail
    assert len(fetch_calls) == 1
    # WHEN the model appears and the back-off has passed THEN the next call loads it
    shutil.copy(tiny_model_path, path)
    clock.now += 4
    assert holder.get().info.name == "tiny-test-unet"
    assert len(fetch_calls) == 2


@pytest.mark.parametrize(
    ("contents", "sha256", "message"),
    [
        (None, None, "no model file at"),
        (b"not an onnx file", None, "InvalidProtobuf"),
        ("tiny", "0" * 64, "ModelIntegrityError"),
    ],
    ids=["missing", "corrupt", "sha256-mismatch"],
)
def test_load_failures_become_model_not_ready(
    tiny_model_path: Path, tmp_path: Path, contents: bytes | str | None, sha256: str | None, message: str
) -> None:
    path = tmp_path / "model.onnx"
    if contents == "tiny":
        shutil.copy(tiny_model_path, path)
    elif contents is not None:
        path.write_bytes(contents)
    holder = ModelHolder(Settings(MODEL_URI=str(path), MODEL_SHA256=sha256, MODEL_RETRY_SECONDS=30))
    with pytest.raises(ModelNotReady) as raised:
        holder.get()
    assert message in raised.value.detail
    assert raised.value.retry_after_s == 30


def test_concurrent_first_calls_load_once(tiny_model_path: Path, fetch_calls: list[str]) -> None:
    holder = ModelHolder(Settings(MODEL_URI=str(tiny_model_path)))
    results: list[object] = []
    start = threading.Barrier(8)

    def call() -> None:
        start.wait()
        results.append(holder.get())

    threads = [threading.Thread(target=call) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(fetch_calls) == 1
    assert len(results) == 8 and all(result is results[0] for result in results)
