"""``GET /ui``: a page to try the service in a browser (``ui/index.html``), served as it is.

The page is one self-contained file (HTML, CSS, a little JS; nothing from a CDN) that
reads the defaults and limits from ``GET /health`` and calls the API as any client
would: ``POST /predict``, or ``POST /uploads`` and ``GET /results/{id}`` for files
over the direct limit. Its URLs are relative, so it works under a path prefix too.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

PAGE = ("ui", "index.html")  # package data of app.http (pyproject: [tool.setuptools.package-data])

router = APIRouter()


@router.get("/ui", response_class=HTMLResponse, include_in_schema=False)
def page() -> HTMLResponse:
    """The page: choose, drop or paste an image; compare the result with the original; download it."""
    return HTMLResponse(page_html())


@lru_cache(maxsize=1)
def page_html() -> str:
    """Read once per process: the file does not change while the app runs."""
    return resources.files("app.http").joinpath(*PAGE).read_text(encoding="utf-8")
