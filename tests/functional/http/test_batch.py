"""POST /predict/batch in-process: the zip and results.json against single /predict requests, limits, fairness."""

from __future__ import annotations

import asyncio
import io
import json
import threading
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from app.core.resources.budget import Estimate, Share
from app.core.settings import Settings
from app.http.work_queue import WorkQueue
from app.runtime import build_holder
from tests.support import encode, noise

T = TypeVar("T")
PNG = encode(noise(40, 30))
JPEG = encode(noise(50, 20, seed=1), "JPEG")
PSD = b"8BPS\x00\x01" + b"\x00" * 64
TRUNCATED = encode(noise(64, 64, seed=2), "JPEG")[:400]
LARGE = encode(noise(200, 200, seed=3))  # ~120 kB: one fits a 150 kB upload limit, two do not

# (name sent, bytes): good files, bad ones, and a name sent twice
FILES = [("cat.jpg", JPEG), ("cat.png", PNG), ("notes.txt", b"hello " * 20), ("layers.psd", PSD),
         ("empty.png", b""), ("broken.jpg", TRUNCATED), ("cat.jpg", PNG)]


def parts(files: list[tuple[str, bytes]]) -> list[tuple[str, tuple[str, bytes, str]]]:
    return [("files", (name, data, "application/octet-stream")) for name, data in files]


