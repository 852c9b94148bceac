"""app.core.resources.budget: a request's estimate from its header; shares of the budget granted in arrival order."""

from __future__ import annotations

from concurrent.futures import Future

import pytest

from app.core.decoding.imaging import Header
from app.core.resources import budget
from app.core.resources.budget import Estimate, MemoryBudget, OverBudget, Share, estimate
from app.core.resources.memory_limit import MB

# id: (header, the row it is charged by, expected bytes: pixels x the row's B/px, rounded, + 24 MB per request)
ESTIMATE_CASES: dict[str, tuple[Header, str, int]] = {
    "jpeg": (Header("JPEG", 2000, 1000), "JPEG", 11_460_000 + 24_000_000),
    "png": (Header("PNG", 1000, 1000), "PNG", 6_000_000 + 24_000_000),
    "webp": (Header("WEBP", 1000, 1000), "WEBP", 16_190_000 + 24_000_000),
    "tiff-lzw": (Header("TIFF", 1000, 1000, "tiff_lzw"), "TIFF", 7_520_000 + 24_000_000),
    "tiff-deflate-as-compressed": (Header("TIFF", 1000, 1000, "tiff_adobe_deflate"), "TIFF", 7_520_000 + 24_000_000),
    "tiff-raw": (Header("TIFF", 1000, 1000, "raw"), "TIFF raw", 5_440_000 + 24_000_000),
    "bmp": (Header("BMP", 1000, 1000), "BMP", 5_390_000 + 24_000_000),
    "avif": (Header("AVIF", 1000, 1000), "AVIF", 8_530_000 + 24_000_000),
    "heic": (Header("HEIF", 4032, 3024), "HEIF", 110_832_261 + 24_000_000),  # 12192768 x 9.09 = ...261.12
    "gif-unmeasured-is-the-worst": (Header("GIF", 1000, 1000), "GIF", 16_190_000 + 24_000_000),
    "40MP-tiff": (Header("TIFF", 7302, 5476, "tiff_lzw"), "TIFF", 300_692_855 + 24_000_000),
    "one-pixel": (Header("PNG", 1, 1), "PNG", 6 + 24_000_000),
}


@pytest.mark.parametrize(("header", "row", "expected"), ESTIMATE_CASES.values(), ids=ESTIMATE_CASES.keys())
def test_estimate(header: Header, row: str, expected: int) -> None:
    assert estimate(header) == Estimate(header, row, expected)


def cost(megabytes: float) -> Estimate:
    return Estimate(Header("PNG", 1, 1), "PNG", int(megabytes * MB))


# --- admission: (step, name, MB); steps: reserve, release, withdraw, cancel (the waiter gives up, as
# asyncio.wrap_future cancels its future); then who holds a share, MB reserved, requests waiting.
Step = tuple[str, str, float]
ADMISSION_CASES: dict[str, tuple[list[Step], list[str], float, int]] = {
    "fit-together": ([("reserve", "a", 60), ("reserve", "b", 40)], ["a", "b"], 100, 0),
    "over-capacity-waits": ([("reserve", "a", 60), ("reserve", "b", 50)], ["a"], 60, 1),
    "a-release-grants-the-next": ([("reserve", "a", 60), ("reserve", "b", 50), ("release", "a", 0)], ["b"], 50, 0),
    "first-come-first-served": ([("reserve", "a", 60), ("reserve", "b", 50), ("reserve", "c", 10)], ["a"], 60, 2),
    "granted-in-order-while-they-fit": (
        [("reserve", "a", 60), ("reserve", "b", 50), ("reserve", "c", 10), ("reserve", "d", 45), ("release", "a", 0)],
        ["b", "c"], 60, 1),
    "withdrawn-waiter-lets-followers-in": (
        [("reserve", "a", 60), ("reserve", "b", 50), ("reserve", "c", 10), ("withdraw", "b", 0)], ["a", "c"], 70, 0),
    "withdrawn-grant-is-returned": ([("reserve", "a", 60), ("reserve", "b", 50), ("withdraw", "a", 0)], ["b"], 50, 0),
    "cancelled-waiter-is-skipped": (
        [("reserve", "a", 60), ("reserve", "b", 50), ("reserve", "c", 30), ("cancel", "b", 0), ("release", "a", 0),
         ("withdraw", "b", 0)], ["c"], 30, 0),
    "exactly-the-capacity": ([("reserve", "a", 100)], ["a"], 100, 0),
    "all-returned": ([("reserve", "a", 70), ("reserve", "b", 70), ("release", "a", 0), ("release", "b", 0)], [], 0, 0),
}


