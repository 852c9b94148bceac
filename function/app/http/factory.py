"""``create_app(settings, holder, work_queue)``: the FastAPI app, and nothing of Lambda or of how it is run."""

from __future__ import annotations

from typing import Any

from fastapi import Depends, FastAPI

from app.aws.s3_client import get_s3_client
from app.aws.uploads import UploadFlow
from app.core.inference.holder import ModelHolder
from app.core.settings import Settings
from app.http import batch, page, routes, uploads
from app.http.auth import ApiKeys, caller_gate
from app.http.body_limit import BodySizeLimit
from app.http.docs import install_docs
from app.http.errors import install_error_handlers
from app.http.schemas import ErrorBody
from app.http.work_queue import WorkQueue

TITLE = "UNet segmentation"
VERSION = "1.0.0"
DESCRIPTION = "Binary image segmentation: upload an image, get it back with the foreground tinted."
UNAUTHENTICATED: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "API keys are configured and none (or a wrong one) was sent.",
          "headers": {"WWW-Authenticate": {"description": "Bearer", "required": True, "schema": {"type": "string"}}}},
}


def create_app(settings: Settings, holder: ModelHolder, work_queue: WorkQueue) -> FastAPI:
    """The app over these three objects: routes, OpenAPI responses, error handlers, the body limit, the page at
    /ui and the docs at /docs with their assets served here rather than from a CDN."""
    app = FastAPI(title=TITLE, version=VERSION, description=DESCRIPTION, docs_url=None, redoc_url=None)
    app.state.settings, app.state.holder, app.state.work_queue = settings, holder, work_queue
    app.state.render_defaults = settings.render_defaults()
    app.state.upload_flow = upload_flow(settings)
    app.state.api_keys = ApiKeys(keys) if (keys := settings.api_keys()) else None
    app.add_middleware(BodySizeLimit, max_file_bytes=settings.MAX_UPLOAD_BYTES)
    install_error_handlers(app)
    app.include_router(routes.open_router)
    gate = caller_gate(app.state.api_keys)  # with keys, the OpenAPI document declares their security schemes
    for protected in (routes.router, batch.router, uploads.router):
        app.include_router(protected, dependencies=[Depends(gate)], responses=UNAUTHENTICATED)
    app.include_router(page.router)  # open, as /docs is: the page asks for a key when the server needs one
    install_docs(app)
    return app


def upload_flow(settings: Settings) -> UploadFlow | None:
    """The presigned-upload flow into UPLOAD_BUCKET; None (its routes answer 503) when that is unset."""
    if settings.UPLOAD_BUCKET is None:
        return None
    return UploadFlow(get_s3_client, settings.UPLOAD_BUCKET, settings.UPLOAD_URL_TTL_S, settings.upload_max_bytes)
