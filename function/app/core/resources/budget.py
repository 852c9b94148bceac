"""The memory budget: what a request will cost, read from its header, and whether the process has room for it.

A request's estimate (``estimate``) is the pixel count its header declares (``app.core.decoding.imaging.read_header``:
nothing decoded yet) times ``BYTES_PER_PIXEL`` for its format, plus ``REQUEST_BYTES`` (24 MB). Requests share
``MEMORY_BUDGET_MB`` less what the process already holds: its resident memory when the budget is built (the
model loaded) and ``INFERENCE_BYTES`` per worker (``MemoryBudget.for_process``).

``MemoryBudget`` hands out shares first come, first served: a share that does not fit waits, and those
behind it wait too, so a large image is never overtaken for ever by small ones. A grant is a
``concurrent.futures.Future``: any thread or event loop may wait on it. A share larger than all the
room there is can never be granted: ``check`` refuses it (``OverBudget``, 413) before it queues. A
granted ``Share`` goes back when its last holder lets go: the bytes per pixel were measured until the
answer was sent, so the answer holds it too (the encoded result, and the server's copies of it in flight).

``MEMORY_BUDGET_MB``'s default is the memory this process may use (``app.core.resources.memory_limit``).
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass

from app.core.decoding.imaging import Header, ImageTooLarge
from app.core.resources.memory_limit import MB, resident_bytes

logger = logging.getLogger(__name__)

# Peak RSS above the warm server per decoded pixel, by Pillow's format name ("TIFF raw": uncompressed TIFF;
# "TIFF": every compression, measured with LZW). `python -m bench.bytes_per_pixel --no-write` (2 CPUs, load
# average 3.2 before, 6.0 after, other work sharing them): one 7302x5476 (40 MP) photo-like image per format
# through POST /predict, PNG overlay (the default answer); rows JPEG q90, PNG, WebP q80, TIFF LZW, TIFF raw,
# BMP, AVIF q60, HEIC q60. An earlier run (at commit 634f7ad) was within 0.25 B/px of each. Kept as the worst case
# since: on 2026-12-08 a banded TIFF decode, a fixed mmap threshold and the model's arena given back after a large
# inference brought the 40 MP rows to 4.3-4.7 B/px for JPEG, PNG and LZW TIFF (docs/benchmarks.md), but a TIFF of one
# strip is still decoded whole (~7.5), and a request that arrives while another's inference holds the arena pays it.
BYTES_PER_PIXEL: dict[str, float] = {
    "JPEG": 5.73, "PNG": 6.00, "WEBP": 16.19, "TIFF": 7.52, "TIFF raw": 5.44, "BMP": 5.39, "AVIF": 8.53, "HEIF": 9.09,
}
UNMEASURED_BYTES_PER_PIXEL = max(BYTES_PER_PIXEL.values())  # GIF, which the bench does not encode: the worst
# Beyond the pixels, per request (encoder state, the model-sized tensors, Python objects): a 12 MP JPEG's peak
# over a warm server less its pixels at BYTES_PER_PIXEL came to 12 MB in a first look, then 17.6, 23.8 and 7.1
# MB in three runs of bench.budget's basis (docs/benchmarks.md) on 2 shared CPUs: the noise of the per-pixel
# figure (0.5 B/px is 6 MB at 12 MP) as much as anything; a 1080p one's to 9 MB. At 40 MP the per-pixel figures
# already hold it, so there it is a margin.
REQUEST_BYTES = 24 * MB
# onnxruntime's arena grows by one inference's working set for each inference running at once and keeps it,
# so it is charged once per worker thread, up front, not per request. RSS over the loaded server after one
# run, then two at once: bundled int8 model 77-78 then 113-138 MB in four runs (57-69 per worker; bench.budget's
# basis, docs/benchmarks.md), fp32 100 then 165 MB (82.5) in one. Set for the bundled model, the default.
INFERENCE_BYTES = 70 * MB



@dataclass(frozen=True)
class Estimate:
    """A request's expected peak memory above the idle server, and what it was computed from."""

    header: Header
    row: str  # the BYTES_PER_PIXEL row it was charged by
    bytes: int

    @property
    def describes(self) -> str:
        header = self.header
        return f"the image is {header.width}x{header.height} = {header.pixels} pixels of {self.row}"


def estimate(header: Header) -> Estimate:
    """``header``'s pixels times its format's bytes per pixel, plus ``REQUEST_BYTES``."""
    row = "TIFF raw" if header.format == "TIFF" and header.compression == "raw" else header.format
    per_pixel = BYTES_PER_PIXEL.get(row, UNMEASURED_BYTES_PER_PIXEL)
    return Estimate(header, row, round(header.pixels * per_pixel) + REQUEST_BYTES)


