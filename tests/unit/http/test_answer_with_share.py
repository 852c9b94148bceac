"""app.http.routes.AnswerWithShare: the request's memory share is held while its answer is sent, and returned
however the sending ends."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from app.core.resources.budget import MemoryBudget, Share
from app.http.routes import AnswerWithShare

MB = 1_000_000
SCOPE = {"type": "http", "method": "POST", "path": "/predict", "headers": []}


async def receive() -> dict[str, Any]:
    return {"type": "http.disconnect"}


def sender(behaviour: str, seen: list[bool], share: Share) -> Callable[[dict[str, Any]], Awaitable[None]]:
    """An ASGI ``send`` that records whether the share is held at each message, then behaves as asked."""
    async def send(message: dict[str, Any]) -> None:
        seen.append(share.held)
        if message["type"] == "http.response.body" and behaviour == "client-gone":
            raise OSError("connection reset by peer")
        if message["type"] == "http.response.body" and behaviour == "cancelled":
            raise asyncio.CancelledError

    return send


@pytest.mark.parametrize(("behaviour", "raised"), [("sent", None), ("client-gone", OSError),
                                                   ("cancelled", asyncio.CancelledError)])
def test_the_share_is_held_while_sending_and_returned_however_it_ends(behaviour: str,
                                                                      raised: type[BaseException] | None) -> None:
    memory = MemoryBudget(100 * MB)
    memory.reserve(30 * MB)
    share, seen = Share(memory, 30 * MB, holders=1), []
    answer = AnswerWithShare(memoryview(b"png bytes"), share, media_type="image/png", headers={"Vary": "Accept"})

    async def respond() -> None:
        await answer(SCOPE, receive, sender(behaviour, seen, share))

    loop = asyncio.new_event_loop()
    try:
        if raised is None:
            loop.run_until_complete(respond())
        else:
            with pytest.raises(raised):
                loop.run_until_complete(respond())
    finally:
        loop.close()
    assert seen == [True, True]  # the start and the body went out with the share still held
    assert (share.held, memory.reserved) == (False, 0)
