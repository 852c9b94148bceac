"""The fuzz targets: one per way untrusted bytes enter the service, each asserting the service's contract.

A target takes bytes and returns normally when the service behaved: it answered, or
refused with its own rejection. Anything else it raises (an ``AssertionError`` for a
broken promise, or whatever escaped the code under test), and that is a bug:

- ``decode``: image bytes -> ``app.core.pipeline.render`` at a tiny model, as POST /predict
  runs it. Allowed: a result (its size within the pixel limit, a PNG), or ``ImageRejected``.
- ``s3_event``: a JSON document as the upload function's event -> ``app.lambda_upload``'s
  handler over an in-memory S3. Allowed: a result dict (processed, skipped, rejected, or an
  "unsupported event" refusal). An S3 error would raise by design; the fake S3 has none.
- ``batch_event``: the same handler with S3 Batch Operations invocations: one result per task
  or a refusal, never an exception (Batch Operations would retry the whole invocation).
- ``http_event``: an API Gateway / ALB event -> ``app.lambda_api``'s handler (Mangum over the
  app). Allowed: a response dict with a status under 500, or a refusal.

Inputs that are not JSON are dropped by the event targets: Lambda only ever hands over a
parsed JSON document. The targets are plain functions so that ``tests/functional`` replays
the committed corpus (tests/corpus/fuzz/<target>/) through the very same code.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from app.core.decoding.imaging import DecodeLimits, ImageRejected
from app.core.inference.segmenter import Segmenter
from app.core.options import RenderOptions
from app.core.pipeline import render
from app.core.settings import Settings

# Pixels the decode target accepts. The check itself is what is fuzzed: anything declaring more
# must be refused before decoding. At the default 50 MP a valid image legitimately takes longer
# than the 2 s that counts as a hang; 4 MP decodes, segments and encodes well within it.
FUZZ_LIMITS = DecodeLimits(max_bytes=4_400_000, max_pixels=4_000_000)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
Target = Callable[[bytes], None]


def decode_target(segmenter: Segmenter) -> Target:
    """Image bytes through the whole pipeline: a PNG result within the limits, or ``ImageRejected``."""
    options = RenderOptions()

    def target(data: bytes) -> None:
        try:
            rendered = render(segmenter, data, FUZZ_LIMITS, options)
        except ImageRejected:
            return
        summary = rendered.summary
        assert 0 < summary.width * summary.height <= FUZZ_LIMITS.max_pixels, (summary.width, summary.height)
        assert rendered.result.body.startswith(PNG_SIGNATURE)

    return target


def json_event(data: bytes) -> Any:
    """The event Lambda would hand over, or None for bytes that are no JSON document."""
    try:
        return json.loads(data)
    except (ValueError, RecursionError):  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        return None


@dataclass
class MemoryS3:
    """Just what the trigger calls: every GET finds ``image``, every PUT is kept. No server, no errors."""

    image: bytes
    puts: dict[str, bytes] = field(default_factory=dict)

    def get_object(self, Bucket: str, Key: str, **_: Any) -> dict[str, Any]:  # noqa: N803 (boto3's names)
        return {"Body": io.BytesIO(self.image), "ContentLength": len(self.image), "Metadata": {}}

    def put_object(self, Bucket: str, Key: str, Body: bytes, ContentType: str) -> dict[str, Any]:  # noqa: N803
        self.puts[Key] = Body
        return {}


@dataclass(frozen=True)
class LoadedModel:
    segmenter: Segmenter

    def get(self) -> Segmenter:
        return self.segmenter


def small_png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (24, 16), (200, 30, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def upload_event_target(segmenter: Segmenter, context: Any) -> Target:
    """A JSON event -> the upload function's handler: a result dict, never an exception (see the docstring)."""
    from app.aws.lambda_s3 import make_upload_handler
    from app.aws.s3_trigger import S3Trigger

    s3 = MemoryS3(small_png())
    return event_target(make_upload_handler(S3Trigger(lambda: s3, LoadedModel(segmenter), Settings())), context)


def http_event_target(app: Any, context: Any) -> Target:
    """A JSON event -> the HTTP function's handler: a response under 500, or a refusal."""
    from app.aws.lambda_http import make_http_handler

    return event_target(make_http_handler(app), context, status_under_500)


def status_under_500(result: dict[str, Any]) -> None:
    """An HTTP answer may refuse (4xx), never fail (5xx)."""
    assert int(result.get("statusCode", 0)) < 500, result


def event_target(handler: Callable[[Any, Any], Any], context: Any,
                 check: Callable[[dict[str, Any]], None] = lambda result: None) -> Target:
    """JSON bytes -> ``handler(event, context)``, which must return a dict that passes ``check``; bytes that are
    no JSON document are dropped (Lambda only hands over parsed JSON)."""

    def target(data: bytes) -> None:
        event = json_event(data)
        if event is None:
            return
        result = handler(event, context)
        assert isinstance(result, dict), result
        check(result)

    return target


def quiet_logs() -> None:
    """The service logs every refusal; millions of runs need none of it (a bug shows as an exception)."""
    logging.disable(logging.CRITICAL)


def seed_files(directory: Path) -> list[Path]:
    return sorted(path for path in directory.rglob("*") if path.is_file())
