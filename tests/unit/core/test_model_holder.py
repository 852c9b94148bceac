"""app.core.inference.holder: load once, 503-able failures, retry after a back-off, never wedged.

The loader is the composition root's (``app.runtime.build_holder``) over real files,
counted by wrapping ``app.runtime.fetch_model`` (the real fetch still runs).
"""

from __future__ import annotations

import hashlib
import shutil
import threading
from pathlib import Path

import pytest

from app import runtime
from app.core.inference.holder import ModelHolder, ModelNotReady
from app.core.settings import Settings
from app.runtime import build_holder, load_segmenter


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def fetch_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records every model fetch (the real one still runs)."""
    calls: list[str] = []
    real = runtime.fetch_model

    def counting(uri: str, expected_sha256: str | None, cache_dir: Path) -> object:
        calls.append(uri)
        return real(uri, expected_sha256, cache_dir)

    monkeypatch.setattr(runtime, "fetch_model", counting)
    return calls


def test_loads_once_and_reports_the_file_sha256(tiny_model_path: Path, fetch_calls: list[str]) -> None:
    holder = build_holder(Settings(MODEL_URI=str(tiny_model_path)))
    segmenter = holder.get()
    assert holder.get() is segmenter
    assert segmenter.info.sha256 == hashlib.sha256(tiny_model_path.read_bytes()).hexdigest()
    assert fetch_calls == [str(tiny_model_path)]


def test_a_failed_load_is_retried_only_after_the_back_off(
    tiny_model_path: Path, tmp_path: Path, fetch_calls: list[str]
) -> None:
    # GIVEN no model file yet, and a clock we move by hand
    path, clock = tmp_path / "late.onnx", FakeClock()
    settings = Settings(MODEL_URI=str(path))
    holder = ModelHolder(lambda: load_segmenter(settings), retry_seconds=5, clock=clock)
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
    holder = build_holder(Settings(MODEL_URI=str(path), MODEL_SHA256=sha256, MODEL_RETRY_SECONDS=30))
    with pytest.raises(ModelNotReady) as raised:
        holder.get()
    assert message in raised.value.detail
    assert raised.value.retry_after_s == 30


def test_concurrent_first_calls_load_once(tiny_model_path: Path, fetch_calls: list[str]) -> None:
    holder = build_holder(Settings(MODEL_URI=str(tiny_model_path)))
    results: list[object] = []
    start = threading.Barrier(8, timeout=30)

    def call() -> None:
        start.wait()
        results.append(holder.get())

    threads = [threading.Thread(target=call) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(fetch_calls) == 1
    assert len(results) == 8 and all(result is results[0] for result in results)


def test_a_relative_model_uri_is_named_by_its_absolute_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN the user typed MODEL_URI=runs/mine/unet.onnx in tmp_path (the newcomer's `make serve` case)
    monkeypatch.chdir(tmp_path)
    holder = build_holder(Settings(MODEL_URI="runs/mine/unet.onnx"))
    # THEN the error names the file it tried, relative to where the command was typed
    with pytest.raises(ModelNotReady, match=f"no model file at {tmp_path / 'runs' / 'mine' / 'unet.onnx'}"):
        holder.get()
