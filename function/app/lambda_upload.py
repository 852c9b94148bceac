"""The upload function's Lambda entry (template.yaml: ``ImageConfig: Command: ["app.lambda_upload.handler"]``).

S3 ObjectCreated events for ``uploads/``, and S3 Batch Operations tasks for objects
under any other prefix but ``overlays/``, go through the one pipeline into
``overlays/`` (``app.aws.lambda_s3`` tells them apart). No FastAPI, Starlette or Mangum is imported on this path
(import-linter checks it), so this function's cold start does not pay for them.
"""

from __future__ import annotations

from app.aws.lambda_s3 import make_upload_handler
from app.aws.s3_client import get_s3_client
from app.aws.s3_trigger import S3Trigger
from app.runtime import build_runtime

runtime = build_runtime()
handler = make_upload_handler(S3Trigger(get_s3_client, runtime.holder, runtime.settings))
