"""Files over the direct limit, in Chromium: through the upload flow (the page POSTs the file to moto's S3 from the
browser, the upload function runs in-process on the S3 event, the page polls for the result), or refused in words
before anything is sent when the server has no upload bucket.

moto's S3 server and CORS (moto 5.2.5, found by trying): the bucket's CORS rules answer browsers' preflight
OPTIONS requests only (an origin no rule admits gets 403; the methods of every rule are merged, the last one
winning), while every other response echoes any Origin back whatever the rules say (moto's global CORS;
MOTO_DISABLE_GLOBAL_CORS would leave the form POST with no CORS headers at all). So these tests put the template's
rules on the bucket, and a page the rules admit gets its preflight through; that S3 itself admits the page's
requests under those rules is tested on the rules themselves (tests/deploy/test_template.py).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote_plus

import numpy as np
import pytest
from playwright.sync_api import Page, Response

from scripts.invoke import LambdaContext
from scripts.local_s3 import local_aws_env
from tests.integration.browser.ui import open_page, predicted, same_pixels, shown_result, wait_for_run
from tests.servers import make_serve
from tests.support import BUCKET, SAMPLE_JPEG, load_event, template_cors_rules

pytestmark = pytest.mark.slow
DIRECT_LIMIT = 10_000  # MAX_UPLOAD_BYTES of these tests' servers: the 21,210-byte sample is over it
# The page's own pollResult with the clock and the network stood in for: every GET /results answers 202 (pending),
# each wait of its back-off passes at once, so its five minutes take a few milliseconds.
POLL_WHILE_PENDING = """async () => {
  let now = 0;
  const polled = [], waits = [];
  Date.now = () => now;
  window.fetch = async (url) => { polled.push([now, url]); return new Response("{}", {status: 202}); };
  window.sleep = async (ms) => { waits.push(ms); now += ms; };
  try {
    await pollResult("abc", new AbortController().signal);
    return {polled, waits, error: null};
  } catch (error) {
    return {polled, waits, error: error.message};
  }
}"""
UPLOAD_LAPS = ["sign (POST /uploads)", "upload to storage", "processing (polling GET /results)", "download"]
API_KEY = "upload-test-key"


@pytest.fixture(scope="module")
def upload_server(moto_endpoint: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`make serve` with a small direct limit and the upload flow on, into moto's bucket."""
    env = {**local_aws_env(moto_endpoint), "UPLOAD_BUCKET": BUCKET, "MAX_UPLOAD_BYTES": str(DIRECT_LIMIT)}
    with make_serve(env, tmp_path_factory.mktemp("upload-server") / "server.log") as url:
        yield url


