"""Refuse over-long request bodies before they are parsed: 413 with a JSON ``detail``.

A declared ``Content-Length`` over the limit is answered at once, unread; a body
without one (chunked) is counted as it streams and stopped when it passes the
limit. The limit on the wire is the file limit the user configured
(``MAX_UPLOAD_BYTES``) plus room for the multipart framing around the file, but
the message states the configured limit: that is the number the user knows.
The exact per-file limit is enforced again on the file's bytes by
``app.core.decoding.imaging``; this guard keeps a huge upload from being spooled to disk first.
Starlette's own ``RequestBodyLimitMiddleware`` answers in plain text, hence this.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MULTIPART_OVERHEAD_BYTES = 64 * 1024  # boundary and part headers around the file in a multipart body


class BodySizeLimit:
    """Pure ASGI middleware: 413 for any HTTP request body over ``max_file_bytes`` plus multipart framing."""

    def __init__(self, app: ASGIApp, max_file_bytes: int, setting: str = "MAX_UPLOAD_BYTES") -> None:
        self.app, self.max_file_bytes, self.setting = app, max_file_bytes, setting
        self.max_body_bytes = max_file_bytes + MULTIPART_OVERHEAD_BYTES

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = declared_length(scope)
        if declared is not None and declared > self.max_body_bytes:
            await JSONResponse({"detail": self.detail(declared)}, status_code=413)(scope, receive, send)
            return
        await self.app(scope, self._counting(receive), send)

    def detail(self, size: int) -> str:
        return (
            f"the request body is {size} bytes; an upload may be at most {self.max_file_bytes} bytes "
            f"({self.setting}): send a smaller or more compressed image"
        )

    def _counting(self, receive: Receive) -> Receive:
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_body_bytes:
                # An HTTPException raised while the body is read reaches the app's
                # handler unchanged (FastAPI re-raises it), which answers in JSON.
                raise HTTPException(status_code=413, detail=self.detail(received))
            return message

        return counted


def declared_length(scope: Scope) -> int | None:
    value = Headers(scope=scope).get("content-length")
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None
