"""Every error in the API's one JSON shape, ``{"detail": ...}``, with the status that says what went wrong.

Bad input (``ImageRejected``) answers its own 400/413/415/422; no model yet, or S3
out of reach for the upload flow, 503 with ``Retry-After``; every worker busy, 429
with ``Retry-After``; anything else is a bug: logged with its traceback and
answered 500 in the same shape.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from app.aws.uploads import UploadFlowUnavailable
from app.core.decoding.imaging import ImageRejected
from app.core.inference.holder import ModelNotReady
from app.http.schemas import ErrorBody
from app.http.work_queue import QueueFull

BUSY_RETRY_AFTER_S = 1
# The headers the OpenAPI document declares where they are sent (make api-fuzz checks each response against it).
RETRY_AFTER_HEADER = {"Retry-After": {"description": "Whole seconds to wait before retrying, at least 1.",
                                      "required": True, "schema": {"type": "integer", "minimum": 1}}}

logger = logging.getLogger(__name__)


def invalid_request(invalid: ValidationError, *location: str) -> RequestValidationError:
    """A core validation error (``RenderOptions``) as FastAPI's 422, each error's ``loc`` under ``location``."""
    errors = invalid.errors(include_url=False, include_context=False)
    return RequestValidationError([{**error, "loc": (*location, *error["loc"])} for error in errors])


def documented(description: str, example: str | None = None, retry_after: bool = False) -> dict[str, Any]:
    """An error response as the OpenAPI document shows it: ``{"detail": ...}``, and Retry-After where it is sent."""
    response: dict[str, Any] = {"model": ErrorBody, "description": description}
    if example is not None:
        response["content"] = {"application/json": {"example": {"detail": example}}}
    if retry_after:
        response["headers"] = RETRY_AFTER_HEADER
    return response


def retry_after(seconds: float) -> dict[str, str]:
    """The ``Retry-After`` header: whole seconds, at least 1."""
    return {"Retry-After": str(max(1, math.ceil(seconds)))}


async def image_rejected(request: Request, error: ImageRejected) -> JSONResponse:
    logger.info("image rejected", extra={"status": error.status_code, "detail": error.detail})
    return JSONResponse({"detail": error.detail}, status_code=error.status_code)


async def model_not_ready(request: Request, error: ModelNotReady) -> JSONResponse:
    return JSONResponse({"detail": error.detail}, status_code=503, headers=retry_after(error.retry_after_s))


async def upload_flow_unavailable(request: Request, error: UploadFlowUnavailable) -> JSONResponse:
    logger.warning("upload flow unavailable", extra={"detail": str(error)})
    return JSONResponse({"detail": str(error)}, status_code=503, headers=retry_after(BUSY_RETRY_AFTER_S))


async def queue_full(request: Request, error: QueueFull) -> JSONResponse:
    logger.warning("busy: request refused", extra={"detail": str(error)})
    detail = f"the server is busy: {error}; retry shortly"
    return JSONResponse({"detail": detail}, status_code=429, headers=retry_after(BUSY_RETRY_AFTER_S))


async def unexpected(request: Request, error: Exception) -> JSONResponse:
    """A bug, not bad input: logged with its traceback, answered in the API's JSON shape."""
    logger.exception("unhandled error", extra={"path": request.url.path})
    return JSONResponse({"detail": "internal server error: it has been logged; retry, or report it"}, status_code=500)


Handler = Callable[[Request, Any], Awaitable[JSONResponse]]
HANDLERS: dict[type[Exception], Handler] = {
    ImageRejected: image_rejected, ModelNotReady: model_not_ready, QueueFull: queue_full,
    UploadFlowUnavailable: upload_flow_unavailable, Exception: unexpected,
}


def install_error_handlers(app: FastAPI) -> None:
    for kind, handler in HANDLERS.items():
        app.add_exception_handler(kind, handler)
