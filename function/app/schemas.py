"""The API's request options and response bodies, as they appear in the OpenAPI schema (/docs)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, field_validator

from app.overlay import parse_color
from app.segmenter import ModelInfo


class PredictOptions(BaseModel):
    """Query options of ``POST /predict``; each defaults to the model's or the server's setting."""

    threshold: float | None = Field(
        default=None, gt=0.0, lt=1.0,
        description="Foreground where the model's probability >= threshold. Default: the model's own (metadata).",
    )
    alpha: float | None = Field(
        default=None, ge=0.0, le=1.0,
        description="Opacity of the colour over the foreground: 0 leaves the image as is, 1 paints it solid. "
        "Default: OVERLAY_ALPHA (0.5).",
    )
    color: str | None = Field(
        default=None, examples=["ff3b30", "#ff3b30", "255,59,48"],
        description="Overlay colour as 'rrggbb', '#rrggbb' (send '#' as %23) or 'r,g,b'. Default: OVERLAY_COLOR.",
    )
    output: Literal["overlay", "mask"] = Field(
        default="overlay",
        description="'overlay': the image with the foreground tinted; 'mask': the mask as a greyscale PNG "
        "(255 foreground, 0 background). Both at the uploaded image's size and EXIF orientation.",
    )

    @field_validator("color")
    @classmethod
    def _color_parses(cls, value: str | None) -> str | None:
        if value is not None:
            parse_color(value)
        return value


class ErrorBody(BaseModel):
    """Every error: one sentence on what went wrong and what to send instead."""

    detail: str


class Health(BaseModel):
    """Readiness: ``ready`` with the model's identity, or ``unavailable`` with the reason."""

    status: Literal["ready", "unavailable"]
    model: ModelInfo | None = None  # the segmenter's own dataclass: pydantic validates and documents it
    detail: str | None = None
