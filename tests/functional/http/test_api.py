"""The HTTP API in-process: routes, status codes, options, limits, overload, docs and logs."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageOps

from app.core.inference.holder import ModelHolder
from app.core.settings import Settings
from app.http.work_queue import WorkQueue
from app.runtime import build_holder
from model.export import set_metadata
from tests.support import encode, expected_overlay, noise


def png(width: int = 40, height: int = 30) -> bytes:
    return encode(noise(width, height))


def upload(data: bytes, name: str = "image.png", content_type: str | None = "image/png") -> dict[str, Any]:
    return {"file": (name, data, content_type) if content_type else (name, data)}


def test_root_answers_exactly_as_the_seed_service(make_client: Callable) -> None:
    response = make_client().get("/")
    assert (response.status_code, response.json()) == (200, {"message": "UNet API is running!"})


# --- POST /predict: status codes -----------------------------------------------------------

PSD = b"8BPS\x00\x01" + b"\x00" * 64
TRUNCATED_JPEG = encode(noise(64, 64), "JPEG")[:400]

# id: (multipart files, form fields, query, settings overrides, status, phrase in detail)
STATUS_CASES: dict[str, tuple[Any, Any, str, dict[str, Any], int, str]] = {
    "png": (upload(png()), None, "", {}, 200, ""),
    "jpeg": (upload(encode(noise(50, 20), "JPEG"), "a.jpg", "image/jpeg"), None, "", {}, 200, ""),
    "label-ignored-bytes-decide": (upload(png(), "a.txt", "text/plain"), None, "", {}, 200, ""),
    "no-content-type": (upload(png(), "blob", None), None, "", {}, 200, ""),
    "empty-file": (upload(b""), None, "", {}, 400, "the file is empty"),
    "corrupt-png": (upload(b"\x89PNG\r\n\x1a\n" + b"\x00" * 50), None, "", {}, 400, "looks like PNG"),
    "truncated-jpeg": (upload(TRUNCATED_JPEG, "a.jpg", "image/jpeg"), None, "", {}, 400, "could not be decoded"),
    "text": (upload(b"hello " * 20, "a.txt", "text/plain"), None, "", {}, 400, "not a recognised image"),
    "psd": (upload(PSD, "a.psd", "image/vnd.adobe.photoshop"), None, "", {}, 415, "PSD images are not accepted"),
    "svg": (upload(b"<svg xmlns='http://www.w3.org/2000/svg'/>", "a.svg", "image/svg+xml"), None, "", {}, 415,
            "SVG/XML images are not accepted"),
    "too-many-bytes": (upload(png()), None, "", {"MAX_UPLOAD_BYTES": 1000}, 413, "1000-byte limit"),
    "too-many-pixels": (upload(png(40, 30)), None, "", {"MAX_PIXELS": 1199}, 413, "1199-pixel limit"),
    "result-over-response-cap": (upload(png()), None, "", {"MAX_RESPONSE_BYTES": 100}, 413, "response limit"),
    "no-file-field": (None, {"other": "x"}, "", {}, 422, "file"),
    "wrong-field-name": ({"image": ("a.png", png(), "image/png")}, None, "", {}, 422, "file"),
    "file-sent-as-text": (None, {"file": "not a file"}, "", {}, 422, "file"),
    "threshold-0.5": (upload(png()), None, "threshold=0.5", {}, 200, ""),
    "threshold-0": (upload(png()), None, "threshold=0", {}, 422, "threshold"),
    "threshold-1": (upload(png()), None, "threshold=1", {}, 422, "threshold"),
    "threshold-text": (upload(png()), None, "threshold=high", {}, 422, "threshold"),
    "alpha-0": (upload(png()), None, "alpha=0", {}, 200, ""),
    "alpha-1": (upload(png()), None, "alpha=1", {}, 200, ""),
    "alpha-negative": (upload(png()), None, "alpha=-0.1", {}, 422, "alpha"),
    "alpha-over-1": (upload(png()), None, "alpha=1.01", {}, 422, "alpha"),
    "color-hex": (upload(png()), None, "color=00ff00", {}, 200, ""),
    "color-hash-hex": (upload(png()), None, "color=%23ff0000", {}, 200, ""),
    "color-triple": (upload(png()), None, "color=1,2,3", {}, 200, ""),
    "color-name": (upload(png()), None, "color=red", {}, 422, "color"),
    "color-out-of-range": (upload(png()), None, "color=256,0,0", {}, 422, "color"),
    "color-short-hex": (upload(png()), None, "color=%23fff", {}, 422, "color"),
    "output-mask": (upload(png()), None, "output=mask", {}, 200, ""),
    "output-unknown": (upload(png()), None, "output=jpeg", {}, 422, "output"),
}


@pytest.mark.parametrize(("files", "data", "query", "settings", "status", "phrase"), STATUS_CASES.values(),
                         ids=STATUS_CASES.keys())
def test_predict_status_codes(make_client: Callable, files: Any, data: Any, query: str, settings: dict[str, Any],
                              status: int, phrase: str) -> None:
    response = make_client(**settings).post(f"/predict?{query}", files=files, data=data)
    assert response.status_code == status, response.text
    if status == 200:
        assert response.headers["content-type"] == "image/png"
        assert Image.open(io.BytesIO(response.content)).format == "PNG"
    elif status == 422:  # FastAPI's validation shape: detail lists each bad field with its location
        assert any(phrase in item["loc"] for item in response.json()["detail"])
    else:
        assert phrase in response.json()["detail"]


def test_model_not_loaded_gives_503_with_retry_after(make_client: Callable, tmp_path: Path) -> None:
    missing = build_holder(Settings(MODEL_URI=str(tmp_path / "none.onnx"), MODEL_RETRY_SECONDS=7))
    response = make_client(holder=missing).post("/predict", files=upload(png()))
    assert response.status_code == 503
    assert response.headers["retry-after"] == "7"
    assert "none.onnx" in response.json()["detail"]


class BrokenHolder(ModelHolder):
    def get(self) -> Any:
        raise RuntimeError("a bug")


def test_a_bug_is_a_json_500_not_a_crash(make_client: Callable) -> None:
    broken = BrokenHolder(lambda: None, retry_seconds=5)  # type: ignore[arg-type, return-value]
    response = make_client(holder=broken, raise_server_exceptions=False).post("/predict", files=upload(png()))
    assert response.status_code == 500
    assert response.json() == {"detail": "internal server error: it has been logged; retry, or report it"}


# --- what comes back ---------------------------------------------------------------------------


def test_overlay_keeps_size_and_tints_exactly_the_mask(make_client: Callable) -> None:
    # GIVEN an odd-sized image; WHEN asked for the mask, then for a solid and a half overlay
    client, image = make_client(), noise(57, 31, seed=4)
    data = encode(image)

    def post(query: str) -> np.ndarray:
        response = client.post(f"/predict?{query}", files=upload(data))
        assert response.status_code == 200
        return np.asarray(Image.open(io.BytesIO(response.content)))

    mask = post("output=mask")
    half = post("alpha=0.5&color=0,0,255")
    # THEN the mask is 0/255 at the image's size, and the overlay tints exactly the masked pixels
    assert mask.shape == (31, 57) and set(np.unique(mask)) <= {0, 255}
    foreground, original = mask == 255, np.asarray(image)
    assert np.array_equal(half[~foreground], original[~foreground])
    expected = np.floor(0.5 * original[foreground] + 0.5 * np.array([0, 0, 255]) + 0.5).astype(np.uint8)
    assert np.array_equal(half[foreground], expected)


def test_default_overlay_uses_the_configured_colour_and_alpha(make_client: Callable) -> None:
    # GIVEN a threshold so low that everything is foreground
    data = encode(Image.new("RGB", (8, 6), (100, 100, 100)))
    response = make_client(OVERLAY_COLOR="0,0,0", OVERLAY_ALPHA=1.0).post("/predict?threshold=1e-30",
                                                                            files=upload(data))
    assert np.all(np.asarray(Image.open(io.BytesIO(response.content))) == 0)


# id: (query, the colour and alpha the overlay must be drawn with); the mask is the same request's output=mask
OVERLAY_OPTIONS = {
    "defaults": ("", (255, 59, 48), 0.5),
    "alpha-0-leaves-the-image": ("alpha=0", (255, 59, 48), 0.0),
    "alpha-1-paints-solid": ("alpha=1", (255, 59, 48), 1.0),
    "alpha-0.3": ("alpha=0.3", (255, 59, 48), 0.3),
    "color-hex": ("color=00ff00", (0, 255, 0), 0.5),
    "color-hash-hex": ("color=%23123456", (0x12, 0x34, 0x56), 0.5),
    "color-triple-and-alpha": ("color=1,2,3&alpha=0.8", (1, 2, 3), 0.8),
}


@pytest.mark.parametrize(("query", "color", "alpha"), OVERLAY_OPTIONS.values(), ids=OVERLAY_OPTIONS)
def test_each_overlay_option_changes_exactly_the_pixels_it_should(
    make_client: Callable, query: str, color: tuple[int, int, int], alpha: float
) -> None:
    # GIVEN random pixels (every channel value occurs) at a threshold that gives both classes
    client, image = make_client(), noise(57, 31, seed=8)
    data = upload(encode(image))
    mask = np.asarray(Image.open(io.BytesIO(client.post("/predict?output=mask&threshold=0.5", files=data).content)))
    assert 0 < np.count_nonzero(mask) < mask.size
    # WHEN the overlay is asked for with these options THEN the documented formula, pixel for pixel
    response = client.post(f"/predict?threshold=0.5&{query}", files=data)
    overlay = np.asarray(Image.open(io.BytesIO(response.content)))
    np.testing.assert_array_equal(overlay, expected_overlay(np.asarray(image), mask == 255, color, alpha))


@pytest.mark.parametrize("orientation", range(1, 9))
def test_results_are_upright_pixel_for_pixel(make_client: Callable, orientation: int) -> None:
    """alpha=0 returns the decoded image itself: it must be Pillow's own EXIF-transposed decode of the same
    bytes, so orientation 6 (rotate 270) and 8 (rotate 90), and every mirror, are told apart."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = encode(noise(40, 20, seed=orientation), "JPEG", exif=exif.tobytes())
    response = make_client().post("/predict?alpha=0", files=upload(data, "a.jpg", "image/jpeg"))
    with Image.open(io.BytesIO(data)) as original:
        upright = ImageOps.exif_transpose(original)
        expected = np.asarray(upright.convert("RGB"))
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(response.content))), expected)


