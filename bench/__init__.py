"""Benchmarks (``make bench`` -> ``python -m bench.run``): measured, never asserted in tests.

The service's package lives in ``function/`` (the Lambda image's build context) and
is imported as ``app``; pytest finds it through ``pythonpath``, ``python -m bench.*``
through the line below.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FUNCTION_DIR = REPO / "function"
if str(FUNCTION_DIR) not in sys.path:
    sys.path.insert(0, str(FUNCTION_DIR))
