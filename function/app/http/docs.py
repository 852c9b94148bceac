"""``/docs``: Swagger UI that works without internet, its script, style and icon served by this app.

FastAPI's own page loads Swagger UI from a CDN, so without internet it is blank. The
same page is built here with FastAPI's ``get_swagger_ui_html``, pointed at the files
the ``fastapi-swagger`` package ships (MIT; it republishes Swagger UI's dist with each
upstream release: 0.4.64 carries Swagger UI 5.34.0), served under ``ASSETS``. Only
its files are used, not its ``patch_fastapi`` (which would also redirect ``/``).

There is no ``/redoc``: ReDoc 2.x fetches its footer logo from its own CDN, so it is
never wholly offline, and Swagger UI covers the same ground (and can try requests).
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS = "/docs-assets"
ASSETS_PACKAGE = ("fastapi_swagger", "resources")  # swagger-ui-bundle.js, swagger-ui.css, favicon-32x32.png
# Swagger UI asks validator.swagger.io for a badge about any spec served from a host other than localhost.
SWAGGER_PARAMETERS = {"validatorUrl": None}


def install_docs(app: FastAPI) -> None:
    """Mount the assets and add /docs; the app must be built with ``docs_url=None, redoc_url=None``."""
    app.mount(ASSETS, StaticFiles(packages=[ASSETS_PACKAGE]), name="docs-assets")
    app.add_api_route("/docs", swagger_ui, methods=["GET"], include_in_schema=False)


def swagger_ui(request: Request) -> HTMLResponse:
    """FastAPI's Swagger UI page with local assets; URLs carry the app's root path (none under API Gateway's
    $default stage or uvicorn), as FastAPI's own /docs does."""
    root = str(request.scope.get("root_path", "")).rstrip("/")
    return get_swagger_ui_html(
        openapi_url=f"{root}{request.app.openapi_url}", title=f"{request.app.title} - Swagger UI",
        swagger_js_url=f"{root}{ASSETS}/swagger-ui-bundle.js", swagger_css_url=f"{root}{ASSETS}/swagger-ui.css",
        swagger_favicon_url=f"{root}{ASSETS}/favicon-32x32.png", swagger_ui_parameters=SWAGGER_PARAMETERS,
    )
