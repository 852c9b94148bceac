"""The HTTP service's composition root. Contract: ``app.main:app`` is the ASGI app.

    uvicorn app.main:app --app-dir function        # what `make serve` runs

Built at import, once per process: the runtime (settings, JSON logging, the model),
the work queue that runs each request's CPU-bound work off the event loop, and the
app over them (``app.http.factory.create_app``). The HTTP Lambda function wraps this
same app (``app.lambda_api``).
"""

from __future__ import annotations

from app.http.factory import create_app
from app.http.work_queue import WorkQueue
from app.runtime import build_runtime

runtime = build_runtime()
work_queue = WorkQueue.from_settings(runtime.settings)
app = create_app(runtime.settings, runtime.holder, work_queue)
