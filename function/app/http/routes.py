"""The routes: ``GET /`` (the seed's answer) and ``GET /health``, always open; ``POST /predict``, protected.

``create_app`` includes ``router`` behind ``app.http.auth.caller_gate``. ``render_queued`` and
``check_response_size`` are also what ``POST /predict/batch`` does per file, so a file's result is the same.
"""

from __future__ import annotations

import logging
from functools import partial
from typing import Annotated, Any, BinaryIO

from fastapi import APIRouter, File, Request, UploadFile
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.types import Receive, Scope, Send

from app.core.decoding.imaging import ACCEPTED, ImageTooLarge, read_header
from app.core.inference.holder import ModelHolder, ModelNotReady
from app.core.options import RenderOptions
from app.core.pipeline import Rendered, render
from app.core.resources.budget import Share, estimate
from app.core.settings import Settings
from app.core.timing import Stopwatch, server_timing
from app.http.auth import caller_id
from app.http.dependencies import HolderDep, RenderDefaultsDep, RenderOptionsDep, SettingsDep, WorkQueueDep
from app.http.errors import RETRY_AFTER_HEADER, documented, retry_after
from app.http.schemas import ErrorBody, Health, Limits, ResultDocument, SizeLimit, ValidationErrorBody
from app.http.work_queue import WorkQueue

ROOT_MESSAGE = {"message": "UNet API is running!"}  # the seed service's answer, kept verbatim

logger = logging.getLogger(__name__)
open_router = APIRouter()
router = APIRouter()


BINARY = {"schema": {"type": "string", "format": "binary"}}
PREDICT_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": ResultDocument, "content": {"image/png": BINARY, "image/jpeg": BINARY, "image/webp": BINARY},
          "description": "The overlay, mask or cutout at the upload's size in the format asked for (format, else "
                         "Accept, else PNG), or with output=json the numbers and the mask as COCO RLE. "
                         "Content-Type says which; Vary: Accept."},
    400: documented("Corrupt, truncated or not an image (an empty file too), or a body that is no multipart form.",
                    "the file is not a recognised image: send a JPEG, ..."),
    413: documented("Too many bytes or pixels (checked before decoding), more memory than MEMORY_BUDGET_MB could "
                    "ever give the image, or a result over MAX_RESPONSE_BYTES.",
                    "the image is 10000x8000 = 80000000 pixels, over the 50000000-pixel limit: send a smaller image"),
    # FastAPI's list of invalid fields, or one sentence for a result too wide for the format (UnencodableResult).
    422: {"model": ValidationErrorBody | ErrorBody, "description": "An option out of range, no file field, a cutout "
          "asked for as JPEG (a list of invalid fields), or a result too wide for the format asked for."},
    415: documented("A format other than JPEG, PNG, WebP, GIF, BMP, TIFF, HEIC/HEIF, AVIF.",
                    "PSD images are not accepted: send a ..."),
    429: documented("Every worker busy and the wait queue (requests waiting for a worker or for memory) full; "
                    "retry after Retry-After seconds.", "the server is busy: 10 requests are running or waiting "
                    "already (2 workers, 8 places in the queue); retry shortly", retry_after=True),
    503: documented("The model is not loaded (yet); retry after Retry-After seconds.",
                    "the model could not be loaded (ModelUnavailable: no model file at ...); retry in 5 s",
                    retry_after=True),
}


@open_router.get("/")
async def root() -> dict[str, str]:
    """Liveness: the service answers."""
    return ROOT_MESSAGE


@open_router.get("/health", response_model=Health,
                 responses={503: {"model": Health, "description": "Model not loaded.", "headers": RETRY_AFTER_HEADER}})
async def health(holder: HolderDep, settings: SettingsDep, defaults: RenderDefaultsDep, request: Request) -> Any:
    """Readiness: 200 with the model's contract, metrics by split, sha256 and execution provider once loaded,
    else 503 with the reason; both with the default options, the size limits and whether an API key is needed
    (what the page at /ui reads)."""
    limits, keyed = limits_of(settings), request.app.state.api_keys is not None
    try:
        segmenter = await run_in_threadpool(holder.get)
    except ModelNotReady as not_ready:
        body = Health(status="unavailable", detail=not_ready.detail, defaults=defaults, limits=limits, api_keys=keyed)
        return JSONResponse(body.model_dump(mode="json"), status_code=503, headers=retry_after(not_ready.retry_after_s))
    # The threshold a request gets when it sets none is the model's own: say which number that is.
    model_defaults = defaults.with_overrides({"threshold": segmenter.info.threshold})
    return Health(status="ready", model=segmenter.info, provider=segmenter.provider, defaults=model_defaults,
                  limits=limits, api_keys=keyed)


