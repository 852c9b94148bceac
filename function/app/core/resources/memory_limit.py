"""How much memory this process may use: its cgroup's limit, else the Lambda function's memory, else the machine's.

``MEMORY_BUDGET_MB`` defaults to it (``default_budget_mb``). A container's limit (Docker ``--memory``,
Kubernetes limits) is its cgroup's, which ``free`` and ``/proc/meminfo`` do not show; Lambda sets its
function's memory in an environment variable.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from app.core.resources.cpus import CGROUP_ROOT, read_text

MB = 1_000_000  # the benchmarks' MB (bench.memory): MEMORY_BUDGET_MB=600 and a 650 MB peak compare directly
MIB = 1 << 20
# cgroup v2: https://docs.kernel.org/admin-guide/cgroup-v2.html#memory-interface-files ("max": no limit);
# v1: https://docs.kernel.org/admin-guide/cgroup-v1/memory.html (no limit reads as a huge page-aligned number).
CGROUP_V2_LIMIT = "memory.max"
CGROUP_V1_LIMIT = "memory/memory.limit_in_bytes"
# Set by the Lambda runtime, in MiB (https://docs.aws.amazon.com/lambda/latest/dg/configuration-envvars.html;
# OpenTelemetry's faas.max_memory multiplies it by 1,048,576).
LAMBDA_MEMORY_VARIABLE = "AWS_LAMBDA_FUNCTION_MEMORY_SIZE"


def default_budget_mb() -> int:
    """MEMORY_BUDGET_MB's default: ``memory_limit_bytes()`` in MB."""
    return memory_limit_bytes() // MB


def memory_limit_bytes(cgroup_root: Path = CGROUP_ROOT, environ: Mapping[str, str] = os.environ,
                       physical: int | None = None) -> int:
    """The cgroup's memory limit (v2, else v1) if under the physical memory, else Lambda's, else the physical."""
    physical = physical_memory_bytes() if physical is None else physical
    limit = cgroup_memory_limit(cgroup_root)
    if limit is not None and limit < physical:
        return limit
    lambda_mib = environ.get(LAMBDA_MEMORY_VARIABLE, "")
    if lambda_mib.isdigit() and int(lambda_mib) > 0:
        return int(lambda_mib) * MIB
    return physical


def cgroup_memory_limit(root: Path) -> int | None:
    """cgroup v2 ``memory.max``, else v1 ``memory.limit_in_bytes``, in bytes; None when absent or "max"."""
    for relative in (CGROUP_V2_LIMIT, CGROUP_V1_LIMIT):
        text = read_text(root / relative)
        if text is not None:
            return int(text) if text.isdigit() else None
    return None


def physical_memory_bytes() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def resident_bytes() -> int:
    """This process's resident memory now (the second field of /proc/self/statm, in pages; proc(5)); 0 off Linux."""
    statm = read_text(Path("/proc/self/statm"))
    return int(statm.split()[1]) * os.sysconf("SC_PAGE_SIZE") if statm else 0
