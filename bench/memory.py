"""Peak resident memory of a process, from Linux's own accounting."""

from __future__ import annotations


def vmhwm_mb(pid: int) -> float:
    """Peak resident set size ("high water mark", VmHWM in /proc/PID/status, proc(5)), in MB."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024 / 1e6  # reported in kB
    raise RuntimeError(f"no VmHWM for process {pid}: /proc/PID/status is Linux-only")


def vmrss_mb(pid: int) -> float:
    """Resident set size now (VmRSS), in MB."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024 / 1e6
    raise RuntimeError(f"no VmRSS for process {pid}")


def reset_peak(pid: int) -> None:
    """Starts VmHWM afresh from the current RSS (writing 5 to /proc/PID/clear_refs, Linux >= 4.0, proc(5))."""
    with open(f"/proc/{pid}/clear_refs", "w") as clear_refs:
        clear_refs.write("5")
