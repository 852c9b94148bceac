"""The FastAPI app in-process (TestClient), built by the app factory with the settings, model and queue a test wants."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.core.model_holder import ModelHolder
from app.core.settings import Settings
from app.http.factory import create_app
from app.http.work_queue import WorkQueue
from app.runtime import build_holder

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
