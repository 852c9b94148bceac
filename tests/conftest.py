"""Fixtures shared by every test layer: the models the server can load, the app in-process (TestClient, built
by the app factory with the settings, model and queue a test wants), and Lambda's invocation context."""

from __future__ import annotations

import asyncio
import io
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings

from app.core.inference.holder import ModelHolder
from app.core.settings import Settings
from app.http.factory import create_app
from app.http.work_queue import WorkQueue
from app.runtime import build_holder
from scripts.invoke import LambdaContext
from tests.support import BUNDLED_MODEL, TINY_MODEL_VARIABLE, export_tiny_model

# Hypothesis (tests/unit/core/test_properties.py): no deadline (speed is make bench's business), nothing written
# into the checkout, and in CI the same examples every run, so a red CI names a reproducible input.
settings.register_profile("project", deadline=None, database=None, derandomize=bool(os.environ.get("CI")),
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("project")


@pytest.hookimpl(trylast=True)  # after pytest's own reordering by fixture
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that drive a browser run last, in their order. Playwright's sync API, from pytest-playwright's
    session-wide ``playwright`` fixture on, leaves an event loop running on the main thread until the session ends,
    so no later test could run one there (Mangum's handler, ``asyncio.run``)."""
    items.sort(key=lambda item: "playwright" in getattr(item, "fixturenames", ()))  # a stable sort


@pytest.hookimpl(optionalhook=True)  # pytest-xdist's hook: `make test` runs the suite in workers (-n)
def pytest_configure_node(node: Any) -> None:
    """Each xdist worker on CPUs of its own (an equal share), set before its session starts. torch, onnxruntime
    and the servers a test starts size their threads by the CPUs they may use: two workers that each took both
    CPUs ran four threads on two, and the tiny models' per-op barriers then waited for a thread that was not
    running (a 12 s training test took 128 s). The share is the same size on every worker, so every worker
    collects the same tests (ids that hold a CPU count). With more workers than CPUs, nothing is pinned."""
    cpus = sorted(os.sched_getaffinity(0))
    workers = node.workerinput["workercount"]
    size = len(cpus) // workers
    if size:
        index = int(node.gateway.id.removeprefix("gw")) % workers  # a restarted worker gets a new id
        share = cpus[index * size:(index + 1) * size]
        node.gateway.remote_exec(f"import os; os.sched_setaffinity(0, {share!r})").waitclose()


@pytest.fixture(scope="session")
def bundled_model_path() -> Path:
    """The committed reference model (model/weights/unet.onnx)."""
    assert BUNDLED_MODEL.is_file(), "model/weights/unet.onnx is missing: it is committed with the repository"
    return BUNDLED_MODEL


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 4-wide UNet at 64x64, exported with the real exporter (parity verified): fast to run. Made once per
    session, or given by TINY_MODEL_PATH: make mutate exports it once for its thousands of short sessions."""
    prebuilt = os.environ.get(TINY_MODEL_VARIABLE)
    if prebuilt:
        return Path(prebuilt)
    return export_tiny_model(tmp_path_factory.mktemp("models") / "tiny.onnx")


@pytest.fixture
def main_thread_event_loop() -> Iterator[None]:
    """Mangum runs requests on the main thread's current event loop, which Lambda's runtime
    leaves set; an ``asyncio.run`` elsewhere in the session unsets it."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    yield
    asyncio.set_event_loop(None)
    loop.close()


@pytest.fixture
def lambda_context(main_thread_event_loop: None) -> LambdaContext:
    """Lambda's context object, as the runtime passes it to a handler (with the loop a handler finds). Not named
    ``context``: pytest-playwright owns that name (a browser context) and runs every test asking for it per browser."""
    return LambdaContext(aws_request_id="c0ffee00-0000-4000-8000-000000000001")


@pytest.fixture
def context() -> None:
    """Not Lambda's context (``lambda_context``): ``context`` is pytest-playwright's browser context, which the
    browser tests get back (tests/integration/browser/conftest.py). Asked for anywhere else, it fails saying so,
    rather than launching a browser the rest of the suite then shares."""
    pytest.fail("`context` is pytest-playwright's browser context: Lambda's context object is `lambda_context`")


@pytest.fixture
def json_logs() -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """``read()`` -> the JSON log lines written so far in this test (the Powertools handler's
    stream swapped for a buffer: it holds the sys.stdout of import time, beyond capsys' reach)."""
    from app.aws.observability import logger

    buffer = io.StringIO()
    previous = logger.registered_handler.setStream(buffer)
    yield lambda: [json.loads(line) for line in buffer.getvalue().splitlines()]
    logger.registered_handler.setStream(previous)


ClientFactory = Callable[..., TestClient]


@pytest.fixture(scope="session")
def tiny_holder(tiny_model_path: Path) -> ModelHolder:
    holder = build_holder(Settings(MODEL_URI=str(tiny_model_path)))
    holder.get()
    return holder


@pytest.fixture
def make_client(tiny_model_path: Path, tiny_holder: ModelHolder) -> Iterator[ClientFactory]:
    """``make_client(holder=..., work_queue=..., **settings)``: a fresh app with those, in a TestClient.

    Defaults: the tiny model (loaded once), the settings' defaults, a work queue sized by the settings.
    """
    queues: list[WorkQueue] = []

    def make(holder: ModelHolder | None = None, work_queue: WorkQueue | None = None,
             raise_server_exceptions: bool = True, **settings: Any) -> TestClient:
        configured = Settings(**{"MODEL_URI": str(tiny_model_path), **settings})
        queue = work_queue or WorkQueue.from_settings(configured)
        queues.append(queue)
        app = create_app(configured, holder or tiny_holder, queue)
        return TestClient(app, raise_server_exceptions=raise_server_exceptions)

    yield make
    for queue in queues:
        queue.close()
