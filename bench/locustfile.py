"""Locust users for ``make load`` (bench.load starts them): each posts a mix of uploads to POST /predict, back to
back, and records every answer's kind, status, latency and Retry-After.

The payloads are files bench.load writes into LOAD_PAYLOADS (one per kind: 1080p, 12mp, tiny, corrupt) and
the mix is LOAD_MIX (``kind:weight,...``); the records are written as JSON lines to LOAD_RECORDS when Locust
stops. Locust's own statistics are kept too, but these records say what the report needs: which answers were
429s and whether they carried Retry-After, and which requests never got an answer at all.
"""

from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path
from typing import Any

from locust import HttpUser, constant, events, task

PAYLOADS = Path(os.environ.get("LOAD_PAYLOADS", "runs/load/payloads"))
RECORDS = Path(os.environ.get("LOAD_RECORDS", "runs/load/records.jsonl"))
MIX = [(kind, int(weight)) for kind, _, weight in
       (entry.partition(":") for entry in os.environ.get("LOAD_MIX", "1080p:4,12mp:1,tiny:3,corrupt:2").split(","))]
TIMEOUT_S = 300  # bounds a hang; a 12 MP request behind a full queue takes tens of seconds on 2 cores
records: list[dict[str, Any]] = []


class Uploader(HttpUser):
    """One client posting uploads back to back: the number of users is the concurrency."""

    wait_time = constant(0)

    def on_start(self) -> None:
        self.payloads = {kind: (PAYLOADS / kind).read_bytes() for kind, _ in MIX}
        self.kinds = [kind for kind, _ in MIX]
        self.weights = [weight for _, weight in MIX]

    @task
    def predict(self) -> None:
        kind = random.choices(self.kinds, self.weights)[0]  # noqa: S311 (a load mix, not a secret)
        started = time.perf_counter()
        record: dict[str, Any] = {"kind": kind, "status": None, "retry_after": None}
        try:
            with self.client.post("/predict", files={"file": (kind, self.payloads[kind])}, name=kind,
                                  timeout=TIMEOUT_S, catch_response=True) as response:
                record["status"] = response.status_code or None  # 0: no answer (connection error)
                record["retry_after"] = response.headers.get("Retry-After")
                if record["status"] is not None and record["status"] < 500:
                    response.success()  # 400 for the corrupt file, 429 under overload: answers, not failures
                record["error"] = None if record["status"] else str(response.error)
        finally:
            record["seconds"] = time.perf_counter() - started
            records.append(record)


@events.quitting.add_listener
def write_records(environment: Any, **_: Any) -> None:
    RECORDS.parent.mkdir(parents=True, exist_ok=True)
    with RECORDS.open("w") as output:
        output.writelines(json.dumps(record) + "\n" for record in records)
