"""The HTTP API: ``GET /``, ``GET /health``, ``POST /predict`` and the OpenAPI docs at ``/docs``.

Everything is built at import, once per process: settings, JSON logging, the model
(loaded now: on Lambda that is the init phase; no startup hook, since Mangum runs
lifespan events per invocation, https://github.com/Kludex/mangum/issues/342) and
the work queue that runs each request's CPU-bound work on a worker thread, off the
event loop. Routes reach these through ``Annotated`` dependencies, so tests can
swap them with ``app.dependency_overrides``.
"""

from __future__ import annotations

import logging
import math
from functools import partial
from typing import Annotated, Any

from fastapi import Depends, FastAPI, File, Query, Request, UploadFile
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from app.body_limit import BodySizeLimit
from app.cpus import usable_cpus
from app.imaging import ACCEPTED, DecodeLimits, ImageRejected, ImageTooLarge
from app.logging_setup import configure_logging
from app.model_holder import ModelHolder, ModelNotReady
from app.overlay import parse_color
from app.pipeline import Rendered, RenderOptions, render
from app.schemas import ErrorBody, Health, PredictOptions
from app.settings import Settings, get_settings
from app.timing import Stopwatch, server_timing
from app.work_queue import QueueFull, WorkQueue

ROOT_MESSAGE = {"message": "UNet API is running!"}  # the seed service's answer, kept verbatim
MULTIPART_OVERHEAD_BYTES = 64 * 1024  # boundary and part headers around the file in a multipart body
BUSY_RETRY_AFTER_S = 1

settings = get_settings()
configure_logging(settings.LOG_LEVEL)
logger = logging.getLogger(__name__)
holder = ModelHolder(settings)
holder.try_load()
work_queue = WorkQueue(workers=settings.MAX_CONCURRENCY or usable_cpus(), max_waiting=settings.MAX_QUEUE)

app = FastAPI(
    title="UNet segmentation",
    version="1.0.0",
    description="Binary image segmentation: upload an image, get it back with the foreground tinted.",
)
app.add_middleware(BodySizeLimit, max_bytes=settings.MAX_UPLOAD_BYTES + MULTIPART_OVERHEAD_BYTES)


def get_holder() -> ModelHolder:
    return holder


def get_work_queue() -> WorkQueue:
    return work_queue


SettingsDep = Annotated[Settings, Depends(get_settings)]
HolderDep = Annotated[ModelHolder, Depends(get_holder)]
WorkQueueDep = Annotated[WorkQueue, Depends(get_work_queue)]


def _error(description: str, example: str) -> dict[str, Any]:
    return {"model": ErrorBody, "description": description,
            "content": {"application/json": {"example": {"detail": example}}}}


PREDICT_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {"image/png": {"schema": {"type": "string", "format": "binary"}}},
          "description": "The overlay (or mask) as PNG, at the upload's size."},
    400: _error("Corrupt, truncated or not an image.", "the file is not a recognised image: send a JPEG, ..."),
    413: _error("Too many bytes or pixels (checked before decoding), or a result over MAX_RESPONSE_BYTES.",
                "the image is 10000x8000 = 80000000 pixels, over the 50000000-pixel limit: send a smaller image"),
    415: _error("A format other than JPEG, PNG, WebP, GIF, BMP, TIFF.", "PSD images are not accepted: send a ..."),
    429: _error("Every worker busy and the wait queue full; retry after Retry-After seconds.",
                "the server is busy: all 2 workers are busy and 8 requests wait; retry shortly"),
    503: _error("The model is not loaded (yet); retry after Retry-After seconds.",
                "the model could not be loaded (ModelUnavailable: no model file at ...); retry in 5 s"),
}


@app.get("/")
async def root() -> dict[str, str]:
    """Liveness: the service answers."""
    return ROOT_MESSAGE


@app.get("/health", response_model=Health, responses={503: {"model": Health, "description": "Model not loaded."}})
async def health(holder: HolderDep) -> Any:
    """Readiness: 200 with the model's name, version and sha256 once it is loaded, else 503 with the reason."""
    try:
        segmenter = await run_in_threadpool(holder.get)
    except ModelNotReady as not_ready:
        body = Health(status="unavailable", detail=not_ready.detail).model_dump()
        return JSONResponse(body, status_code=503, headers=_retry_after(not_ready.retry_after_s))
    return Health(status="ready", model=segmenter.info)


