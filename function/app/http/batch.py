"""``POST /predict/batch``: several images in one request, a zip back with one result per image and ``results.json``.

Limits. The request is one body, so its files share ``MAX_UPLOAD_BYTES`` (the body limit
of ``app.http.body_limit``, set by Lambda's 6 MB payload: a batch cannot be a way around
it); at most ``MAX_BATCH_FILES`` files (413 past that) and at least one (422). The zip
must fit ``MAX_RESPONSE_BYTES`` where that is set (413 otherwise, saying what to change).

Fairness. Each image is its own job on the work queue, submitted when the previous one
is done: a batch holds one worker at a time, so single requests interleave with it
instead of waiting behind sixteen images. An image that finds every worker busy and the
wait queue full gets 429 in ``results.json`` (retry that file), as it would alone, and one
that needs more memory than MEMORY_BUDGET_MB could ever give it 413; the batch carries on
with the next. Each file waits for its own share of the memory budget, released when its
work is done (not when the zip is sent, as ``POST /predict`` does), so a batch never waits
on memory its own earlier files hold; the results kept for the zip are not counted.

Names. Each result is named after its file (``app.core.naming``: ``cat.jpg`` ->
``cat.jpg.png``), the name made safe as a zip entry; a name sent twice gets `` (2)``,
`` (3)``... as browsers number downloads (``cat (2).jpg.png``), decided by position,
whatever failed. ``results.json`` lists every file in the order sent with the status
``POST /predict`` would have given it alone; one bad file never fails the batch.
"""

from __future__ import annotations

import io
import json
import logging
import zipfile
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, File, HTTPException, Request, UploadFile
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from app.core.decoding.imaging import ACCEPTED, ImageRejected
from app.core.inference.holder import ModelHolder, ModelNotReady
from app.core.naming import JSON_SUFFIX, result_name, sanitise_filename
from app.core.options import RenderOptions
from app.core.output.encoding import Encoded
from app.core.pipeline import Rendered
from app.core.settings import Settings
from app.core.timing import Stopwatch
from app.http.auth import caller_id
from app.http.dependencies import HolderDep, RenderOptionsDep, SettingsDep, WorkQueueDep
from app.http.errors import documented
from app.http.routes import BINARY, check_response_size, render_queued
from app.http.schemas import BatchItem, ValidationErrorBody
from app.http.work_queue import QueueFull, WorkQueue

MANIFEST = "results.json"
ZIP_MEDIA_TYPE = "application/zip"
INTERNAL_ERROR = "internal server error: it has been logged; retry, or report it"

logger = logging.getLogger(__name__)
router = APIRouter()

BATCH_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {ZIP_MEDIA_TYPE: BINARY},
          "description": f"A zip: one result per image that succeeded, named after it (cat.jpg -> cat.jpg.png, "
                         f"cat.jpg.mask.png, cat.jpg.cutout.webp, cat.jpg.json), and {MANIFEST}, a list with every "
                         "file in the order sent: filename, result (its name in the zip, null if it failed), status "
                         "(what POST /predict would have answered for it alone: 200, 400, 413, 415, 422, 429), "
                         "detail (why it failed), width, height, foreground_fraction."},
    400: documented("A body that is no multipart form."),
    413: documented("The body over MAX_UPLOAD_BYTES (all files together), more files than MAX_BATCH_FILES, or "
                    "the zip over MAX_RESPONSE_BYTES.", "20 files, over the limit of 16 (MAX_BATCH_FILES): ..."),
    422: {"model": ValidationErrorBody, "description": "No files field, or an option out of range."},
    503: documented("The model is not loaded (yet); retry after Retry-After seconds.",
                    "the model could not be loaded (ModelUnavailable: no model file at ...); retry in 5 s",
                    retry_after=True),
}


@dataclass(frozen=True)
class FileResult:
    """One file's outcome: its entry in results.json and, if it succeeded, the encoded result."""

    item: BatchItem
    encoded: Encoded | None = None


@dataclass(frozen=True)
class Batch:
    """What every file of one request is segmented with: the options, and the service's model, queue, limits."""

    holder: ModelHolder
    settings: Settings
    options: RenderOptions
    work_queue: WorkQueue

    async def segment(self, upload: UploadFile, name: str) -> FileResult:
        """One file through the work queue on its own; any failure becomes its status, never the batch's."""
        data = await upload.read()
        try:
            rendered, share = await render_queued(self.work_queue, self.holder, data, self.settings, self.options,
                                                  Stopwatch())
            share.release()  # the results wait for the zip: holding each file's share would stall the next file
            check_response_size(rendered, self.settings)
        except ImageRejected as rejected:
            return failure(upload, rejected.status_code, rejected.detail)
        except QueueFull as busy:
            return failure(upload, 429, f"the server is busy: {busy}; retry this file shortly")
        except ModelNotReady as not_ready:
            return failure(upload, 503, not_ready.detail)
        except Exception:  # a bug: logged with its traceback, this file answered as /predict would (500)
            # Not "filename": a LogRecord attribute that logging refuses to overwrite (KeyError: a 500).
            logger.exception("batch file failed", extra={"batch_file": upload.filename})
            return failure(upload, 500, INTERNAL_ERROR)
        return success(upload, name, rendered)


