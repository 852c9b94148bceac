"""Peak resident memory of a process, from Linux's own accounting."""

from __future__ import annotations


def vmhwm_mb(pid: int) -> float:
    """Peak resident set size ("high water mark", VmHWM in /proc/PID/status, proc(5)), in MB."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024 / 1e6  # reported in kB
    raise RuntimeError(f"no VmHWM for process {pid}: /proc/PID/status is Linux-only")
