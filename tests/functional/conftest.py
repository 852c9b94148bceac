"""The FastAPI app in-process (TestClient), with its model, settings and queue swappable per test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from app.model_holder import ModelHolder
from app.settings import Settings
from app.work_queue import WorkQueue
from fastapi.testclient import TestClient

ClientFactory = Callable[..., TestClient]


@pytest.fixture(scope="session")
def tiny_holder(tiny_model_path: Path) -> ModelHolder:
    holder = ModelHolder(Settings(MODEL_URI=str(tiny_model_path)))
    holder.get()
    return holder


@pytest.fixture
def make_client(tiny_model_path: Path, tiny_holder: ModelHolder) -> Iterator[ClientFactory]:
    """``make_client(holder=..., work_queue=..., **settings)``: the app with those swapped in.

    Defaults: the tiny model (loaded once), the settings' defaults, the app's own work queue.
    """
    from app import main

    def make(holder: ModelHolder | None = None, work_queue: WorkQueue | None = None,
             raise_server_exceptions: bool = True, **settings: Any) -> TestClient:
        configured = Settings(**{"MODEL_URI": str(tiny_model_path), **settings})
        overrides = main.app.dependency_overrides
        overrides[main.get_settings] = lambda: configured
        overrides[main.get_holder] = lambda: holder or tiny_holder
        if work_queue is not None:
            overrides[main.get_work_queue] = lambda: work_queue
        return TestClient(main.app, raise_server_exceptions=raise_server_exceptions)

    yield make
    main.app.dependency_overrides.clear()
