"""The page at /ui in Chromium against `make serve`: an image in (chosen, dropped, pasted), the result the API gives
for the same options, errors in words, option changes, the download, the keyboard, a phone's width."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import requests
from PIL import Image
from playwright.sync_api import BrowserContext, Page

from tests.integration.browser.ui import blob_bytes, open_page, predicted, same_pixels, shown_result, wait_for_run
from tests.servers import make_serve
from tests.support import PNG_SIGNATURE, SAMPLE_JPEG, expected_overlay, rgb_of

pytestmark = pytest.mark.slow
DEFAULT_COLOR, DEFAULT_ALPHA = (255, 59, 48), 0.5  # Settings' OVERLAY_COLOR and OVERLAY_ALPHA
TEXT_FILE = {"name": "notes.txt", "mimeType": "text/plain", "buffer": b"a shopping list, not an image"}
API_KEY = "page-test-key"

# Hands a file to the page as the browser does for a drop on the page or a paste: a File in a DataTransfer.
HAND_OVER = """([how, name, type, data]) => {
  const bytes = Uint8Array.from(atob(data), (char) => char.charCodeAt(0));
  const transfer = new DataTransfer();
  transfer.items.add(new File([bytes], name, {type}));
  const event = how === "drop"
    ? new DragEvent("drop", {dataTransfer: transfer, bubbles: true, cancelable: true})
    : new ClipboardEvent("paste", {clipboardData: transfer, bubbles: true, cancelable: true});
  (how === "drop" ? document.getElementById("drop") : document.body).dispatchEvent(event);
}"""


def test_a_chosen_image_comes_back_tinted_where_the_mask_is(page: Page, server: str, shot: Callable) -> None:
    open_page(page, server)
    shot("1-ready")
    # WHEN a person chooses the sample
    with page.expect_response(lambda response: response.url.startswith(f"{server}/predict")) as answered:
        page.set_input_files("#file", SAMPLE_JPEG)
    wait_for_run(page, 1)
    shot("2-result")
    # THEN the result is the input's size, and the pixels POST /predict gives for the default options
    result = shown_result(page)
    assert result.size == rgb_of(SAMPLE_JPEG).size == (447, 231)
    assert page.eval_on_selector("#result", "image => [image.naturalWidth, image.naturalHeight]") == [447, 231]
    assert same_pixels(result, predicted(server))
    # AND those pixels are the original tinted where the model's mask is, untouched elsewhere
    mask = np.asarray(predicted(server, output="mask")) == 255
    assert 0.05 < mask.mean() < 0.95
    assert np.array_equal(np.asarray(result), expected_overlay(np.asarray(rgb_of(SAMPLE_JPEG)), mask, DEFAULT_COLOR,
                                                               DEFAULT_ALPHA))
    # AND the timings are the response's Server-Timing stages, then the round trip the page measured
    stages = [entry.split(";")[0].strip() for entry in answered.value.headers["server-timing"].split(",")]
    assert page.locator("#timings tbody th").all_inner_texts() == [*stages, "round trip, seen by this page"]
    assert page.get_attribute("#result", "alt") == "Overlay (foreground tinted) of blobs.jpg"


@pytest.mark.parametrize("how", ["drop", "paste"])
def test_a_dropped_or_pasted_image_is_segmented_the_same(page: Page, server: str, how: str) -> None:
    open_page(page, server)
    data = base64.b64encode(SAMPLE_JPEG.read_bytes()).decode()
    page.evaluate(HAND_OVER, [how, SAMPLE_JPEG.name, "image/jpeg", data])
    wait_for_run(page, 1)
    assert same_pixels(shown_result(page), predicted(server))
    assert page.inner_text("#original-caption") == "Original: blobs.jpg (21.2 kB)"


@pytest.mark.parametrize("how", ["drop", "paste"])
def test_a_dropped_or_pasted_image_is_named_by_the_file_input(page: Page, server: str, how: str) -> None:
    # GIVEN the page, its file input empty ("No file chosen")
    open_page(page, server)
    assert page.eval_on_selector("#file", "input => input.files.length") == 0
    # WHEN an image is dropped or pasted
    data = base64.b64encode(SAMPLE_JPEG.read_bytes()).decode()
    page.evaluate(HAND_OVER, [how, SAMPLE_JPEG.name, "image/jpeg", data])
    wait_for_run(page, 1)
    # THEN the input holds that file, as if it had been chosen, and the image was taken once
    files = page.eval_on_selector("#file", "input => [...input.files].map((file) => [file.name, file.size])")
    assert files == [[SAMPLE_JPEG.name, SAMPLE_JPEG.stat().st_size]]
    assert page.get_attribute("#result-panel", "data-run") == "1"


# The page's icon as the browser decodes it: its size, or an error.
ICON_SIZE = """() => new Promise((resolve, reject) => {
  const image = new Image();
  image.onload = () => resolve([image.naturalWidth, image.naturalHeight]);
  image.onerror = () => reject(new Error("the page's icon does not decode"));
  image.src = document.querySelector("link[rel=icon]").href;
})"""


def test_the_page_has_an_icon_and_no_request_fails(page: Page, server: str) -> None:
    failed: list[str] = []
    page.on("response", lambda response: failed.append(response.url) if response.status >= 400 else None)
    open_page(page, server)
    assert page.evaluate(ICON_SIZE) == [32, 32]  # Chromium takes it, so it asks for no /favicon.ico
    assert failed == []


def test_a_text_file_shows_the_servers_400_in_words(page: Page, server: str, shot: Callable) -> None:
    detail = requests.post(f"{server}/predict", files={"file": ("notes.txt", TEXT_FILE["buffer"])}, timeout=30)
    assert detail.status_code == 400
    open_page(page, server)
    page.set_input_files("#file", files=[TEXT_FILE])
    wait_for_run(page, 1, "error")
    shot("3-error-400")
    assert page.inner_text("#error") == f"POST /predict answered 400: {detail.json()['detail']}"
    assert page.get_attribute("#error", "role") == "alert"
    assert page.is_hidden("#result-figure") and page.is_hidden("#download")


def test_an_option_the_api_refuses_shows_its_422_in_words(page: Page, server: str) -> None:
    # GIVEN JPEG, and a quality the field's min would flag but the browser still lets through
    refused = requests.post(f"{server}/predict", params={"format": "jpeg", "quality": 0}, timeout=30,
                            files={"file": (SAMPLE_JPEG.name, SAMPLE_JPEG.read_bytes(), "image/jpeg")})
    assert refused.status_code == 422
    [problem] = refused.json()["detail"]
    open_page(page, server)
    page.select_option("#format", "jpeg")
    page.fill("#quality", "0")
    page.set_input_files("#file", SAMPLE_JPEG)
    wait_for_run(page, 1, "error")
    # THEN FastAPI's list of problems reads as words: the option's name, then what is wrong with it
    assert page.inner_text("#error") == f"POST /predict answered 422: quality: {problem['msg']}"


@pytest.fixture(scope="module")
def tuned_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`make serve` with its own overlay defaults (OVERLAY_COLOR, OVERLAY_ALPHA): the page must start from them."""
    env = {"OVERLAY_COLOR": "00c8ff", "OVERLAY_ALPHA": "0.25"}
    with make_serve(env, tmp_path_factory.mktemp("tuned") / "server.log") as url:
        yield url


