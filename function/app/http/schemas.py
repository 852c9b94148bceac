"""The API's request options and response bodies, as they appear in the OpenAPI schema (/docs).

Ranges come from ``app.core.options`` (one definition for every way in); the
colour stays a string here, as the query string carries it, and is parsed when the
route builds its ``RenderOptions``.
"""

from __future__ import annotations

from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field
from pydantic.config import JsonDict, JsonValue

from app.core.inference.contract import ModelInfo
from app.core.options import (
    COLOR_PATTERN,
    WITH_ALPHA,
    Alpha,
    ImageFormat,
    Output,
    Quality,
    RenderOptions,
    Threshold,
)


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
        json_schema_extra={"pattern": COLOR_PATTERN},  # documented, not enforced here: parse_color words the 422
        description="Overlay colour as 'rrggbb', '#rrggbb' (send '#' as %23) or 'r,g,b'. Default: OVERLAY_COLOR.",
    )
    output: Output = Field(
        default="overlay",
        description="'overlay': the image with the foreground tinted; 'mask': the mask, greyscale "
        "(255 foreground, 0 background); 'cutout': the image where the mask is set, transparent elsewhere "
        "(PNG or WebP); 'json': size, foreground fraction, bounding box, model and the mask as COCO RLE. "
        "Pictures come at the uploaded image's size and EXIF orientation.",
    )
    format: ImageFormat | None = Field(
        default=None,
        description="'png' (lossless), 'jpeg' or 'webp' (a fraction of PNG's size). Default: what the Accept "
        "header names explicitly (image/webp, image/jpeg; q-values honoured), else PNG.",
    )
    quality: Quality | None = Field(
        default=None,
        description="JPEG/WebP quality, 1-100, used as given. Default: 85 for JPEG, 80 for WebP, lowered in steps "
        "(to 25 and 20 at the least) when the result would be over the response limit; PNG ignores it.",
    )


class ErrorBody(BaseModel):
    """Every error: one sentence on what went wrong and what to send instead."""

    detail: str


class SizeLimit(BaseModel):
    """The most an image may be on one way in: bytes on the wire, and pixels (width x height) once decoded."""

    max_bytes: int
    max_pixels: int


class Limits(BaseModel):
    """What a client can check before it sends a file (the page at /ui does): which way in takes it."""

    predict: SizeLimit = Field(description="POST /predict: MAX_UPLOAD_BYTES and MAX_PIXELS.")
    uploads: SizeLimit | None = Field(description="The upload flow (POST /uploads): UPLOAD_MAX_BYTES (else "
                                                  "S3_MAX_UPLOAD_BYTES) and S3_MAX_PIXELS; null when it is off "
                                                  "(UPLOAD_BUCKET unset).")


class Health(BaseModel):
    """Readiness: ``ready`` with the model's contract and identity, or ``unavailable`` with the reason; either
    way the options a request gets by default, the size limits and whether a key is needed: none needs a model."""

    status: Literal["ready", "unavailable"]
    model: ModelInfo | None = None  # the core's own dataclass: pydantic validates and documents it
    provider: str | None = Field(default=None, examples=["CPUExecutionProvider", "CUDAExecutionProvider"],
                                 description="The onnxruntime execution provider that runs the model.")
    detail: str | None = None
    defaults: RenderOptions | None = Field(
        default=None, description="What a request that sets no option gets (OVERLAY_COLOR, OVERLAY_ALPHA; the "
        "threshold is the model's own, null until a model is loaded).")
    limits: Limits | None = None
    api_keys: bool = Field(default=False, description="Whether this server's protected routes ask for an API key "
                           "(API_KEYS, API_KEYS_FILE). On AWS, API Gateway (AuthMode) may ask for a token before a "
                           "request reaches the app: this does not say so.")


class Box(BaseModel):
    """The foreground's extent: a PIL box, right and bottom exclusive."""

    left: int
    top: int
    right: int
    bottom: int


class ModelIdentity(BaseModel):
    name: str
    version: str
    sha256: str


class Rle(BaseModel):
    """COCO compressed run-length encoding (column-major runs): ``pycocotools.mask.decode`` reads it."""

    size: list[int] = Field(description="[height, width]")
    counts: str


class ResultDocument(BaseModel):
    """``output=json``: what the mask says, and the mask itself."""

    width: int
    height: int
    foreground_fraction: float
    bounding_box: Box | None
    model: ModelIdentity
    mask: Rle


class ValidationErrorBody(BaseModel):
    """FastAPI's 422: ``detail`` lists each invalid field with its location and message."""

    detail: list[dict[str, Any]]


# app.core.decoding.imaging.MEDIA_TYPES: a label the POST policy pins; the bytes are still sniffed.
UploadContentType = Literal["image/jpeg", "image/png", "image/webp", "image/gif", "image/bmp", "image/tiff",
                            "image/heic", "image/heif", "image/avif"]


# A cutout needs an alpha channel (RenderOptions' own rule). In a JSON body the schema can say so, as a
# query string cannot: without it, a request the schema allows got a 422 (make api-fuzz, Schemathesis ST202).
NO_ALPHA: list[JsonValue] = sorted(set(get_args(ImageFormat)) - WITH_ALPHA)
CUTOUT_NEEDS_ALPHA: JsonDict = {"not": {"required": ["output", "format"],
                              "properties": {"output": {"const": "cutout"}, "format": {"enum": NO_ALPHA}}}}


class UploadOptions(PredictOptions):
    """The options of ``POST /predict``, for an upload: signed into its POST policy, applied by the trigger."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=CUTOUT_NEEDS_ALPHA)


class UploadRequest(BaseModel):
    """``POST /uploads``: the file's name (kept, made safe) and type, and the options for its result."""

    model_config = ConfigDict(extra="forbid")

    filename: str = Field(min_length=1, max_length=1024, examples=["cat.jpg"])
    content_type: UploadContentType = Field(examples=["image/jpeg"])
    options: UploadOptions = Field(default_factory=UploadOptions)


class UploadTarget(BaseModel):
    """A presigned S3 POST: send ``fields`` as form fields, then the file as the last field, ``file``."""

    url: str
    fields: dict[str, str]


class UploadCreated(BaseModel):
    id: str = Field(description="32 hex digits: unguessable, the capability to read the result.")
    upload: UploadTarget
    result: str = Field(description="Where to poll: GET this path.")
    expires_in: int = Field(description="Seconds the upload URL stays valid.")


class ResultPending(BaseModel):
    id: str
    status: Literal["pending"] = "pending"


class ResultRejected(BaseModel):
    id: str
    status: Literal["rejected"] = "rejected"
    reason: str


class ResultDone(BaseModel):
    """Presigned GET URLs of the result asked for (null for output=json: the summary carries the RLE) and mask."""

    id: str
    status: Literal["done"] = "done"
    overlay_url: str | None
    mask_url: str | None
    summary: dict[str, Any]


class BatchItem(BaseModel):
    """One input of ``POST /predict/batch``, as ``results.json`` in its zip lists it (in the order sent)."""

    filename: str | None = Field(description="The file name as sent (null when the part had none).")
    result: str | None = Field(description="The result's name in the zip; null when the file failed.")
    status: int = Field(description="What POST /predict would have answered for this file alone.")
    detail: str | None = Field(description="Why it failed (as POST /predict's error detail); null on success.")
    width: int | None = None
    height: int | None = None
    foreground_fraction: float | None = None
