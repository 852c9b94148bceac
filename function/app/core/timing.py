"""Per-stage wall-clock timings for logs, the ``Server-Timing`` header and the benchmark."""

from __future__ import annotations

import time
from collections.abc import Callable


class Stopwatch:
    """Records the milliseconds between consecutive ``lap(name)`` calls (from ``start``, a ``clock()`` reading)."""

    def __init__(self, start: float | None = None, clock: Callable[[], float] = time.perf_counter) -> None:
        self.laps_ms: dict[str, float] = {}
        self._clock = clock
        self._last = clock() if start is None else start

    def lap(self, stage: str) -> float:
        """Ends ``stage`` now; returns its milliseconds (laps with the same name add up)."""
        now = self._clock()
        elapsed = (now - self._last) * 1000.0
        self.laps_ms[stage] = self.laps_ms.get(stage, 0.0) + elapsed
        self._last = now
        return elapsed

    def merge(self, laps_ms: dict[str, float]) -> None:
        """Takes laps timed elsewhere (e.g. a ``Prediction``'s) as the stages that just ended."""
        for stage, ms in laps_ms.items():
            self.laps_ms[stage] = self.laps_ms.get(stage, 0.0) + ms
        self._last = self._clock()


def server_timing(laps_ms: dict[str, float]) -> str:
    """``Server-Timing`` header value (https://www.w3.org/TR/server-timing/): ``decode;dur=1.2, ...``."""
    return ", ".join(f"{stage};dur={ms:.1f}" for stage, ms in laps_ms.items())
