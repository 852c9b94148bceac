"""The memory budget over the real app: 413 for an image that could never fit, a wait for one that does not fit
yet, 429 once the queue is full; the budget's own arithmetic is in tests/unit/core/test_budget.py."""

from __future__ import annotations

import asyncio
import io
import json
import threading
import zipfile
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from PIL import Image
from starlette.testclient import TestClient

from app.core.decoding.imaging import Header
from app.core.resources import budget
from app.core.resources.budget import Estimate, MemoryBudget
from app.http.work_queue import WorkQueue
from tests.support import encode, noise

MB = 1_000_000
SMALL = encode(noise(40, 30))  # 1200 px of PNG: 1200 x 6.00 + 24 MB = 24.007 MB
LARGE = encode(Image.new("RGB", (1000, 1000), (20, 90, 160)))  # a small file declaring 1 MP: 6.00 + 24 = 30 MB
CAPACITY = 25 * MB  # SMALL fits, LARGE never does
LARGE_REFUSED = ("the image is 1000x1000 = 1000000 pixels of PNG, which needs about 30 MB to process, more than the "
                 "25 MB this server's memory budget (MEMORY_BUDGET_MB=600) leaves for requests: send an image of at "
                 "most 166666 pixels in this format, or a smaller one")


def upload(data: bytes) -> dict[str, Any]:
    return {"file": ("image.png", data, "image/png")}


def until(condition: Callable[[], bool], deadline_s: float = 10.0) -> None:
    """Waits for ``condition()``, failing (not hanging) after ``deadline_s``."""
    done = threading.Event()
    for _ in range(int(deadline_s / 0.005)):
        if condition():
            return
        done.wait(0.005)
    raise AssertionError("the condition did not hold in time")


class Holder:
    """``megabytes`` of the queue's budget held by work on a worker until ``release()`` (10 s at most)."""

    def __init__(self, queue: WorkQueue, megabytes: int) -> None:
        self.queue, self.started, self.opened = queue, threading.Event(), threading.Event()
        share = Estimate(Header("PNG", 1, 1), "PNG", megabytes * MB)
        self.thread = threading.Thread(target=self._occupy, args=(share,))
        self.thread.start()
        assert self.started.wait(5)

    def _occupy(self, share: Estimate) -> None:  # a private loop on its own thread, as a second client's request
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(self.queue.run(lambda: (self.started.set(), self.opened.wait(10)), share))
        finally:
            loop.close()

    def release(self) -> None:
        self.opened.set()
        self.thread.join(10)


class InFlight:
    """A POST /predict sent from its own thread, so the test can look at the queue while it waits."""

    def __init__(self, client: TestClient, data: bytes) -> None:
        self.response: Any = None
        self.thread = threading.Thread(target=self._send, args=(client, data))
        self.thread.start()

    def _send(self, client: TestClient, data: bytes) -> None:
        self.response = client.post("/predict", files=upload(data))

    def result(self) -> Any:
        self.thread.join(30)
        assert not self.thread.is_alive(), "the request was never answered"
        return self.response


@pytest.fixture
def budgeted() -> Iterator[WorkQueue]:
    queue = WorkQueue(workers=2, max_waiting=1, memory=MemoryBudget(CAPACITY, budget_mb=600))
    yield queue
    queue.close()


def test_an_image_that_could_never_fit_gets_413_and_takes_nothing(make_client: Callable,
                                                                   budgeted: WorkQueue) -> None:
    client = make_client(work_queue=budgeted)
    response = client.post("/predict", files=upload(LARGE))
    assert (response.status_code, response.json()) == (413, {"detail": LARGE_REFUSED})
    assert (budgeted.admitted, budgeted.memory.reserved) == (0, 0)
    assert client.post("/predict", files=upload(SMALL)).status_code == 200  # a smaller image is served


def test_a_batch_file_that_could_never_fit_gets_413_the_others_are_served(make_client: Callable,
                                                                          budgeted: WorkQueue) -> None:
    files = [("files", ("large.png", LARGE, "image/png")), ("files", ("small.png", SMALL, "image/png"))]
    response = make_client(work_queue=budgeted).post("/predict/batch", files=files)
    assert response.status_code == 200
    items = json.loads(zipfile.ZipFile(io.BytesIO(response.content)).read("results.json"))
    assert [(item["status"], item["result"], item["detail"]) for item in items] == [
        (413, None, LARGE_REFUSED), (200, "small.png.png", None)]


def test_a_request_that_does_not_fit_yet_waits_then_is_served(make_client: Callable, budgeted: WorkQueue) -> None:
    # GIVEN 10 of the 25 MB held by running work, a worker free
    holder = Holder(budgeted, 10)
    try:
        # WHEN a request needing 24 MB arrives THEN it waits for memory, not for a worker
        waiting = InFlight(make_client(work_queue=budgeted), SMALL)
        until(lambda: budgeted.memory.waiting == 1)
        assert (waiting.response, budgeted.admitted, budgeted.memory.reserved) == (None, 2, 10 * MB)
    finally:
        holder.release()
    # AND once the share is released it is served
    response = waiting.result()
    assert (response.status_code, response.headers["content-type"]) == (200, "image/png")
    assert (budgeted.admitted, budgeted.memory.reserved, budgeted.memory.waiting) == (0, 0, 0)


def test_429_when_the_queue_is_full_of_requests_waiting_for_memory(make_client: Callable) -> None:
    # GIVEN 2 workers, 1 queue place: one request running (10 MB), two waiting for memory, a worker free
    queue = WorkQueue(workers=2, max_waiting=1, memory=MemoryBudget(CAPACITY))
    holder = Holder(queue, 10)
    client = make_client(work_queue=queue)
    try:
        waiting = [InFlight(client, SMALL), InFlight(client, SMALL)]
        until(lambda: queue.memory is not None and queue.memory.waiting == 2)
        # WHEN one more arrives THEN 429 at once, with Retry-After, in the API's JSON shape
        refused = client.post("/predict", files=upload(SMALL))
        assert (refused.status_code, refused.headers["retry-after"]) == (429, "1")
        assert refused.json() == {"detail": "the server is busy: 3 requests are running or waiting already "
                                            "(2 workers, 1 places in the queue); retry shortly"}
    finally:
        holder.release()
    # AND those that waited are served, one after the other (24 + 24 MB is over 25)
    assert [request.result().status_code for request in waiting] == [200, 200]
    assert (queue.admitted, queue.memory.reserved) == (0, 0)


def test_memory_budget_mb_sets_the_budget_of_the_app(make_client: Callable, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a server holding 100 MB at start: 300 - 100 - 70 (one worker's inference) = 130 MB for requests
    monkeypatch.setattr(budget, "resident_bytes", lambda: 100 * MB)
    client = make_client(MEMORY_BUDGET_MB=300, MAX_CONCURRENCY=1)
    # WHEN a 20 MP PNG is sent (20e6 x 6.00 + 24 MB = 144 MB) THEN 413 naming the setting
    response = client.post("/predict", files=upload(encode(Image.new("RGB", (5000, 4000)))))
    assert response.status_code == 413
    assert response.json()["detail"].startswith("the image is 5000x4000 = 20000000 pixels of PNG, which needs about "
                                                 "144 MB to process, more than the 130 MB this server's memory budget "
                                                 "(MEMORY_BUDGET_MB=300) leaves")
    assert client.post("/predict", files=upload(SMALL)).status_code == 200