@pytest.mark.parametrize(("steps", "holding", "reserved_mb", "waiting"), ADMISSION_CASES.values(),
                         ids=ADMISSION_CASES.keys())
def test_admission(steps: list[Step], holding: list[str], reserved_mb: float, waiting: int) -> None:
    memory, grants, sizes, gone = MemoryBudget(100 * MB), {}, {}, set()
    for step, name, megabytes in steps:
        if step == "reserve":
            sizes[name] = int(megabytes * MB)
            grants[name] = memory.reserve(sizes[name])
        elif step == "release":
            memory.release(sizes[name])
            gone.add(name)
        elif step == "withdraw":
            memory.withdraw(sizes[name], grants[name])
            gone.add(name)
        else:
            grants[name].cancel()
    assert [name for name, grant in grants.items() if is_granted(grant) and name not in gone] == holding
    assert (memory.reserved, memory.waiting) == (int(reserved_mb * MB), waiting)


def is_granted(grant: Future[None]) -> bool:
    return grant.done() and not grant.cancelled()


# --- one request that could never fit -------------------------------------------------------------


@pytest.mark.parametrize(("megabytes", "fits"), [(100, True), (99.9, True), (100.000001, False), (1000, False)])
def test_check_refuses_only_what_exceeds_the_whole_capacity(megabytes: float, fits: bool) -> None:
    memory = MemoryBudget(100 * MB)
    if fits:
        memory.check(cost(megabytes))
    else:
        with pytest.raises(OverBudget):
            memory.check(cost(megabytes))


def test_the_refusal_says_what_would_fit() -> None:
    memory = MemoryBudget(326 * MB, budget_mb=600)
    with pytest.raises(OverBudget) as refused:
        memory.check(estimate(Header("WEBP", 7302, 5476)))
    assert refused.value.status_code == 413
    assert refused.value.detail == (
        "the image is 7302x5476 = 39985752 pixels of WEBP, which needs about 671 MB to process, more than the 326 MB "
        "this server's memory budget (MEMORY_BUDGET_MB=600) leaves for requests: send an image of at most 18653489 "
        "pixels in this format, or a smaller one")


# --- the budget of a process ---------------------------------------------------------------------


@pytest.mark.parametrize(("budget_mb", "workers", "capacity_mb"), [(600, 2, 346), (600, 1, 416), (2048, 2, 1794)])
def test_for_process_leaves_the_budget_less_resident_memory_and_inference(
    monkeypatch: pytest.MonkeyPatch, budget_mb: int, workers: int, capacity_mb: int
) -> None:
    monkeypatch.setattr(budget, "resident_bytes", lambda: 114 * MB)  # a loaded server, before its first request
    assert MemoryBudget.for_process(budget_mb, workers).capacity == capacity_mb * MB


def test_a_budget_that_leaves_nothing_stops_the_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(budget, "resident_bytes", lambda: 114 * MB)
    with pytest.raises(ValueError) as refused:
        MemoryBudget.for_process(260, 2)
    assert str(refused.value) == (
        "MEMORY_BUDGET_MB=260 leaves no memory for requests: the server holds 114 MB before its first one and its 2 "
        "workers' inference needs 140 MB more; set MEMORY_BUDGET_MB to at least 279 (more for large images), or "
        "lower MAX_CONCURRENCY")


# --- a share with several holders ------------------------------------------------------------------


@pytest.mark.parametrize(("holders", "releases", "reserved_mb"), [(2, 1, 40), (2, 2, 0), (2, 3, 0), (1, 1, 0)])
def test_a_share_goes_back_when_its_last_holder_lets_go(holders: int, releases: int, reserved_mb: int) -> None:
    memory = MemoryBudget(100 * MB)
    memory.reserve(40 * MB)
    share = Share(memory, 40 * MB, holders)
    for _ in range(releases):
        share.release()
    assert (memory.reserved, share.held) == (reserved_mb * MB, reserved_mb > 0)