def test_the_options_start_from_the_servers_defaults(page: Page, tuned_server: str, shot: Callable) -> None:
    open_page(page, tuned_server)
    shown = {control: page.input_value(f"#{control}")
             for control in ("output", "format", "quality", "color", "alpha", "threshold")}
    assert shown == {"output": "overlay", "format": "png", "quality": "", "color": "#00c8ff", "alpha": "0.25",
                     "threshold": "0.45"}  # the bundled model's own threshold (its metadata), from /health too
    assert (page.inner_text("#alpha-value"), page.inner_text("#threshold-value")) == ("0.25", "0.45")
    # WHEN an image is chosen with nothing changed THEN no option is sent, and the server's defaults apply
    with page.expect_request(lambda request: request.url.startswith(f"{tuned_server}/predict")) as sent:
        page.set_input_files("#file", SAMPLE_JPEG)
    wait_for_run(page, 1)
    shot("13-server-defaults")
    assert sent.value.url == f"{tuned_server}/predict?"
    mask = np.asarray(predicted(tuned_server, output="mask")) == 255
    assert np.array_equal(np.asarray(shown_result(page)),
                          expected_overlay(np.asarray(rgb_of(SAMPLE_JPEG)), mask, (0, 200, 255), 0.25))


@pytest.mark.parametrize(
    ("control", "value", "options"),
    [
        ("#output", "mask", {"output": "mask"}),
        ("#format", "webp", {"format": "webp"}),
        ("#color", "#00c8ff", {"color": "00c8ff"}),
        ("#threshold", "0.3", {"threshold": 0.3}),
    ],
    ids=["output", "format", "colour", "threshold"],
)
def test_an_option_change_renders_again_with_that_option(
    page: Page, server: str, control: str, value: str, options: dict, shot: Callable
) -> None:
    open_page(page, server)
    page.set_input_files("#file", SAMPLE_JPEG)
    wait_for_run(page, 1)
    # WHEN one option changes THEN the page asks again, and shows what /predict gives for that option alone
    if control in {"#output", "#format"}:
        page.select_option(control, value)
    else:
        page.fill(control, value)
    wait_for_run(page, 2)
    shot(f"4-option-{control.strip('#')}")
    assert same_pixels(shown_result(page), predicted(server, **options))


