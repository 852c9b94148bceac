"""app.http.schemas: the query options use the core's ranges; /health serialises the model's contract;
uploads declare the core's media types, and their options' schema the core's rules."""

from __future__ import annotations

from typing import Any, get_args

import jsonschema
import pytest
from pydantic import ValidationError

from app.core.decoding.imaging import MEDIA_TYPES
from app.core.inference.contract import ModelInfo
from app.core.options import ImageFormat, Output, RenderOptions
from app.http.schemas import Health, PredictOptions, UploadContentType, UploadOptions


@pytest.mark.parametrize(
    ("given", "field"),
    [({"threshold": 0}, "threshold"), ({"threshold": 1}, "threshold"), ({"alpha": 1.5}, "alpha"),
     ({"alpha": -1}, "alpha"), ({"output": "gif"}, "output")],
)
def test_out_of_range_options_are_refused(given: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as raised:
        PredictOptions(**given)
    assert [error["loc"][0] for error in raised.value.errors()] == [field]


def test_every_option_is_optional_and_the_colour_stays_text() -> None:
    assert PredictOptions().model_dump() == {"threshold": None, "alpha": None, "color": None, "output": "overlay",
                                             "format": None, "quality": None}
    assert PredictOptions(color="red").color == "red"  # parsed (and refused) where RenderOptions is built


def test_health_serialises_the_contract_and_its_sha256() -> None:
    info = ModelInfo(input_height=8, input_width=16, channel_order="RGB", scale=0.5, mean=(0.1, 0.2, 0.3),
                     std=(1.0, 1.0, 1.0), threshold=0.4, name="n", version="v",
                     metrics={"held_out": {"iou": 0.9}}, sha256="c" * 64)
    assert Health(status="ready", model=info, provider="CUDAExecutionProvider").model_dump(mode="json") == {
        "status": "ready", "detail": None, "provider": "CUDAExecutionProvider",
        "model": {"input_height": 8, "input_width": 16, "channel_order": "RGB", "scale": 0.5,
                  "mean": [0.1, 0.2, 0.3], "std": [1.0, 1.0, 1.0], "threshold": 0.4, "name": "n", "version": "v",
                  "metrics": {"held_out": {"iou": 0.9}}, "sha256": "c" * 64},
        "defaults": None, "limits": None, "api_keys": False,
    }


def test_an_upload_may_declare_every_media_type_the_core_decodes() -> None:
    assert get_args(UploadContentType) == MEDIA_TYPES
    assert {"image/heic", "image/heif", "image/avif"} <= set(MEDIA_TYPES)


@pytest.mark.parametrize("output", get_args(Output))
@pytest.mark.parametrize("fmt", get_args(ImageFormat))
def test_the_upload_options_schema_refuses_what_the_options_refuse(output: str, fmt: str) -> None:
    # Found by make api-fuzz: {"output": "cutout", "format": "jpeg"} passed the schema and got a 422.
    schema = UploadOptions.model_json_schema()
    valid = jsonschema.Draft202012Validator(schema).is_valid({"output": output, "format": fmt})
    try:
        RenderOptions(output=output, format=fmt)  # type: ignore[arg-type]
    except ValidationError:
        assert not valid
    else:
        assert valid