@router.post("/predict/batch", response_class=Response, responses=BATCH_RESPONSES)
async def predict_batch(
    files: Annotated[list[UploadFile], File(description=f"The images, one `files` part each: {ACCEPTED}.",
                                            min_length=1)],
    options: RenderOptionsDep,
    settings: SettingsDep,
    holder: HolderDep,
    work_queue: WorkQueueDep,
    request: Request,
) -> Response:
    """Segment several images: a zip with each one's result (as POST /predict makes it) and results.json."""
    check_file_count(len(files), settings.MAX_BATCH_FILES)
    await run_in_threadpool(holder.get)  # no model: 503 for the batch, before any file is read
    batch = Batch(holder, settings, options, work_queue)
    names = result_names([upload.filename for upload in files], options)
    results = [await batch.segment(upload, name) for upload, name in zip(files, names, strict=True)]
    archive = zip_results(results)
    check_archive_size(len(archive), settings.MAX_RESPONSE_BYTES)
    logger.info("batch", extra={"files": len(results), "bytes_out": len(archive), "caller": caller_id(request),
                                "statuses": [result.item.status for result in results]})
    return Response(archive, media_type=ZIP_MEDIA_TYPE,
                    headers={"Content-Disposition": 'attachment; filename="results.zip"', "Vary": "Accept"})


def check_file_count(count: int, limit: int) -> None:
    if count > limit:
        raise HTTPException(413, f"{count} files, over the limit of {limit} per request (MAX_BATCH_FILES): send "
                                 "them in several requests, or use unet-segment or S3 for many images")


def check_archive_size(size: int, limit: int | None) -> None:
    if limit is not None and size > limit:
        raise HTTPException(413, f"the zip of results is {size} bytes, over the {limit}-byte response limit "
                                 "(MAX_RESPONSE_BYTES): send fewer files per request or ask for format=jpeg or "
                                 "format=webp, or send large images through the upload flow (POST /uploads)")


def result_names(filenames: list[str | None], options: RenderOptions) -> list[str]:
    """Each file's result name in the zip, unique, by position; results.json's own name is never given out."""
    taken = {MANIFEST}
    names = []
    for filename in filenames:
        base = sanitise_filename(filename or "")
        name, copy = result_name(base, options), 1
        while name in taken:
            copy += 1
            name = result_name(numbered(base, copy), options)
        taken.add(name)
        names.append(name)
    return names


def numbered(name: str, copy: int) -> str:
    """``cat.jpg`` -> ``cat (2).jpg``: the number before the extension, as browsers number downloads."""
    stem, dot, extension = name.rpartition(".")
    return f"{stem} ({copy}).{extension}" if dot and stem else f"{name} ({copy})"


def success(upload: UploadFile, name: str, rendered: Rendered) -> FileResult:
    summary = rendered.summary
    item = BatchItem(filename=upload.filename, result=name, status=200, detail=None, width=summary.width,
                     height=summary.height, foreground_fraction=summary.foreground_fraction)
    return FileResult(item, rendered.result)


def failure(upload: UploadFile, status: int, detail: str) -> FileResult:
    logger.info("batch file rejected", extra={"status": status, "detail": detail})
    return FileResult(BatchItem(filename=upload.filename, result=None, status=status, detail=detail))


def zip_results(results: list[FileResult]) -> bytes:
    """The zip: each result (pictures stored as they are, already compressed; JSON deflated), then results.json."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for result in results:
            if result.encoded is not None and result.item.result is not None:
                name = result.item.result
                archive.writestr(name, result.encoded.body, compress_type=compression(name))
        manifest = json.dumps([result.item.model_dump() for result in results], indent=2, ensure_ascii=False)
        archive.writestr(MANIFEST, manifest, compress_type=zipfile.ZIP_DEFLATED)
    return buffer.getvalue()


def compression(name: str) -> int:
    return zipfile.ZIP_DEFLATED if name.endswith(JSON_SUFFIX) else zipfile.ZIP_STORED