@pytest.mark.parametrize(
    ("format_", "name", "media_type", "magic"),
    [
        ("png", "blobs.overlay.png", "image/png", PNG_SIGNATURE),
        ("jpeg", "blobs.overlay.jpg", "image/jpeg", b"\xff\xd8\xff"),
        ("webp", "blobs.overlay.webp", "image/webp", b"RIFF"),
    ],
)
def test_the_download_is_the_result_with_its_name_and_type(
    page: Page, server: str, tmp_path: Path, format_: str, name: str, media_type: str, magic: bytes
) -> None:
    open_page(page, server)
    page.select_option("#format", format_)
    page.set_input_files("#file", SAMPLE_JPEG)
    wait_for_run(page, 1)
    with page.expect_download() as started:
        page.click("#download")
    download = started.value
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    link = page.get_attribute("#download", "href") or ""
    assert (download.suggested_filename, page.get_attribute("#download", "type")) == (name, media_type)
    assert page.evaluate("async (url) => (await fetch(url)).headers.get('content-type')", link) == media_type
    assert saved.read_bytes().startswith(magic) and saved.read_bytes() == blob_bytes(page, link)
    with Image.open(saved) as image:
        assert image.size == (447, 231)


def test_json_output_shows_the_numbers_and_downloads_them(page: Page, server: str, shot: Callable) -> None:
    open_page(page, server)
    page.select_option("#output", "json")
    page.set_input_files("#file", SAMPLE_JPEG)
    wait_for_run(page, 1)
    shot("5-json")
    assert page.is_disabled("#format") and page.is_disabled("#alpha") and page.is_disabled("#color")
    assert page.is_hidden("#result-figure") and page.is_visible("#json")
    assert '"width": 447' in page.inner_text("#json") and '"height": 231' in page.inner_text("#json")
    assert (page.get_attribute("#download", "download"), page.get_attribute("#download", "type")) == (
        "blobs.json", "application/json")


def test_keyboard_alone_chooses_compares_changes_and_downloads(page: Page, server: str, shot: Callable) -> None:
    # Playwright turns on file chooser interception with the first listener, without waiting for it; a key pressed
    # before it took effect opened an unintercepted chooser and the wait below timed out (once in about a dozen runs
    # on 2 busy CPUs). Listening from the start leaves it time.
    page.on("filechooser", lambda _: None)
    open_page(page, server)
    page.focus("a[href=docs]")
    # The file chooser opens from the keyboard, as from a click
    page.keyboard.press("Tab")
    with page.expect_file_chooser() as chooser:
        page.keyboard.press("Space")
    chooser.value.set_files(SAMPLE_JPEG)
    wait_for_run(page, 1)
    # Every control in reading order, the disabled quality (PNG) skipped, then the slider and the download
    order = []
    for _ in range(9):
        order.append(page.evaluate("document.activeElement.id"))
        page.keyboard.press("Tab")
    assert order == ["file", "key", "output", "format", "color", "alpha", "threshold", "split", "download"]
    # The before/after slider moves the line with the arrow keys
    page.focus("#split")
    for _ in range(3):
        page.keyboard.press("ArrowLeft")
    clip = page.eval_on_selector("#after", "image => getComputedStyle(image).clipPath")
    assert clip == "inset(0px 0px 0px 47%)"
    shot("6-keyboard-slider")
    # Changing the output from the keyboard renders again
    page.focus("#output")
    page.keyboard.press("ArrowDown")
    wait_for_run(page, 2)
    assert page.input_value("#output") == "mask"
    assert same_pixels(shown_result(page), predicted(server, output="mask"))