def limits_of(settings: Settings) -> Limits:
    """Each way in's limits; the upload flow's only when it is on (its POST policy's cap: UPLOAD_MAX_BYTES)."""
    uploads = None
    if settings.UPLOAD_BUCKET is not None:
        uploads = SizeLimit(max_bytes=settings.upload_max_bytes, max_pixels=settings.S3_MAX_PIXELS)
    return Limits(predict=SizeLimit(max_bytes=settings.MAX_UPLOAD_BYTES, max_pixels=settings.MAX_PIXELS),
                  uploads=uploads)


@router.post("/predict", response_class=Response, responses=PREDICT_RESPONSES)
async def predict(
    file: Annotated[UploadFile, File(description=f"The image: {ACCEPTED} (GIF: first frame).")],
    options: RenderOptionsDep,
    settings: SettingsDep,
    holder: HolderDep,
    work_queue: WorkQueueDep,
    request: Request,
) -> Response:
    """Segment an image: the overlay (or mask, or cutout) at its size as PNG, JPEG or WebP, or the numbers as JSON."""
    watch = Stopwatch()  # the multipart body is parsed (spooled to disk past 1 MB) before the route runs
    # The worker decodes from the spooled file itself: the upload is never held whole in memory as bytes.
    rendered, share = await render_queued(work_queue, holder, file.file, settings, options, watch)
    try:
        check_response_size(rendered, settings)
        _log_prediction(rendered, options, file.size or 0, caller_id(request))
    except BaseException:
        share.release()
        raise
    output = rendered.result
    return AnswerWithShare(memoryview(output.body), share, media_type=output.media_type,  # the bytes: no copy
                           headers={"Server-Timing": server_timing(rendered.timings_ms), "Vary": "Accept"})


class AnswerWithShare(Response):
    """A result's answer, holding the request's share of the memory budget until it is sent (or sending fails):
    the encoded result and the server's copies of it in flight are that request's memory too."""

    def __init__(self, content: memoryview, share: Share, media_type: str, headers: dict[str, str]) -> None:
        super().__init__(content, media_type=media_type, headers=headers)
        self.share = share

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.share.release()


async def render_queued(work_queue: WorkQueue, holder: ModelHolder, source: bytes | BinaryIO, settings: Settings,
                        options: RenderOptions, watch: Stopwatch) -> tuple[Rendered, Share]:
    """``predict_job`` on the work queue, admitted by the memory its header says it will need, and that share,
    which the caller holds until it lets go. The header is read off the event loop first: a corrupt,
    unsupported or oversized file is refused before it takes a place."""
    header = await run_in_threadpool(read_header, source, settings.decode_limits())
    job = partial(predict_job, holder, source, settings, options, watch)
    return await work_queue.run_holding(job, estimate(header))


def predict_job(holder: ModelHolder, data: bytes | BinaryIO, settings: Settings, options: RenderOptions,
                watch: Stopwatch) -> Rendered:
    """Runs on a worker thread: the wait for it ends here."""
    watch.lap("wait")
    limits = settings.decode_limits()
    return render(holder.get(), data, limits, options, watch=watch, fit_within=settings.MAX_RESPONSE_BYTES)


def check_response_size(rendered: Rendered, settings: Settings) -> None:
    limit, size = settings.MAX_RESPONSE_BYTES, len(rendered.result.body)
    if limit is not None and size > limit:
        raise ImageTooLarge(
            f"the result is {size} bytes, over the {limit}-byte response limit (MAX_RESPONSE_BYTES): ask for "
            "format=jpeg or format=webp (a fraction of PNG's size), or send the image through the upload flow "
            "(POST /uploads, then GET /results/{id}), which takes images of any size"
        )


def _log_prediction(rendered: Rendered, options: RenderOptions, bytes_in: int, caller: str | None) -> None:
    summary = rendered.summary
    logger.info("prediction", extra={
        "caller": caller,
        "width": summary.width, "height": summary.height, "bytes_in": bytes_in, "bytes_out": len(rendered.result.body),
        "quality": rendered.result.quality, "provider": rendered.provider,
        "options": options.model_dump(mode="json"), "foreground_fraction": round(summary.foreground_fraction, 4),
        "timings_ms": {stage: round(ms, 2) for stage, ms in rendered.timings_ms.items()},
    })
