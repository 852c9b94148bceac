"""The API's request options and response bodies, as they appear in the OpenAPI schema (/docs).

Ranges come from ``app.core.options`` (one definition for every way in); the
colour stays a string here, as the query string carries it, and is parsed when the
route builds its ``RenderOptions``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from app.core.model_contract import ModelInfo
from app.core.options import Alpha, Output, Threshold


class PredictOptions(BaseModel):
    """Query options of ``POST /predict``; each defaults to the model's or the server's setting."""

    threshold: Threshold | None = Field(
        default=None,
        description="Foreground where the model's probability >= threshold, 0 < t < 1. "
        "Default: the model's own (metadata).",
    )
    alpha: Alpha | None = Field(
        default=None,
        description="Opacity of the colour over the foreground: 0 leaves the image as is, 1 paints it solid. "
        "Default: OVERLAY_ALPHA (0.5).",
    )
    color: str | None = Field(
        default=None, examples=["ff3b30", "#ff3b30", "255,59,48"],
        description="Overlay colour as 'rrggbb', '#rrggbb' (send '#' as %23) or 'r,g,b'. Default: OVERLAY_COLOR.",
    )
    output: Output = Field(
        default="overlay",
        description="'overlay': the image with the foreground tinted; 'mask': the mask as a greyscale PNG "
        "(255 foreground, 0 background). Both at the uploaded image's size and EXIF orientation.",
    )


class ErrorBody(BaseModel):
    """Every error: one sentence on what went wrong and what to send instead."""

    detail: str


class Health(BaseModel):
    """Readiness: ``ready`` with the model's contract and identity, or ``unavailable`` with the reason."""

    status: Literal["ready", "unavailable"]
    model: ModelInfo | None = None  # the core's own dataclass: pydantic validates and documents it
    detail: str | None = None