def test_every_control_is_labelled_and_the_status_is_announced(page: Page, server: str) -> None:
    open_page(page, server)
    unlabelled = page.evaluate("""() => [...document.querySelectorAll("input, select, textarea, button")]
        .filter((control) => control.labels.length === 0 && !control.getAttribute("aria-label")).map((c) => c.id)""")
    assert unlabelled == []
    assert (page.get_attribute("#status", "role"), page.get_attribute("#status", "aria-live")) == ("status", "polite")
    page.set_input_files("#file", SAMPLE_JPEG)
    wait_for_run(page, 1)
    assert page.get_attribute("#result-panel", "aria-busy") == "false"
    assert re.fullmatch(r"Done: blobs\.jpg, overlay, in \d+ ms\.", page.inner_text("#status"))
    assert page.get_attribute("#original", "alt") == "Original: blobs.jpg"


def test_the_page_fits_a_phone(page: Page, server: str, shot: Callable) -> None:
    page.set_viewport_size({"width": 390, "height": 844})
    open_page(page, server)
    page.set_input_files("#file", SAMPLE_JPEG)
    wait_for_run(page, 1)
    shot("7-phone")
    assert page.evaluate("document.documentElement.scrollWidth") == 390  # nothing wider than the screen
    original, result = page.locator("#original").bounding_box(), page.locator("#result").bounding_box()
    assert original and result and result["y"] >= original["y"] + original["height"]  # stacked, not side by side


@pytest.fixture(scope="module")
def keyed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`make serve` with API keys: POST /predict needs one, the page and /health stay open."""
    with make_serve({"API_KEYS": API_KEY}, tmp_path_factory.mktemp("keyed") / "server.log") as url:
        yield url


def test_a_server_with_api_keys_gets_the_key_typed_into_the_page(
    page: Page, keyed_server: str, server: str, shot: Callable
) -> None:
    open_page(page, keyed_server)
    assert page.inner_text("#key-hint").startswith("This server asks for an API key (API_KEYS).")
    # WHEN an image goes without a key THEN the 401 is said in words, with what to do, and the key field has focus
    page.set_input_files("#file", SAMPLE_JPEG)
    wait_for_run(page, 1, "error")
    refused = requests.post(f"{keyed_server}/predict", files={"file": ("a.jpg", b"x")}, timeout=30)
    shot("14-api-key-needed")
    assert refused.status_code == 401
    assert page.inner_text("#error") == (f"POST /predict answered 401: {refused.json()['detail']}. Enter a key or "
                                         "token in the API key field.")
    assert page.evaluate("document.activeElement.id") == "key"
    # WHEN the key is typed there THEN the same image is sent again, with it
    with page.expect_request(lambda request: request.url.startswith(f"{keyed_server}/predict")) as sent:
        page.keyboard.type(API_KEY)
        page.keyboard.press("Enter")
    wait_for_run(page, 2)
    assert sent.value.headers["authorization"] == f"Bearer {API_KEY}"
    assert same_pixels(shown_result(page), predicted(server))


def test_the_key_lasts_as_long_as_the_tab_and_no_longer(
    page: Page, keyed_server: str, server: str, new_context: Callable[..., BrowserContext]
) -> None:
    open_page(page, keyed_server)
    page.fill("#key", API_KEY)
    page.dispatch_event("#key", "change")
    # WHEN the tab reloads THEN the key is still there, and sent
    open_page(page, keyed_server)
    assert page.input_value("#key") == API_KEY
    with page.expect_request(lambda request: request.url.startswith(f"{keyed_server}/predict")) as sent:
        page.set_input_files("#file", SAMPLE_JPEG)
    wait_for_run(page, 1)
    assert sent.value.headers["authorization"] == f"Bearer {API_KEY}"
    assert same_pixels(shown_result(page), predicted(server))
    # AND it is kept in this tab's session only: not in localStorage, not in a cookie, not in the URL
    assert page.evaluate("[localStorage.length, document.cookie, location.search]") == [0, "", ""]
    # AND another tab's session (a new browser context) starts without it
    other = new_context().new_page()
    open_page(other, keyed_server)
    assert other.input_value("#key") == ""
    # AND emptying the field forgets it
    page.fill("#key", "")
    page.dispatch_event("#key", "change")
    open_page(page, keyed_server)
    assert page.input_value("#key") == ""
