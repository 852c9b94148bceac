"""app.http.body_limit: over-long bodies refused before parsing, with the limit the user configured."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from starlette.exceptions import HTTPException

from app.http.body_limit import MULTIPART_OVERHEAD_BYTES, BodySizeLimit, declared_length

LIMIT = 1000


class Downstream:
    """The app behind the middleware: reads the whole body, records that it ran."""

    def __init__(self) -> None:
        self.received = b""
        self.called = False

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.called = True
        while True:
            message = await receive()
            self.received += message.get("body", b"")
            if not message.get("more_body"):
                break


def run(scope: dict[str, Any], chunks: list[bytes]) -> tuple[Downstream, list[dict[str, Any]]]:
    downstream, sent = Downstream(), []
    messages = iter([{"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1}
                     for i, chunk in enumerate(chunks)])

    async def receive() -> dict[str, Any]:
        return next(messages)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(BodySizeLimit(downstream, max_file_bytes=LIMIT)(scope, receive, send))
    finally:
        loop.close()
    return downstream, sent


def http(content_length: str | None) -> dict[str, Any]:
    headers = [(b"content-length", content_length.encode())] if content_length is not None else []
    return {"type": "http", "headers": headers}


def test_a_declared_length_over_the_limit_is_answered_unread() -> None:
    downstream, sent = run(http(str(LIMIT + MULTIPART_OVERHEAD_BYTES + 1)), [b"x"])
    assert not downstream.called
    assert sent[0]["status"] == 413
    detail = json.loads(sent[1]["body"])["detail"]
    assert detail == (f"the request body is {LIMIT + MULTIPART_OVERHEAD_BYTES + 1} bytes; an upload may be at most "
                      f"{LIMIT} bytes (MAX_UPLOAD_BYTES): send a smaller or more compressed image")


def test_the_file_limit_plus_multipart_framing_passes() -> None:
    size = LIMIT + MULTIPART_OVERHEAD_BYTES
    downstream, sent = run(http(str(size)), [b"x" * size])
    assert downstream.called and len(downstream.received) == size and sent == []


def test_a_streamed_body_is_cut_off_once_it_passes_the_limit() -> None:
    chunk = b"x" * (MULTIPART_OVERHEAD_BYTES // 2)
    with pytest.raises(HTTPException) as raised:
        run(http(None), [chunk] * 5)
    assert raised.value.status_code == 413
    assert f"at most {LIMIT} bytes (MAX_UPLOAD_BYTES)" in raised.value.detail


@pytest.mark.parametrize("scope_type", ["websocket", "lifespan"])
def test_other_scopes_pass_through(scope_type: str) -> None:
    downstream, _ = run({"type": scope_type, "headers": []}, [b""])
    assert downstream.called


@pytest.mark.parametrize(("value", "expected"), [("10", 10), ("0", 0), (None, None), ("ten", None), ("", None)])
def test_declared_length(value: str | None, expected: int | None) -> None:
    assert declared_length(http(value)) == expected
