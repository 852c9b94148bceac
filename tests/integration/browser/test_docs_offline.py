"""/docs (Swagger UI) renders the API in Chromium with every request off this server refused, as on a machine
without internet: its script, style and icon come from the app (fastapi-swagger's files)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import requests
from playwright.sync_api import Page, Route

pytestmark = pytest.mark.slow


def offline(page: Page, server: str) -> list[str]:
    """Refuses every request that leaves ``server``; returns the list of those refused, filled as they come."""
    refused: list[str] = []

    def only_this_server(route: Route) -> None:
        if route.request.url.startswith(f"{server}/"):
            route.continue_()
        else:
            refused.append(route.request.url)
            route.abort("internetdisconnected")

    page.route("**/*", only_this_server)
    return refused


def test_swagger_ui_renders_every_operation_offline(page: Page, server: str, shot: Callable) -> None:
    refused = offline(page, server)
    page.goto(f"{server}/docs")
    page.wait_for_selector(".opblock-summary-path")
    shot("12-docs-offline")
    summaries = page.locator(".opblock-summary").evaluate_all(
        "blocks => blocks.map(b => b.querySelector('.opblock-summary-method').textContent + ' ' +"
        " b.querySelector('.opblock-summary-path').dataset.path)")
    paths = requests.get(f"{server}/openapi.json", timeout=30).json()["paths"]
    assert summaries == [f"{method.upper()} {path}" for path, operations in paths.items() for method in operations]
    assert "POST /predict" in summaries
    assert refused == []
