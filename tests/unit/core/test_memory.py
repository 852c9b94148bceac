"""The C heap between requests: a small request's freed memory stays for the next, a large one's goes back."""

from __future__ import annotations

import pytest

from app.core.resources import memory

KEEP = memory.KEEP_FREED_UP_TO_PIXELS


@pytest.mark.parametrize(("pixels", "trims"), [
    (1, 0),
    (1920 * 1080, 0),  # 1080p: the next request reuses its buffers instead of faulting them back in
    (KEEP, 0),
    (KEEP + 1, 1),
    (4000 * 3000, 1),  # a 12 MP photo: its 60 MB of image and mask go back to the system
])
def test_the_heap_is_trimmed_after_large_requests_only(pixels: int, trims: int,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[None] = []
    monkeypatch.setattr(memory, "trim_heap", lambda: calls.append(None))
    memory.trim_heap_after(pixels)
    assert len(calls) == trims

