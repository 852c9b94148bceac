"""The ONNX metadata contract (model/metadata.py writes it), read without torch.

A model describes its own input size, normalisation and threshold, so a retrained
model needs no code change. ``read_spec`` refuses a file whose preprocessing this
server cannot reproduce exactly, rather than serving subtly wrong masks.
``ModelInfo`` is that contract plus the sha256 of the file: what /health, the logs
and the S3 summaries say about the model.

Metrics are kept by the split they were measured on (the bundled model's: ``{"val": {"iou": ...},
"test": {...}}``, at the photos' own size). A file that carries one flat dict (model.export
without ``--score``: the checkpoint's validation metrics) is read as ``validation``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from pydantic import TypeAdapter, ValidationError

from app.core.options import Threshold

SUPPORTED_RESIZE = "bilinear"  # Pillow BILINEAR, as model.preprocessing.Preprocessing.resize_image
SUPPORTED_LAYOUT = "NCHW"
SUPPORTED_CHANNEL_ORDERS = ("RGB", "BGR")
UNLABELLED_METRICS_SPLIT = "validation"  # what model.export wrote into a flat "metrics" dict
THRESHOLD_RULE: TypeAdapter[float] = TypeAdapter(Threshold)


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
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)  # by split, see the module docstring


@dataclass(frozen=True, kw_only=True)
class ModelInfo(ModelSpec):
    """The loaded model: its contract and the sha256 of its file."""

    sha256: str

    @classmethod
    def of(cls, spec: ModelSpec, sha256: str) -> ModelInfo:
        return cls(**{item.name: getattr(spec, item.name) for item in fields(spec)}, sha256=sha256)


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
        metrics=metrics_by_split(json.loads(metadata.get("metrics", "{}"))),
    )


def metrics_by_split(raw: Any) -> dict[str, dict[str, float]]:
    """``{"split": {"metric": value}}``; a flat ``{"metric": value}`` is the validation split's."""
    if not isinstance(raw, dict):
        raise ValueError(f"metrics is {raw!r}, not an object")
    if all(isinstance(value, dict) for value in raw.values()):
        return {str(split): _numbers(values) for split, values in raw.items()}
    return {UNLABELLED_METRICS_SPLIT: _numbers(raw)} if raw else {}


def _numbers(values: dict[str, Any]) -> dict[str, float]:
    if not all(isinstance(value, int | float) and not isinstance(value, bool) for value in values.values()):
        raise ValueError(f"metrics {values!r} mix numbers with other values")
    return {str(name): float(value) for name, value in values.items()}


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
    try:
        THRESHOLD_RULE.validate_python(spec.threshold)
    except ValidationError:
        raise InvalidModel(f"the model's threshold {spec.threshold} is outside (0, 1)") from None
    if any(value <= 0 for value in spec.std):
        raise InvalidModel(f"the model's std {spec.std} has a non-positive entry")