def unzip(body: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


@pytest.mark.parametrize(
    ("query", "names"),
    [
        ("", ["cat.jpg.png", "cat.png.png", "cat (2).jpg.png"]),
        ("output=mask", ["cat.jpg.mask.png", "cat.png.mask.png", "cat (2).jpg.mask.png"]),
        ("output=cutout&format=webp", ["cat.jpg.cutout.webp", "cat.png.cutout.webp", "cat (2).jpg.cutout.webp"]),
        ("format=jpeg&quality=70&alpha=0.8&color=00c8ff", ["cat.jpg.jpg", "cat.png.jpg", "cat (2).jpg.jpg"]),
        ("output=json", ["cat.jpg.json", "cat.png.json", "cat (2).jpg.json"]),
    ],
)
def test_the_zip_holds_what_single_requests_answer(make_client: Callable, query: str, names: list[str]) -> None:
    client = make_client()
    # GIVEN each file sent alone to POST /predict with the same options
    alone = [client.post(f"/predict?{query}", files={"file": (name, data)}) for name, data in FILES]
    numbers = [client.post("/predict?output=json", files={"file": (name, data)}) for name, data in FILES]
    # WHEN the files go in one batch
    response = client.post(f"/predict/batch?{query}", files=parts(FILES))
    # THEN a zip with the same bytes per good file, and results.json with every file's status, in order
    assert (response.status_code, response.headers["content-type"]) == (200, "application/zip")
    entries = unzip(response.content)
    good = [index for index, single in enumerate(alone) if single.status_code == 200]
    assert good == [0, 1, 6]
    assert sorted(entries) == sorted([*names, "results.json"])
    assert [entries[name] for name in names] == [alone[index].content for index in good]
    named = dict(zip(good, names, strict=True))
    expected = [expected_item(name, named.get(index), alone[index], numbers[index])
                for index, (name, _) in enumerate(FILES)]
    assert json.loads(entries["results.json"]) == expected


def expected_item(filename: str, result: str | None, single: Any, numbers: Any) -> dict[str, Any]:
    """What results.json says of a file, from what POST /predict answered for it alone."""
    if single.status_code != 200:
        return {"filename": filename, "result": None, "status": single.status_code, "detail": single.json()["detail"],
                "width": None, "height": None, "foreground_fraction": None}
    document = numbers.json()
    return {"filename": filename, "result": result, "status": 200, "detail": None, "width": document["width"],
            "height": document["height"], "foreground_fraction": document["foreground_fraction"]}


def test_statuses_are_those_each_file_gets_alone(make_client: Callable) -> None:
    response = make_client().post("/predict/batch", files=parts(FILES))
    statuses = [item["status"] for item in json.loads(unzip(response.content)["results.json"])]
    assert statuses == [200, 200, 400, 415, 400, 400, 200]


@pytest.mark.parametrize(
    ("files", "query", "settings", "status", "detail"),
    [
        ([], "", {}, 422, "files"),
        ([("a.png", PNG)] * 3, "", {"MAX_BATCH_FILES": 2}, 413,
         "3 files, over the limit of 2 per request (MAX_BATCH_FILES)"),
        ([("a.png", LARGE)] * 2, "", {"MAX_UPLOAD_BYTES": 150_000}, 413,
         "an upload may be at most 150000 bytes (MAX_UPLOAD_BYTES)"),  # the files share the body limit
        ([("a.png", PNG)] * 2, "", {"MAX_RESPONSE_BYTES": 4000}, 413, "the zip of results is"),
        ([("a.png", PNG)], "alpha=2", {}, 422, "alpha"),
    ],
    ids=["no-files", "too-many-files", "body-over-the-upload-limit", "zip-over-the-response-limit", "bad-option"],
)
def test_what_fails_the_whole_batch(make_client: Callable, files: list[tuple[str, bytes]], query: str,
                                    settings: dict[str, Any], status: int, detail: str) -> None:
    data = None if files else {"other": "x"}
    response = make_client(**settings).post(f"/predict/batch?{query}", files=parts(files) or None, data=data)
    assert response.status_code == status
    assert detail in json.dumps(response.json()["detail"])


def test_the_files_share_the_upload_limit(make_client: Callable) -> None:
    """MAX_UPLOAD_BYTES bounds the request body, as for /predict: one large file fits where two do not."""
    client = make_client(MAX_UPLOAD_BYTES=150_000)
    assert client.post("/predict/batch", files=parts([("a.png", LARGE)])).status_code == 200
    assert client.post("/predict/batch", files=parts([("a.png", LARGE)] * 2)).status_code == 413


def test_a_result_over_the_response_limit_fails_that_file_only(make_client: Callable) -> None:
    files = parts([("s.png", encode(noise(8, 8))), ("l.png", LARGE)])
    response = make_client(MAX_RESPONSE_BYTES=20_000).post("/predict/batch", files=files)
    items = json.loads(unzip(response.content)["results.json"])
    assert [(item["result"], item["status"]) for item in items] == [("s.png.png", 200), (None, 413)]
    assert items[1]["detail"].startswith("the result is ")


def test_a_bug_in_one_file_fails_that_file_only_and_is_logged(
    make_client: Callable, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN the second file's work raising what no handler expects (a bug, injected after the real work)
    import app.http.batch as batch

    checked: list[int] = []

    def check_then_fail_once(rendered: Any, settings: Settings) -> None:
        checked.append(1)
        if len(checked) == 2:
            raise RuntimeError("injected bug")

    monkeypatch.setattr(batch, "check_response_size", check_then_fail_once)
    # WHEN three files are sent THEN the batch answers, that file is a 500 and its traceback is logged
    response = make_client().post("/predict/batch", files=parts([("a.png", PNG), ("b.png", PNG), ("c.png", PNG)]))
    items = json.loads(unzip(response.content)["results.json"])
    assert response.status_code == 200
    assert [(item["filename"], item["status"]) for item in items] == [("a.png", 200), ("b.png", 500), ("c.png", 200)]
    [logged] = [record for record in caplog.records if record.getMessage() == "batch file failed"]
    assert (logged.batch_file, logged.exc_info[1].args) == ("b.png", ("injected bug",))


def test_no_model_is_503_for_the_batch(make_client: Callable, tmp_path: Path) -> None:
    missing = build_holder(Settings(MODEL_URI=str(tmp_path / "none.onnx")))
    response = make_client(holder=missing).post("/predict/batch", files=parts([("a.png", PNG)]))
    assert (response.status_code, response.headers["retry-after"]) == (503, "5")


class CountingQueue(WorkQueue):
    """A work queue that remembers the most jobs it ever held at once."""

    def __init__(self, workers: int, max_waiting: int) -> None:
        super().__init__(workers, max_waiting)
        self.most = 0

    async def run_holding(self, work: Callable[[], T], cost: Estimate | None = None) -> tuple[T, Share]:
        self.most = max(self.most, self.admitted + 1)
        return await super().run_holding(work, cost)


def test_a_batch_holds_one_worker_at_a_time(make_client: Callable) -> None:
    """So single requests interleave with a batch instead of waiting behind all its files."""
    queue = CountingQueue(workers=2, max_waiting=8)
    response = make_client(work_queue=queue).post("/predict/batch", files=parts([("a.png", PNG)] * 5))
    assert response.status_code == 200
    assert queue.most == 1


@pytest.fixture
def busy_queue() -> Iterator[WorkQueue]:
    """One worker, no waiting places, and the worker held by other work until the test ends."""
    queue, started, release = WorkQueue(workers=1, max_waiting=0), threading.Event(), threading.Event()

    def occupy() -> None:  # a private loop on its own thread (asyncio.run would reset that thread's loop)
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(queue.run(lambda: (started.set(), release.wait(10))))
        finally:
            loop.close()

    thread = threading.Thread(target=occupy)
    thread.start()
    assert started.wait(5)
    yield queue
    release.set()
    thread.join(5)


def test_a_file_that_finds_the_queue_full_gets_429(make_client: Callable, busy_queue: WorkQueue) -> None:
    response = make_client(work_queue=busy_queue).post("/predict/batch", files=parts([("a.png", PNG)] * 2))
    assert response.status_code == 200
    items = json.loads(unzip(response.content)["results.json"])
    assert [(item["status"], item["result"]) for item in items] == [(429, None), (429, None)]
    assert items[0]["detail"] == ("the server is busy: 1 requests are running or waiting already (1 workers, 0 "
                                  "places in the queue); retry this file shortly")


def test_openapi_describes_the_batch(make_client: Callable) -> None:
    spec = make_client().get("/openapi.json").json()
    operation = spec["paths"]["/predict/batch"]["post"]
    assert set(operation["responses"]) == {"200", "400", "401", "413", "422", "503"}  # 401: with API_KEYS
    assert operation["responses"]["503"]["headers"]["Retry-After"]["required"] is True
    assert set(operation["responses"]["200"]["content"]) == {"application/zip"}
    assert "results.json" in operation["responses"]["200"]["description"]
    assert [p["name"] for p in operation["parameters"]] == ["threshold", "alpha", "color", "output", "format",
                                                            "quality"]
    body = operation["requestBody"]["content"]["multipart/form-data"]["schema"]["$ref"].rpartition("/")[2]
    files = spec["components"]["schemas"][body]["properties"]["files"]
    assert files["type"] == "array" and spec["components"]["schemas"][body]["required"] == ["files"]
    assert files["minItems"] == 1  # make api-fuzz: an empty batch is a 422, so the schema says so
