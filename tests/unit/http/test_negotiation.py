"""app.http.negotiation: without format=, Accept names the format; wildcards and no header give PNG."""

from __future__ import annotations

import pytest

from app.http.negotiation import negotiate_format

# id: (Accept header, output, format chosen)
CASES = {
    "no-header": (None, "overlay", "png"),
    "empty": ("", "overlay", "png"),
    "any": ("*/*", "overlay", "png"),
    "any-image": ("image/*", "overlay", "png"),
    "webp": ("image/webp", "overlay", "webp"),
    "jpeg": ("image/jpeg", "overlay", "jpeg"),
    "png-named": ("image/png", "overlay", "png"),
    "browser-img": ("image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8", "overlay", "webp"),
    "q-prefers-jpeg": ("image/webp;q=0.5, image/jpeg;q=0.9", "overlay", "jpeg"),
    "q-prefers-png": ("image/png, image/webp;q=0.8", "overlay", "png"),
    "tie-first-listed": ("image/jpeg, image/webp", "overlay", "jpeg"),
    "tie-first-listed-2": ("image/webp, image/jpeg", "overlay", "webp"),
    "q-zero-excludes": ("image/webp;q=0, image/jpeg;q=0.1", "overlay", "jpeg"),
    "all-excluded": ("image/webp;q=0", "overlay", "png"),
    "case-and-spaces": ("  IMAGE/WEBP ; Q=0.7 ", "overlay", "webp"),
    "malformed-q": ("image/webp;q=high, image/jpeg", "overlay", "jpeg"),
    "q-over-1-capped": ("image/jpeg;q=5, image/webp", "overlay", "jpeg"),
    "unknown-only": ("image/gif, text/html", "overlay", "png"),
    "cutout-never-jpeg": ("image/jpeg", "cutout", "png"),
    "cutout-webp": ("image/jpeg, image/webp;q=0.5", "cutout", "webp"),
    "mask-jpeg": ("image/jpeg", "mask", "jpeg"),
}


@pytest.mark.parametrize(("accept", "output", "expected"), CASES.values(), ids=CASES.keys())
def test_negotiate_format(accept: str | None, output: str, expected: str) -> None:
    assert negotiate_format(accept, output) == expected  # type: ignore[arg-type]
