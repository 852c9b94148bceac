"""Which onnxruntime execution providers run the model: a preference list, checked against this build.

``INFERENCE_PROVIDERS`` is a comma-separated preference (``cuda``, ``tensorrt``,
``openvino``, ``dnnl``, ``cpu``). Providers this onnxruntime build lacks are skipped
with one warning naming what it has; if none of the listed ones exists the model
is refused with a message naming the setting (the holder answers 503 with it).
onnxruntime falls back from the first provider to the next for nodes the first
cannot run, so the chosen list keeps the preference's order, with the CPU last
whenever it was asked for. https://onnxruntime.ai/docs/execution-providers/
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)

PROVIDERS = {
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
    "dnnl": "DnnlExecutionProvider",
    "cpu": "CPUExecutionProvider",
}


class NoProviderAvailable(RuntimeError):
    """None of the preferred providers exists in this onnxruntime build."""


@dataclass(frozen=True)
class CudaOptions:
    """The CUDA provider's options that matter for a server (https://onnxruntime.ai/docs/execution-providers/CUDA-ExecutionProvider.html)."""

    device_id: int = 0
    arena_extend_strategy: str = "kSameAsRequested"  # grow the arena by what is asked, not to the next power of 2
    cudnn_conv_algo_search: str = "EXHAUSTIVE"  # one fixed input size: search once, run the fastest

    def as_provider_options(self) -> dict[str, str]:
        return {"device_id": str(self.device_id), "arena_extend_strategy": self.arena_extend_strategy,
                "cudnn_conv_algo_search": self.cudnn_conv_algo_search}


def parse_preference(value: str) -> tuple[str, ...]:
    """``"cuda, cpu"`` -> ("cuda", "cpu"); ValueError for a name this server does not know, or none."""
    names = tuple(name.strip().lower() for name in value.split(",") if name.strip())
    unknown = [name for name in names if name not in PROVIDERS]
    if unknown or not names:
        raise ValueError(f"INFERENCE_PROVIDERS {value!r}: each must be one of {', '.join(PROVIDERS)}")
    return names


def choose(preference: Sequence[str], available: Sequence[str]) -> list[str]:
    """onnxruntime's names of the preferred providers this build has, in order; NoProviderAvailable if none."""
    chosen = [PROVIDERS[name] for name in dict.fromkeys(preference) if PROVIDERS[name] in available]
    skipped = [name for name in preference if PROVIDERS[name] not in available]
    if not chosen:
        raise NoProviderAvailable(
            f"none of INFERENCE_PROVIDERS={','.join(preference)} is in this onnxruntime build (it has "
            f"{', '.join(available)}): install onnxruntime-gpu (requirements-gpu.txt) or set INFERENCE_PROVIDERS=cpu"
        )
    if skipped:
        logger.warning("execution providers skipped", extra={"skipped": skipped, "available": list(available)})
    return chosen


def with_options(providers: Sequence[str], cuda: CudaOptions) -> list[tuple[str, dict[str, Any]]]:
    """(name, options) per provider, as ``InferenceSession(providers=...)`` takes them."""
    return [(name, cuda.as_provider_options() if name == PROVIDERS["cuda"] else {}) for name in providers]
