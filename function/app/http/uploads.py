"""The upload flow's routes: ``POST /uploads`` signs a direct S3 upload, ``GET /results/{id}`` says where it stands.

Images of any size up to the S3 limits go straight to the bucket, never through
Lambda's ~4.4 MB payload; the upload trigger runs the same pipeline and writes the
summary last. Without ``UPLOAD_BUCKET`` both routes answer 503 saying so.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException

from app.aws.keys import UPLOAD_ID
from app.aws.uploads import UploadFlow
from app.core.options import RenderOptions
from app.http.auth import caller_id
from app.http.errors import RETRY_AFTER_HEADER, documented, invalid_request
from app.http.schemas import (
    ErrorBody,
    ResultDone,
    ResultPending,
    ResultRejected,
    UploadCreated,
    UploadRequest,
    UploadTarget,
)

logger = logging.getLogger(__name__)
router = APIRouter()
NOT_CONFIGURED = "the upload flow is off on this server: set UPLOAD_BUCKET to the bucket uploads go to"
SOMETIMES_RETRY_AFTER = {"Retry-After": {**RETRY_AFTER_HEADER["Retry-After"], "required": False}}
UNAVAILABLE: dict[int | str, dict[str, Any]] = {
    503: {**documented("UPLOAD_BUCKET is not set on this server, or S3 cannot be reached or signed for now (then "
                       "with Retry-After)."), "headers": SOMETIMES_RETRY_AFTER},
}
BODY_ERRORS: dict[int | str, dict[str, Any]] = {
    400: documented("A body that is not JSON."),
    413: documented("A body over MAX_UPLOAD_BYTES (the file itself goes to S3, never through this route)."),
}


def get_upload_flow(request: Request) -> UploadFlow:
    flow: UploadFlow | None = request.app.state.upload_flow
    if flow is None:
        raise HTTPException(status_code=503, detail=NOT_CONFIGURED)
    return flow


UploadFlowDep = Annotated[UploadFlow, Depends(get_upload_flow)]
UploadId = Annotated[str, Path(pattern=f"^{UPLOAD_ID.pattern}$", description="What POST /uploads gave: 32 hex digits.")]


@router.post("/uploads", status_code=201, response_model=UploadCreated, responses={**UNAVAILABLE, **BODY_ERRORS})
def create_upload(upload: UploadRequest, flow: UploadFlowDep, request: Request) -> UploadCreated:
    """Sign an upload straight to S3 (any size up to the S3 limit): POST the file to `upload.url` with `fields`."""
    given = upload.options.model_dump(exclude_unset=True, exclude_none=True)  # only what the client chose
    _check_options(request.app.state.render_defaults, given)
    signed = flow.create(upload.filename, upload.content_type, given, owner=caller_id(request))
    logger.info("upload signed", extra={"upload_id": signed.id, "content_type": upload.content_type,
                                        "options": given})
    return UploadCreated(id=signed.id, upload=UploadTarget(url=signed.url, fields=signed.fields),
                         result=f"/results/{signed.id}", expires_in=signed.expires_in)


def _check_options(defaults: RenderOptions, given: dict[str, Any]) -> None:
    """The options as the trigger will apply them, refused now (422) rather than after the upload."""
    try:
        defaults.with_overrides(given)
    except ValidationError as invalid:
        raise invalid_request(invalid, "body", "options") from None


@router.get(
    "/results/{upload_id}",
    response_model=ResultDone | ResultRejected,
    responses={202: {"model": ResultPending, "description": "Uploaded, not processed yet: poll again."},
               404: {"model": ErrorBody, "description": "No upload has this id (yet)."}, **UNAVAILABLE},
)
def get_result(upload_id: UploadId, flow: UploadFlowDep, request: Request) -> Any:
    """Where an upload stands: 202 pending, then 200 done (presigned URLs of its outputs) or rejected (why).

    A result signed for an identified caller answers only that caller: 404 to anyone else."""
    state = flow.result(upload_id, caller_id(request))
    if state is None:
        raise HTTPException(status_code=404, detail=f"no upload has the id {upload_id}: POST /uploads, then upload "
                                                    "the file to the URL it gives, before asking for its result")
    if state.status == "pending":
        return JSONResponse(ResultPending(id=upload_id).model_dump(), status_code=202)
    summary = state.summary or {}
    if state.status == "rejected":
        return ResultRejected(id=upload_id, reason=str(summary.get("reason", "")))
    return ResultDone(id=upload_id, overlay_url=state.result_url, mask_url=state.mask_url, summary=summary)