@pytest.mark.parametrize(("orientation", "size"), [(1, (40, 20)), (6, (20, 40)), (8, (20, 40)), (3, (40, 20))])
def test_results_follow_the_exif_orientation(make_client: Callable, orientation: int, size: tuple) -> None:
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = encode(noise(40, 20), "JPEG", exif=exif.tobytes())
    for query in ("", "output=mask"):
        response = make_client().post(f"/predict?{query}", files=upload(data, "a.jpg", "image/jpeg"))
        assert Image.open(io.BytesIO(response.content)).size == size


def test_server_timing_names_every_stage(make_client: Callable) -> None:
    response = make_client().post("/predict", files=upload(png()))
    stages = [part.split(";")[0] for part in response.headers["server-timing"].split(", ")]
    assert stages == ["wait", "decode", "resize", "infer", "upsample", "blend", "encode"]


# --- limits before parsing, overload -----------------------------------------------------------


def test_declared_body_over_the_limit_is_refused_unread(make_client: Callable) -> None:
    # GIVEN the default limit (4.4 MB of file + multipart overhead) and a 5 MB upload
    response = make_client().post("/predict", files=upload(b"\x00" * 5_000_000))
    assert response.status_code == 413
    assert "request body is" in response.json()["detail"]


@pytest.mark.parametrize("limit", [4_400_000, 1_000_000])
def test_the_body_limit_message_states_the_configured_limit(make_client: Callable, limit: int) -> None:
    # GIVEN a 5.86 MB upload (the newcomer's photo); THEN the message names MAX_UPLOAD_BYTES as configured
    response = make_client(MAX_UPLOAD_BYTES=limit).post("/predict", files=upload(b"\x00" * 5_860_000))
    assert response.status_code == 413
    assert f"an upload may be at most {limit} bytes (MAX_UPLOAD_BYTES)" in response.json()["detail"]