class Share:
    """``size`` bytes granted from a budget, returned once the last of its ``holders`` lets go: the work that
    makes a result, and the answer that carries it until it is sent."""

    def __init__(self, memory: MemoryBudget | None, size: int, holders: int) -> None:
        self.size, self._memory, self._holders = size, memory, holders
        self._lock = threading.Lock()

    @property
    def held(self) -> bool:
        return self._holders > 0

    def release(self) -> None:
        """One holder lets go; the last returns the bytes to the budget. Once none holds it, nothing more happens."""
        with self._lock:
            if self._holders == 0:
                return
            self._holders -= 1
            last = self._holders == 0
        if last and self._memory is not None and self.size:
            self._memory.release(self.size)


class OverBudget(ImageTooLarge):
    """One request alone needs more memory than the budget could ever give it (413)."""


class MemoryBudget:
    """``capacity`` bytes shared by requests, granted in arrival order; see the module docstring."""

    def __init__(self, capacity: int, budget_mb: int | None = None) -> None:
        if capacity <= 0:
            raise ValueError(f"a memory budget needs a capacity > 0 bytes, got {capacity}")
        self.capacity, self.budget_mb = capacity, budget_mb
        self._lock = threading.Lock()
        self._reserved = 0
        self._waiting: deque[tuple[int, Future[None]]] = deque()

    @classmethod
    def for_process(cls, budget_mb: int, workers: int) -> MemoryBudget:
        """MEMORY_BUDGET_MB less this process's resident memory now and ``INFERENCE_BYTES`` per worker."""
        resident, inference = resident_bytes(), workers * INFERENCE_BYTES
        capacity = budget_mb * MB - resident - inference
        if capacity < REQUEST_BYTES:
            needed = (resident + inference + REQUEST_BYTES) // MB + 1
            raise ValueError(
                f"MEMORY_BUDGET_MB={budget_mb} leaves no memory for requests: the server holds {resident // MB} MB "
                f"before its first one and its {workers} workers' inference needs {inference // MB} MB more; set "
                f"MEMORY_BUDGET_MB to at least {needed} (more for large images), or lower MAX_CONCURRENCY"
            )
        logger.info("memory budget", extra={"budget_mb": budget_mb, "resident_mb": resident // MB,
                                            "inference_mb": inference // MB, "requests_mb": capacity // MB})
        return cls(capacity, budget_mb)

    @property
    def reserved(self) -> int:
        """Bytes granted to requests and not yet released."""
        return self._reserved

    @property
    def waiting(self) -> int:
        """Requests waiting for their share."""
        return len(self._waiting)

    def check(self, cost: Estimate) -> None:
        """``OverBudget`` if ``cost`` is more than the whole capacity: it would wait for ever."""
        if cost.bytes <= self.capacity:
            return
        most = max(int((self.capacity - REQUEST_BYTES) / BYTES_PER_PIXEL.get(cost.row, UNMEASURED_BYTES_PER_PIXEL)), 0)
        setting = "MEMORY_BUDGET_MB" if self.budget_mb is None else f"MEMORY_BUDGET_MB={self.budget_mb}"
        raise OverBudget(
            f"{cost.describes}, which needs about {cost.bytes // MB} MB to process, more than the "
            f"{self.capacity // MB} MB this server's memory budget ({setting}) leaves for requests: send an image "
            f"of at most {most} pixels in this format, or a smaller one"
        )

    def reserve(self, size: int) -> Future[None]:
        """A future that is done once ``size`` bytes are granted; ``withdraw`` it if you stop waiting."""
        grant: Future[None] = Future()
        with self._lock:
            self._waiting.append((size, grant))
            self._grant_in_order()
        return grant

    def withdraw(self, size: int, grant: Future[None]) -> None:
        """Gives up a reservation, waiting or granted (its waiter was cancelled): nothing stays held."""
        with self._lock:
            if (size, grant) in self._waiting:
                self._waiting.remove((size, grant))
            elif grant.done() and not grant.cancelled():
                self._reserved -= size
            self._grant_in_order()

    def release(self, size: int) -> None:
        """Returns a granted share; those waiting next get theirs if they now fit."""
        with self._lock:
            self._reserved -= size
            self._grant_in_order()

    def _grant_in_order(self) -> None:
        """Grants waiting shares from the front while they fit; a waiter already cancelled is dropped."""
        while self._waiting and self._reserved + self._waiting[0][0] <= self.capacity:
            size, grant = self._waiting.popleft()
            if grant.set_running_or_notify_cancel():  # False: its waiter was cancelled, nothing to grant
                self._reserved += size
                grant.set_result(None)
