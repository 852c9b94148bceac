"""The image's Python layer, resolved for the Lambda runtime (CPython 3.12, manylinux x86_64) with pip."""

from __future__ import annotations

from typing import Any

import pytest

from scripts.lambda_size import BUDGET_MB, REQUIREMENTS, IndexUnreachable, measure, normalise


def pinned() -> set[str]:
    lines = (line.split("#")[0].strip() for line in REQUIREMENTS.read_text().splitlines())
    return {f"{normalise(name)}=={version}" for name, _, version in (line.partition("==") for line in lines if line)}


@pytest.fixture(scope="module")
def layer() -> dict[str, Any]:
    try:
        return measure()
    except IndexUnreachable as unreachable:  # the only reason to skip: no wheels cached and no PyPI
        pytest.skip(str(unreachable))


@pytest.mark.slow
def test_every_pinned_requirement_resolves_for_lambda(layer: dict[str, Any]) -> None:
    assert pinned() <= set(layer["distributions"])


@pytest.mark.slow
def test_no_torch_in_the_image(layer: dict[str, Any]) -> None:
    assert not [name for name in layer["distributions"] if name.startswith(("torch", "nvidia-"))]


@pytest.mark.slow
def test_layer_size_stays_within_budget(layer: dict[str, Any]) -> None:
    assert layer["total_mb"] <= BUDGET_MB, layer["largest_mb"]
    assert layer["bytecode_mb"] > 0  # compiled: the read-only task root cannot cache bytecode at run time
