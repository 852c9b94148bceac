"""Benchmarks (``make bench`` -> ``python -m bench.run``): measured, never asserted in tests.

Run from the repository root: ``bench`` imports from the checkout, ``app`` from the
editable install that ``make`` puts into .venv.
"""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
