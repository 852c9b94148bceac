"""GET /ui and /docs without internet, and what /health tells the page: defaults and limits.

The page in a browser is tests/integration/browser/; here, what the app serves and promises.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from html.parser import HTMLParser
from typing import Any, get_args
from urllib.parse import unquote
from xml.etree import ElementTree

import pytest

from app.core.options import ImageFormat, Output
from app.http.schemas import PredictOptions

EXTERNAL = re.compile(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}", re.IGNORECASE)  # any URL naming a host
SVG_NAMESPACE = "http://www.w3.org/2000/svg"  # the inline icon's: a name, never fetched


class Controls(HTMLParser):
    """The form controls' names, each select's option values, every src/href the page references, its icons."""

    def __init__(self) -> None:
        super().__init__()
        self.names: list[str] = []
        self.choices: dict[str, list[str]] = {}
        self.references: list[str] = []
        self.icons: list[str] = []
        self._select: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag in {"input", "select"} and attributes.get("name"):
            self.names.append(str(attributes["name"]))
        if tag == "select":
            self._select = str(attributes["name"])
            self.choices[self._select] = []
        if tag == "option" and self._select:
            self.choices[self._select].append(str(attributes["value"]))
        self.references += [str(attributes[key]) for key in ("src", "href") if attributes.get(key)]
        if tag == "link" and attributes.get("rel") == "icon":
            self.icons.append(str(attributes["href"]))


def parsed(html: str) -> Controls:
    controls = Controls()
    controls.feed(html)
    return controls


def test_the_page_is_one_self_contained_html_file(make_client: Callable) -> None:
    response = make_client().get("/ui")
    assert (response.status_code, response.headers["content-type"]) == (200, "text/html; charset=utf-8")
    assert EXTERNAL.findall(response.text.replace(SVG_NAMESPACE, "")) == []  # no CDN, no font service: offline
    controls = parsed(response.text)
    assert controls.references == [*controls.icons, "docs"]  # styles, script, icon inline; one link, to the API docs


def test_the_page_brings_its_own_icon(make_client: Callable) -> None:
    """Without an icon the browser asks for /favicon.ico, a 404; this one is inline SVG and asks for nothing."""
    [icon] = parsed(make_client().get("/ui").text).icons
    media_type, _, svg = icon.partition(",")
    root = ElementTree.fromstring(unquote(svg))
    assert (media_type, root.tag, root.get("width"), root.get("height")) == (
        "data:image/svg+xml", f"{{{SVG_NAMESPACE}}}svg", "32", "32")


def test_the_page_offers_every_option_of_the_api_with_its_values(make_client: Callable) -> None:
    controls = parsed(make_client().get("/ui").text)
    assert sorted(controls.names) == sorted(PredictOptions.model_fields)
    assert controls.choices == {"output": list(get_args(Output)), "format": list(get_args(ImageFormat))}


def test_the_root_stays_the_seed_services_answer(make_client: Callable) -> None:
    assert make_client().get("/").json() == {"message": "UNet API is running!"}


DOCS_ASSETS = {"/docs-assets/swagger-ui.css": "text/css", "/docs-assets/favicon-32x32.png": "image/png",
               "/docs-assets/swagger-ui-bundle.js": "text/javascript"}


def test_the_docs_load_their_assets_from_this_app(make_client: Callable) -> None:
    client = make_client()
    html = client.get("/docs").text
    assert EXTERNAL.findall(html) == []
    assert set(parsed(html).references) == set(DOCS_ASSETS)
    for asset, media_type in DOCS_ASSETS.items():
        response = client.get(asset)
        assert (response.status_code, response.headers["content-type"].split(";")[0]) == (200, media_type)
    assert "url: '/openapi.json'" in html and '"validatorUrl": null' in html


def test_redoc_is_gone_rather_than_blank_offline(make_client: Callable) -> None:
    assert make_client().get("/redoc").status_code == 404


def test_the_docs_are_not_operations_of_the_api(make_client: Callable) -> None:
    paths = make_client().get("/openapi.json").json()["paths"]
    assert not {"/ui", "/docs"} & set(paths)


LIMITS = {"max_bytes": 4_400_000, "max_pixels": 50_000_000}
UPLOAD_LIMITS = {"max_bytes": 50_000_000, "max_pixels": 100_000_000}
DEFAULTS = {"output": "overlay", "format": "png", "quality": None, "color": "#ff3b30", "alpha": 0.5,
            "threshold": 0.5}  # the tiny model's threshold


@pytest.mark.parametrize(
    ("settings", "defaults", "limits"),
    [
        ({}, DEFAULTS, {"predict": LIMITS, "uploads": None}),
        ({"UPLOAD_BUCKET": "b"}, DEFAULTS, {"predict": LIMITS, "uploads": UPLOAD_LIMITS}),
        ({"UPLOAD_BUCKET": "b", "MAX_UPLOAD_BYTES": 1000, "MAX_PIXELS": 2000, "S3_MAX_UPLOAD_BYTES": 3000,
          "S3_MAX_PIXELS": 4000}, DEFAULTS,
         {"predict": {"max_bytes": 1000, "max_pixels": 2000}, "uploads": {"max_bytes": 3000, "max_pixels": 4000}}),
        ({"UPLOAD_BUCKET": "b", "UPLOAD_MAX_BYTES": 5000}, DEFAULTS,
         {"predict": LIMITS, "uploads": {**UPLOAD_LIMITS, "max_bytes": 5000}}),
        ({"OVERLAY_COLOR": "0,200,255", "OVERLAY_ALPHA": 0.25}, {**DEFAULTS, "color": "#00c8ff", "alpha": 0.25},
         {"predict": LIMITS, "uploads": None}),
    ],
    ids=["defaults", "upload-flow", "limits", "upload-cap", "overlay"],
)
def test_health_tells_the_defaults_and_limits(
    make_client: Callable, settings: dict[str, Any], defaults: dict[str, Any], limits: dict[str, Any]
) -> None:
    body = make_client(**settings).get("/health").json()
    assert (body["defaults"], body["limits"]) == (defaults, limits)


@pytest.mark.parametrize(("settings", "api_keys"), [({}, False), ({"API_KEYS": "k1,k2"}, True)])
def test_health_tells_whether_an_api_key_is_needed(
    make_client: Callable, settings: dict[str, Any], api_keys: bool
) -> None:
    client = make_client(**settings)
    assert client.get("/health").json()["api_keys"] is api_keys
    assert client.get("/ui").status_code == 200  # the page itself is open: it asks for the key


def test_health_tells_them_while_the_model_is_unavailable(make_client: Callable, tmp_path: Any) -> None:
    from app.core.settings import Settings
    from app.runtime import build_holder

    missing = build_holder(Settings(MODEL_URI=str(tmp_path / "none.onnx")))
    response = make_client(holder=missing).get("/health")
    assert response.status_code == 503
    assert response.json()["defaults"] == {**DEFAULTS, "threshold": None}  # no model: no threshold of its own
    assert response.json()["limits"] == {"predict": LIMITS, "uploads": None}