def test_streamed_body_over_the_limit_is_cut_off(make_client: Callable) -> None:
    # GIVEN a chunked upload (no Content-Length) that keeps going past the limit
    def chunks() -> Iterator[bytes]:
        yield b"--xyz\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.png\"\r\n\r\n"
        for _ in range(100):
            yield b"\x00" * 65536

    response = make_client().post(
        "/predict", content=chunks(), headers={"content-type": "multipart/form-data; boundary=xyz"}
    )
    assert response.status_code == 413
    assert "an upload may be at most 4400000 bytes (MAX_UPLOAD_BYTES)" in response.json()["detail"]


def test_full_queue_gives_429_at_once(make_client: Callable) -> None:
    # GIVEN one worker, no queue places, and the worker held by other work
    queue, started, release = WorkQueue(workers=1, max_waiting=0), threading.Event(), threading.Event()

    def hold() -> None:
        started.set()
        release.wait(10)

    def occupy() -> None:  # a private loop on its own thread (asyncio.run would reset that thread's loop)
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(queue.run(hold))
        finally:
            loop.close()

    holder_thread = threading.Thread(target=occupy)
    holder_thread.start()
    try:
        assert started.wait(5)
        # WHEN a request arrives THEN 429 with Retry-After, not a wait
        response = make_client(work_queue=queue).post("/predict", files=upload(png()))
        assert response.status_code == 429
        assert response.headers["retry-after"] == "1"
        assert "busy" in response.json()["detail"]
    finally:
        release.set()
        holder_thread.join(5)
    # AND once the worker is free, requests are served again
    assert make_client(work_queue=queue).post("/predict", files=upload(png())).status_code == 200