@pytest.fixture(scope="module")
def keyed_upload_server(moto_endpoint: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The same with API keys: POST /uploads and GET /results need one, and a result answers only its uploader."""
    env = {**local_aws_env(moto_endpoint), "UPLOAD_BUCKET": BUCKET, "MAX_UPLOAD_BYTES": str(DIRECT_LIMIT),
           "API_KEYS": API_KEY}
    with make_serve(env, tmp_path_factory.mktemp("keyed-upload-server") / "server.log") as url:
        yield url


@pytest.fixture(scope="module")
def bucketless_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`make serve` with the same small direct limit and no upload flow."""
    with make_serve({"MAX_UPLOAD_BYTES": str(DIRECT_LIMIT)}, tmp_path_factory.mktemp("small") / "log") as url:
        yield url


@pytest.fixture
def deliver(s3: Any) -> Callable[[], dict[str, Any]]:
    """``deliver()``: the S3 event for the one upload in the bucket, through app.lambda_upload.handler, as S3 would
    invoke the upload function once the browser's POST has stored it."""
    from app.lambda_upload import handler

    def invoke() -> dict[str, Any]:
        [upload] = s3.list_objects_v2(Bucket=BUCKET, Prefix="uploads/")["Contents"]
        event = load_event("s3_put_upload.json")
        event["Records"][0]["s3"]["object"]["key"] = quote_plus(upload["Key"])
        return handler(event, LambdaContext())  # type: ignore[no-any-return]

    return invoke


def requests_made(page: Page) -> list[str]:
    """Every request the page makes from now on, as "METHOD url"."""
    made: list[str] = []
    page.on("request", lambda request: made.append(f"{request.method} {request.url}"))
    return made


def to_storage(moto_endpoint: str) -> Callable[[Response], bool]:
    return lambda response: response.url.startswith(moto_endpoint) and response.request.method == "POST"


def test_a_file_over_the_direct_limit_goes_through_the_upload_flow(
    page: Page, upload_server: str, server: str, moto_endpoint: str, s3: Any, deliver: Callable, shot: Callable
) -> None:
    # GIVEN the bucket with the template's CORS rules, and a page that knows the server's limits
    s3.put_bucket_cors(Bucket=BUCKET, CORSConfiguration={"CORSRules": template_cors_rules()})
    open_page(page, upload_server)
    made = requests_made(page)
    assert "larger files, up to 50.0 MB, go through the upload flow" in page.inner_text("#limits")
    # WHEN a person chooses a file over the direct limit THEN the browser posts it straight to S3, with progress
    with page.expect_response(to_storage(moto_endpoint)) as stored:
        page.set_input_files("#file", SAMPLE_JPEG)
    assert stored.value.status == 204
    page.wait_for_selector("#status:text('waiting for its result')")
    assert page.eval_on_selector("#progress", "bar => [bar.value, bar.max, bar.hidden]") == [1, 1, False]
    assert page.get_attribute("#result-panel", "aria-busy") == "true"  # the busy state, until the result comes
    shot("8-upload-waiting")
    # AND once the upload function has run on the S3 event, the page's polling finds the result
    [record] = deliver()["records"]
    assert record["status"] == "processed"
    wait_for_run(page, 1)
    shot("9-upload-done")
    assert same_pixels(shown_result(page), predicted(server))  # what /predict gives where the file fits
    assert page.locator("#timings tbody th").all_inner_texts() == UPLOAD_LAPS
    assert page.get_attribute("#download", "download") == "blobs.overlay.png"
    assert not [request for request in made if request.startswith(f"POST {upload_server}/predict")]


def test_with_api_keys_the_key_goes_to_the_api_and_never_to_storage(
    page: Page, keyed_upload_server: str, server: str, moto_endpoint: str, s3: Any, deliver: Callable
) -> None:
    s3.put_bucket_cors(Bucket=BUCKET, CORSConfiguration={"CORSRules": template_cors_rules()})
    open_page(page, keyed_upload_server)
    page.fill("#key", API_KEY)
    page.dispatch_event("#key", "change")
    sent: list[tuple[str, str, str | None]] = []  # (method, url, Authorization) of every request from now on
    page.on("request", lambda request: sent.append((request.method, request.url, request.headers.get("authorization"))))
    # WHEN a file over the direct limit goes through the upload flow of a server that asks for a key
    with page.expect_response(to_storage(moto_endpoint)) as stored:
        page.set_input_files("#file", SAMPLE_JPEG)
    assert stored.value.status == 204
    page.wait_for_selector("#status:text('waiting for its result')")
    deliver()
    wait_for_run(page, 1)
    # THEN the result is the one /predict gives (GET /results answers only the key that uploaded it)
    assert same_pixels(shown_result(page), predicted(server))
    # AND the API's calls carried the key, storage's did not (a presigned POST or GET carries its own signature)
    to_api = {(method, re.sub(r"/results/\w+$", "/results/{id}", url.removeprefix(keyed_upload_server)), key)
              for method, url, key in sent if url.startswith(keyed_upload_server)}
    assert to_api == {("POST", "/uploads", f"Bearer {API_KEY}"), ("GET", "/results/{id}", f"Bearer {API_KEY}")}
    to_storage_calls = [(method, key) for method, url, key in sent if url.startswith(moto_endpoint)]
    assert {method for method, _ in to_storage_calls} >= {"POST", "GET"}  # the file in, the result out
    assert {key for _, key in to_storage_calls} == {None}


def test_polling_backs_off_to_every_4_s_and_gives_up_after_5_minutes(page: Page, server: str) -> None:
    open_page(page, server)
    run = page.evaluate(POLL_WHILE_PENDING)
    waits, polled = run["waits"], run["polled"]
    # 0.5 s first, x1.5 each time up to 4 s, then every 4 s: never faster, never slower
    assert waits[:7] == [500, 750, 1125, 1687.5, 2531.25, 3796.875, 4000] and set(waits[6:]) == {4000}
    # each poll followed by one wait, until five minutes have gone; then the page says so, in words
    assert [url for _, url in polled] == ["results/abc"] * len(waits)
    assert sum(waits[:-1]) < 5 * 60 * 1000 <= sum(waits)
    assert [at for at, _ in polled][1:] == list(np.cumsum(waits[:-1]))
    assert run["error"] == "No result after 5 minutes; it may still come: GET results/abc."
    assert len(polled) == 79  # 10.4 s of growing waits, then 4 s apart: about 80 calls, not 600 at 0.5 s


def test_a_file_the_upload_function_rejects_shows_its_reason(
    page: Page, upload_server: str, moto_endpoint: str, s3: Any, deliver: Callable
) -> None:
    s3.put_bucket_cors(Bucket=BUCKET, CORSConfiguration={"CORSRules": template_cors_rules()})
    open_page(page, upload_server)
    with page.expect_response(to_storage(moto_endpoint)):
        page.set_input_files("#file", files=[{"name": "big.jpg", "mimeType": "image/jpeg",
                                              "buffer": b"not a JPEG " * 2000}])
    page.wait_for_selector("#status:text('waiting for its result')")
    [record] = deliver()["records"]
    wait_for_run(page, 1, "error")
    assert record["status"] == "rejected"
    assert page.inner_text("#error").startswith("The image was rejected: the file is not a recognised image")


def test_an_origin_the_bucket_does_not_admit_is_told_so(
    page: Page, upload_server: str, moto_endpoint: str, s3: Any, shot: Callable
) -> None:
    # GIVEN UploadCorsOrigins set to another site: the browser's preflight for the POST is refused
    s3.put_bucket_cors(Bucket=BUCKET, CORSConfiguration={"CORSRules": template_cors_rules(["https://app.example"])})
    open_page(page, upload_server)
    page.set_input_files("#file", SAMPLE_JPEG)
    wait_for_run(page, 1, "error")
    shot("10-upload-cors-refused")
    assert "the bucket's CORS rules (UploadCorsOrigins) do not admit this page's origin" in page.inner_text("#error")
    assert "Contents" not in s3.list_objects_v2(Bucket=BUCKET, Prefix="uploads/")  # nothing was stored


def test_without_an_upload_bucket_a_large_file_is_refused_before_sending(
    page: Page, bucketless_server: str, shot: Callable
) -> None:
    open_page(page, bucketless_server)
    made = requests_made(page)
    assert "this server's upload flow for larger files is off (UPLOAD_BUCKET is not set)" in page.inner_text("#limits")
    page.set_input_files("#file", SAMPLE_JPEG)
    wait_for_run(page, 1, "error")
    shot("11-too-large")
    assert page.inner_text("#error") == (
        "blobs.jpg is 21.2 kB: over the 10.0 kB this server takes in one request (MAX_UPLOAD_BYTES), and its upload "
        "flow for larger files is off (UPLOAD_BUCKET is not set). Send a smaller or more compressed image (JPEG or "
        "WebP). Nothing was sent.")
    assert [request for request in made if not request.startswith("GET blob:")] == []