@app.post("/predict", response_class=Response, responses=PREDICT_RESPONSES)
async def predict(
    file: Annotated[UploadFile, File(description=f"The image: {ACCEPTED} (GIF: first frame).")],
    options: Annotated[PredictOptions, Query()],
    settings: SettingsDep,
    holder: HolderDep,
    work_queue: WorkQueueDep,
) -> Response:
    """Segment an image: returns it as PNG with the foreground tinted (or the bare mask), same size."""
    watch = Stopwatch()
    data = await file.read()
    watch.lap("read")
    job = partial(_predict_job, holder, data, _decode_limits(settings), _render_options(options, settings), watch)
    rendered = await work_queue.run(job)
    _check_response_size(rendered, settings)
    _log_prediction(rendered, options, len(data))
    return Response(rendered.png, media_type="image/png", headers={"Server-Timing": server_timing(rendered.timings_ms)})


def _predict_job(holder: ModelHolder, data: bytes, limits: DecodeLimits, options: RenderOptions,
                 watch: Stopwatch) -> Rendered:
    """Runs on a worker thread: the wait for it ends here."""
    watch.lap("wait")
    return render(holder.get(), data, limits, options, watch)


def _decode_limits(settings: Settings) -> DecodeLimits:
    return DecodeLimits(max_bytes=settings.MAX_UPLOAD_BYTES, max_pixels=settings.MAX_PIXELS)


def _render_options(options: PredictOptions, settings: Settings) -> RenderOptions:
    return RenderOptions(
        color=parse_color(options.color if options.color is not None else settings.OVERLAY_COLOR),
        alpha=options.alpha if options.alpha is not None else settings.OVERLAY_ALPHA,
        threshold=options.threshold,
        output=options.output,
    )


def _check_response_size(rendered: Rendered, settings: Settings) -> None:
    limit = settings.MAX_RESPONSE_BYTES
    if limit is not None and len(rendered.png) > limit:
        raise ImageTooLarge(
            f"the result PNG is {len(rendered.png)} bytes, over the {limit}-byte response limit: "
            "send a smaller image, ask for output=mask, or upload it to the bucket instead"
        )


def _log_prediction(rendered: Rendered, options: PredictOptions, bytes_in: int) -> None:
    logger.info("prediction", extra={
        "width": rendered.width, "height": rendered.height, "bytes_in": bytes_in, "bytes_out": len(rendered.png),
        "options": options.model_dump(), "foreground_fraction": round(rendered.foreground_fraction, 4),
        "timings_ms": {stage: round(ms, 2) for stage, ms in rendered.timings_ms.items()},
    })


def _retry_after(seconds: float) -> dict[str, str]:
    return {"Retry-After": str(max(1, math.ceil(seconds)))}


@app.exception_handler(ImageRejected)
async def _image_rejected(request: Request, error: ImageRejected) -> JSONResponse:
    logger.info("image rejected", extra={"status": error.status_code, "detail": error.detail})
    return JSONResponse({"detail": error.detail}, status_code=error.status_code)


@app.exception_handler(ModelNotReady)
async def _model_not_ready(request: Request, error: ModelNotReady) -> JSONResponse:
    return JSONResponse({"detail": error.detail}, status_code=503, headers=_retry_after(error.retry_after_s))


@app.exception_handler(QueueFull)
async def _queue_full(request: Request, error: QueueFull) -> JSONResponse:
    logger.warning("busy: request refused", extra={"detail": str(error)})
    detail = f"the server is busy: {error}; retry shortly"
    return JSONResponse({"detail": detail}, status_code=429, headers=_retry_after(BUSY_RETRY_AFTER_S))


@app.exception_handler(Exception)
async def _unexpected(request: Request, error: Exception) -> JSONResponse:
    """A bug, not bad input: logged with its traceback, answered in the API's JSON shape."""
    logger.exception("unhandled error", extra={"path": request.url.path})
    return JSONResponse({"detail": "internal server error: it has been logged; retry, or report it"}, status_code=500)


# --- Lambda entry point ------------------------------------------------------------------
# Appended by the AWS side (app.lambda_handler): `handler = make_handler(app, holder)`.
from app.lambda_handler import make_handler  # noqa: E402  (needs app and holder, built above)

handler = make_handler(app, holder)
