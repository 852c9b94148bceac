"""``create_app(settings, holder, work_queue)``: the FastAPI app, and nothing of Lambda or of how it is run."""

from __future__ import annotations

from fastapi import FastAPI

from app.core.model_holder import ModelHolder
from app.core.options import RenderOptions
from app.core.settings import Settings
from app.http.body_limit import BodySizeLimit
from app.http.errors import install_error_handlers
from app.http.routes import router
from app.http.work_queue import WorkQueue

TITLE = "UNet segmentation"
VERSION = "1.0.0"
DESCRIPTION = "Binary image segmentation: upload an image, get it back with the foreground tinted."


def create_app(settings: Settings, holder: ModelHolder, work_queue: WorkQueue) -> FastAPI:
    """The app over these three objects: routes, OpenAPI responses, error handlers and the body limit."""
    app = FastAPI(title=TITLE, version=VERSION, description=DESCRIPTION)
    app.state.settings, app.state.holder, app.state.work_queue = settings, holder, work_queue
    app.state.render_defaults = RenderOptions.from_settings(settings)
    app.add_middleware(BodySizeLimit, max_file_bytes=settings.MAX_UPLOAD_BYTES)
    install_error_handlers(app)
    app.include_router(router)
    return app
