"""app.core.inference.contract: the ONNX metadata contract, read without torch."""

from __future__ import annotations

from dataclasses import fields

import pytest

from app.core.inference.contract import InvalidModel, ModelInfo, ModelSpec, read_spec

# What model/metadata.py's build_metadata writes for the reference preprocessing.
CONTRACT = {
    "input_height": "256", "input_width": "320", "channel_order": "RGB", "resize": "bilinear",
    "scale": "0.00392156862745098", "mean": "[0.485, 0.456, 0.406]", "std": "[0.229, 0.224, 0.225]",
    "layout": "NCHW", "threshold": "0.5", "model_name": "unet-x", "model_version": "2.1.0",
    "training_data": "synthetic", "metrics": '{"dice": 0.99, "iou": 0.98}',
}


def test_reads_every_field_of_the_contract() -> None:
    assert read_spec(CONTRACT) == ModelSpec(
        input_height=256, input_width=320, channel_order="RGB", scale=1 / 255,
        mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), threshold=0.5,
        name="unet-x", version="2.1.0", metrics={"validation": {"dice": 0.99, "iou": 0.98}},
    )


@pytest.mark.parametrize(
    ("written", "read"),
    [
        ('{"dice": 0.99, "iou": 0.98}', {"validation": {"dice": 0.99, "iou": 0.98}}),  # model.export's flat dict
        ('{"validation": {"iou": 0.98}, "held_out": {"iou": 0.99, "images": 500}}',
         {"validation": {"iou": 0.98}, "held_out": {"iou": 0.99, "images": 500.0}}),
        ("{}", {}),
    ],
    ids=["flat-is-validation", "by-split", "none"],
)
def test_metrics_are_labelled_by_split(written: str, read: dict[str, dict[str, float]]) -> None:
    assert read_spec({**CONTRACT, "metrics": written}).metrics == read


def test_model_info_is_the_contract_plus_the_sha256() -> None:
    spec = read_spec(CONTRACT)
    info = ModelInfo.of(spec, "ab" * 32)
    assert (info.sha256, info.name, info.input_width, info.metrics) == ("ab" * 32, "unet-x", 320, spec.metrics)
    assert {field.name for field in fields(info)} == {field.name for field in fields(spec)} | {"sha256"}


def test_identity_and_metrics_are_optional() -> None:
    bare = {k: v for k, v in CONTRACT.items() if k not in {"model_name", "model_version", "metrics"}}
    spec = read_spec(bare)
    assert (spec.name, spec.version, spec.metrics) == ("unnamed", "unversioned", {})


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"scale": None}, "no 'scale' key"),
        ({"channel_order": None}, "no 'channel_order' key"),
        ({"input_width": "wide"}, "malformed"),
        ({"mean": "not json"}, "malformed"),
        ({"std": "[1, 2, 3, 4]"}, "not a list of 3 numbers"),
        ({"resize": "bicubic"}, "resize is 'bicubic'; this server supports bilinear"),
        ({"channel_order": "GRB"}, "channel_order is 'GRB'"),
        ({"layout": "NHWC"}, "layout is 'NHWC'"),
        ({"threshold": "0"}, "outside (0, 1)"),
        ({"input_height": "0"}, "not positive"),
        ({"std": "[0.2, -0.1, 0.2]"}, "non-positive"),
        ({"metrics": '{"iou": 0.9, "held_out": {"iou": 0.9}}'}, "mix numbers with other values"),
        ({"metrics": "[0.9]"}, "not an object"),
    ],
)
def test_unusable_metadata_is_refused_with_the_reason(changes: dict[str, str | None], message: str) -> None:
    metadata = {k: v for k, v in {**CONTRACT, **changes}.items() if v is not None}
    with pytest.raises(InvalidModel) as raised:
        read_spec(metadata)
    assert message in str(raised.value)


@pytest.mark.parametrize("key", ["resize", "layout"])
def test_a_missing_preprocessing_key_is_an_invalid_model_not_a_key_error(key: str) -> None:
    incomplete = {k: v for k, v in CONTRACT.items() if k != key}
    with pytest.raises(InvalidModel, match=f"the model's {key} is None"):
        read_spec(incomplete)
