"""The C heap between requests: a small request's freed memory stays for the next, a large one's goes back;
a large block goes back when freed, whatever was freed before it."""

from __future__ import annotations

import subprocess
import sys

import pytest

from app.core.resources import memory

KEEP = memory.KEEP_FREED_UP_TO_PIXELS


@pytest.mark.parametrize(("pixels", "trims"), [
    (1, 0),
    (1920 * 1080, 0),  # 1080p: the next request reuses its buffers instead of faulting them back in
    (KEEP, 0),
    (KEEP + 1, 1),
    (4000 * 3000, 1),  # a 12 MP photo: its 60 MB of image and mask go back to the system
])
def test_the_heap_is_trimmed_after_large_requests_only(pixels: int, trims: int,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[None] = []
    monkeypatch.setattr(memory, "trim_heap", lambda: calls.append(None))
    memory.trim_heap_after(pixels)
    assert len(calls) == trims



# In a fresh interpreter: a 24 MiB block mapped and freed (glibc's dynamic rule would now serve blocks up to
# its size from the heap, and keep twice that at the heap's top), then a block just over the mmap threshold
# allocated, touched and freed. Prints the resident memory it added, in MB, once freed.
FREED_BLOCK = """
import ctypes
from app.core.resources import memory
if {configured}:
    memory.configure_malloc()
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]

def resident_mb():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096 / 1e6

def touched(size):
    block = libc.malloc(size)
    ctypes.memset(block, 1, size)
    return block

libc.free(touched(24 << 20))
before = resident_mb()
libc.free(touched(memory.MMAP_THRESHOLD_BYTES + (4 << 20)))
print(resident_mb() - before)
"""


@pytest.mark.skipif(sys.platform != "linux", reason="glibc's malloc and /proc")
@pytest.mark.parametrize(("configured", "kept_mb"), [(True, (-1, 1)), (False, (11, 14))])
def test_a_large_block_goes_back_when_freed_whatever_was_freed_before(configured: bool,
                                                                      kept_mb: tuple[float, float]) -> None:
    # Unconfigured is glibc's own behaviour, shown so that the configured case is known to test something.
    script = FREED_BLOCK.format(configured=configured)
    added = float(subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                                 check=True).stdout)
    assert kept_mb[0] <= added <= kept_mb[1]
