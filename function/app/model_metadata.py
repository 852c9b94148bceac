"""The ONNX metadata contract (model/metadata.py writes it), read without torch.

A model describes its own input size, normalisation and threshold, so a retrained
model needs no code change. ``read_spec`` refuses a file whose preprocessing this
server cannot reproduce exactly, rather than serving subtly wrong masks.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

SUPPORTED_RESIZE = "bilinear"  # Pillow BILINEAR, as model.preprocessing.Preprocessing.resize_image
SUPPORTED_LAYOUT = "NCHW"
SUPPORTED_CHANNEL_ORDERS = ("RGB", "BGR")


class InvalidModel(ValueError):
    """The model file lacks, or has unusable, metadata: re-export it with model/export.py."""


@dataclass(frozen=True)
class ModelSpec:
    """Everything the server needs to know about a model, from its metadata."""

    input_height: int
    input_width: int
    channel_order: str
    scale: float
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    threshold: float
    name: str
    version: str
    metrics: dict[str, float] = field(default_factory=dict)


def read_spec(metadata: Mapping[str, str]) -> ModelSpec:
    """The model's ``custom_metadata_map`` -> ``ModelSpec``; ``InvalidModel`` names what is wrong."""
    try:
        spec = _parse(metadata)
    except KeyError as missing:
        raise InvalidModel(f"the model's metadata has no {missing} key: re-export it with model/export.py") from None
    except (ValueError, TypeError) as error:
        raise InvalidModel(f"the model's metadata is malformed ({error}): re-export it with model/export.py") from None
    _check_supported(metadata)
    _check_values(spec)
    return spec


def _parse(metadata: Mapping[str, str]) -> ModelSpec:
    return ModelSpec(
        input_height=int(metadata["input_height"]),
        input_width=int(metadata["input_width"]),
        channel_order=metadata["channel_order"],
        scale=float(metadata["scale"]),
        mean=_per_channel(metadata, "mean"),
        std=_per_channel(metadata, "std"),
        threshold=float(metadata["threshold"]),
        name=metadata.get("model_name", "unnamed"),
        version=metadata.get("model_version", "unversioned"),
        metrics=dict(json.loads(metadata.get("metrics", "{}"))),
    )


def _per_channel(metadata: Mapping[str, str], key: str) -> tuple[float, float, float]:
    values = json.loads(metadata[key])
    if not isinstance(values, list) or len(values) != 3:
        raise ValueError(f"{key} is {metadata[key]}, not a list of 3 numbers")
    return (float(values[0]), float(values[1]), float(values[2]))


def _check_supported(metadata: Mapping[str, str]) -> None:
    expected = {"resize": (SUPPORTED_RESIZE,), "layout": (SUPPORTED_LAYOUT,), "channel_order": SUPPORTED_CHANNEL_ORDERS}
    for key, allowed in expected.items():
        if metadata.get(key) not in allowed:  # absent counts as unsupported, not a KeyError
            raise InvalidModel(f"the model's {key} is {metadata.get(key)!r}; this server supports {', '.join(allowed)}")


def _check_values(spec: ModelSpec) -> None:
    if spec.input_height <= 0 or spec.input_width <= 0:
        raise InvalidModel(f"the model's input size {spec.input_height}x{spec.input_width} is not positive")
    if not 0.0 < spec.threshold < 1.0:
        raise InvalidModel(f"the model's threshold {spec.threshold} is outside (0, 1)")
    if any(value <= 0 for value in spec.std):
        raise InvalidModel(f"the model's std {spec.std} has a non-positive entry")
