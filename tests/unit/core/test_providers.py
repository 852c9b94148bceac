"""app.core.inference.providers: the preference list against this build's providers, and a table of lists -> choice."""

from __future__ import annotations

import logging
from pathlib import Path

import onnxruntime as ort
import pytest

from app.core.inference.holder import ModelNotReady
from app.core.inference.providers import CudaOptions, NoProviderAvailable, choose, parse_preference, with_options
from app.core.settings import Settings
from app.runtime import build_holder

CPU, CUDA = "CPUExecutionProvider", "CUDAExecutionProvider"
TRT, DNNL = "TensorrtExecutionProvider", "DnnlExecutionProvider"
GPU_BUILD = [TRT, CUDA, CPU]


def test_this_machines_onnxruntime_has_the_cpu_and_no_cuda() -> None:
    """The facts the other tests stand on: CI runs onnxruntime's CPU build."""
    available = ort.get_available_providers()
    assert CPU in available and CUDA not in available
    assert choose(("cuda", "cpu"), available) == [CPU]


# id: (preference, the build's providers, chosen or None for a refusal)
CASES = {
    "cpu": (("cpu",), [CPU], [CPU]),
    "cuda-on-cpu-build": (("cuda", "cpu"), [CPU], [CPU]),
    "cuda-on-gpu-build": (("cuda", "cpu"), GPU_BUILD, [CUDA, CPU]),
    "order-kept": (("cpu", "cuda"), GPU_BUILD, [CPU, CUDA]),
    "tensorrt-first": (("tensorrt", "cuda", "cpu"), GPU_BUILD, [TRT, CUDA, CPU]),
    "duplicates-once": (("cuda", "cuda", "cpu"), GPU_BUILD, [CUDA, CPU]),
    "cuda-only-on-cpu-build": (("cuda",), [CPU], None),
    "dnnl-openvino-absent": (("dnnl", "openvino"), [CPU], None),
    "dnnl-present": (("dnnl", "cpu"), [DNNL, CPU], [DNNL, CPU]),
}


@pytest.mark.parametrize(("preference", "available", "chosen"), CASES.values(), ids=CASES)
def test_preference_against_a_build(
    preference: tuple[str, ...], available: list[str], chosen: list[str] | None
) -> None:
    if chosen is None:
        with pytest.raises(NoProviderAvailable, match=f"none of INFERENCE_PROVIDERS={','.join(preference)}"):
            choose(preference, available)
    else:
        assert choose(preference, available) == chosen


def test_skipped_providers_are_named_in_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="app.core.inference.providers"):
        choose(("cuda", "tensorrt", "cpu"), [CPU])
    [record] = caplog.records
    assert (record.message, vars(record)["skipped"], vars(record)["available"]) == (
        "execution providers skipped", ["cuda", "tensorrt"], [CPU])


@pytest.mark.parametrize(("value", "parsed"), [("cpu", ("cpu",)), (" CUDA , cpu ", ("cuda", "cpu"))])
def test_parse_preference(value: str, parsed: tuple[str, ...]) -> None:
    assert parse_preference(value) == parsed


@pytest.mark.parametrize("value", ["", " , ", "gpu", "cuda,metal"])
def test_unknown_names_fail_at_start_up(value: str) -> None:
    with pytest.raises(ValueError, match="INFERENCE_PROVIDERS"):
        Settings(INFERENCE_PROVIDERS=value)


def test_cuda_options_travel_with_the_cuda_provider_only() -> None:
    options = CudaOptions(device_id=1, arena_extend_strategy="kNextPowerOfTwo", cudnn_conv_algo_search="HEURISTIC")
    assert with_options([CUDA, CPU], options) == [
        (CUDA, {"device_id": "1", "arena_extend_strategy": "kNextPowerOfTwo", "cudnn_conv_algo_search": "HEURISTIC"}),
        (CPU, {}),
    ]
    settings = Settings(CUDA_DEVICE_ID=1, CUDA_ARENA_EXTEND_STRATEGY="kNextPowerOfTwo",
                        CUDNN_CONV_ALGO_SEARCH="HEURISTIC")
    assert settings.cuda_options == options


def test_no_provider_available_refuses_the_model_with_the_setting_named(tiny_model_path: Path) -> None:
    holder = build_holder(Settings(MODEL_URI=str(tiny_model_path), INFERENCE_PROVIDERS="cuda"))
    with pytest.raises(ModelNotReady, match="NoProviderAvailable: none of INFERENCE_PROVIDERS=cuda"):
        holder.get()


def test_the_segmenter_reports_the_provider_that_runs(tiny_model_path: Path) -> None:
    holder = build_holder(Settings(MODEL_URI=str(tiny_model_path), INFERENCE_PROVIDERS="cuda,cpu"))
    assert holder.get().provider == CPU
