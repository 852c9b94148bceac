"""The page at /ui as the browser tests drive it: open it, wait for a run to end, read what it shows."""

from __future__ import annotations

import base64
import io
from functools import lru_cache
from typing import Any

import numpy as np
import requests
from PIL import Image
from playwright.sync_api import Page

from tests.support import SAMPLE_JPEG

# The result image's bytes as the page holds them (its blob: URL), base64 for the trip back to Python.
READ_BLOB = """async (url) => {
  const bytes = new Uint8Array(await (await fetch(url)).arrayBuffer());
  let text = "";
  for (const byte of bytes) text += String.fromCharCode(byte);
  return btoa(text);
}"""


def open_page(page: Page, server: str) -> None:
    """The page, once it has the server's defaults and limits (GET /health)."""
    page.goto(f"{server}/ui")
    page.wait_for_selector("body[data-settings=ready]")


def wait_for_run(page: Page, run: int, state: str = "done") -> None:
    """Until the page's ``run``-th request (1 = the first image) has ended in ``state`` (done or error)."""
    page.wait_for_selector(f"#result-panel[data-run='{run}'][data-state={state}]")


def blob_bytes(page: Page, url: str) -> bytes:
    return base64.b64decode(page.evaluate(READ_BLOB, url))


def shown_result(page: Page) -> Image.Image:
    """The result image the page shows, decoded from its own bytes."""
    return Image.open(io.BytesIO(blob_bytes(page, page.get_attribute("#result", "src") or "")))


def predicted(server: str, **options: Any) -> Image.Image:
    """What POST /predict answers for the sample with these options: what the page must show."""
    return Image.open(io.BytesIO(_predicted(server, tuple(sorted(options.items())))))


@lru_cache(maxsize=32)
def _predicted(server: str, options: tuple[tuple[str, Any], ...]) -> bytes:
    """Asked once per server and options: the tests compare several runs of the page with the same answer."""
    response = requests.post(f"{server}/predict", params=dict(options), timeout=60,
                             files={"file": (SAMPLE_JPEG.name, SAMPLE_JPEG.read_bytes(), "image/jpeg")})
    response.raise_for_status()
    return response.content


def same_pixels(first: Image.Image, second: Image.Image) -> bool:
    return first.mode == second.mode and np.array_equal(np.asarray(first), np.asarray(second))