# --- health, docs, logs --------------------------------------------------------------------------


def test_health_reports_the_loaded_model(make_client: Callable, tiny_model_path: Path) -> None:
    import hashlib

    body = make_client().get("/health").json()
    assert body == {
        "status": "ready",
        "model": {"name": "tiny-test-unet", "version": "0.0.1",
                  "sha256": hashlib.sha256(tiny_model_path.read_bytes()).hexdigest(),
                  "input_height": 64, "input_width": 64, "channel_order": "RGB", "scale": 1 / 255,
                  "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225], "threshold": 0.5, "metrics": {}},
        "provider": "CPUExecutionProvider",
        "detail": None,
        "defaults": {"output": "overlay", "format": "png", "quality": None, "color": "#ff3b30", "alpha": 0.5,
                     "threshold": 0.5},
        "limits": {"predict": {"max_bytes": 4_400_000, "max_pixels": 50_000_000}, "uploads": None},
        "api_keys": False,
    }


@pytest.mark.parametrize(
    ("metrics", "expected"),
    [
        # model.export's checkpoint figures, unlabelled: the validation split's
        ({"iou": 0.9, "dice": 0.95}, {"validation": {"iou": 0.9, "dice": 0.95}}),
        # the bundled person model's: per split, at the photos' own size
        ({"val": {"iou": 0.93}, "test": {"iou": 0.94, "images": 80}},
         {"val": {"iou": 0.93}, "test": {"iou": 0.94, "images": 80.0}}),
        ({}, {}),
    ],
)
def test_health_labels_each_metric_with_its_split(
    make_client: Callable, tiny_model_path: Path, tmp_path: Path, metrics: dict[str, Any], expected: dict[str, Any]
) -> None:
    # GIVEN a model whose file carries these metrics
    model = tmp_path / "model.onnx"
    shutil.copyfile(tiny_model_path, model)
    set_metadata(model, {"metrics": json.dumps(metrics)})
    client = make_client(holder=build_holder(Settings(MODEL_URI=str(model))))
    # THEN /health shows them labelled by split
    assert client.get("/health").json()["model"]["metrics"] == expected


def test_health_is_503_while_the_model_is_unavailable(make_client: Callable, tmp_path: Path) -> None:
    missing = build_holder(Settings(MODEL_URI=str(tmp_path / "none.onnx")))
    response = make_client(holder=missing).get("/health")
    assert response.status_code == 503
    assert response.json()["status"] == "unavailable"
    assert "no model file at" in response.json()["detail"]
    assert response.headers["retry-after"] == "5"


def test_openapi_documents_the_png_response_options_and_errors(make_client: Callable) -> None:
    client = make_client()
    operation = client.get("/openapi.json").json()["paths"]["/predict"]["post"]
    content = operation["responses"]["200"]["content"]
    assert set(content) == {"image/png", "image/jpeg", "image/webp", "application/json"}
    assert content["application/json"]["schema"] == {"$ref": "#/components/schemas/ResultDocument"}
    assert set(operation["responses"]) == {"200", "400", "401", "413", "415", "422", "429", "503"}
    assert [p["name"] for p in operation["parameters"]] == ["threshold", "alpha", "color", "output", "format",
                                                            "quality"]
    assert all(p["in"] == "query" and p["description"] for p in operation["parameters"])
    assert client.get("/docs").status_code == 200


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def app_log() -> Iterator[list[logging.LogRecord]]:
    handler, logger = Records(), logging.getLogger("app")
    level = logger.level
    logger.setLevel(logging.INFO)  # as configure_logging sets it (LOG_LEVEL default); setLevel clears the cache
    logger.addHandler(handler)
    yield handler.records
    logger.removeHandler(handler)
    logger.setLevel(level)


def test_each_prediction_logs_sizes_and_stage_timings_but_never_bytes(
    make_client: Callable, app_log: list[logging.LogRecord]
) -> None:
    assert make_client().post("/predict?alpha=0.3", files=upload(png(40, 30))).status_code == 200
    (record,) = [r for r in app_log if r.getMessage() == "prediction"]
    fields = vars(record)
    assert (fields["width"], fields["height"], fields["options"]["alpha"]) == (40, 30, 0.3)
    assert set(fields["timings_ms"]) == {"wait", "decode", "resize", "infer", "upsample", "blend", "encode"}
    assert not any(isinstance(value, bytes | bytearray) for value in fields.values())


def test_rejections_are_logged_with_their_status(make_client: Callable, app_log: list[logging.LogRecord]) -> None:
    make_client().post("/predict", files=upload(PSD))
    (record,) = [r for r in app_log if r.getMessage() == "image rejected"]
    assert vars(record)["status"] == 415
