"""Every PngSuite file through POST /predict: 200 with the right size, or a 4xx; never a 5xx."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from tests.support import PNGSUITE

FILES = sorted(PNGSUITE.glob("*.png"))
# PngSuite's corrupt files start with "x". xcsn0g01 has a wrong CRC on its IDAT chunk only:
# Pillow does not check IDAT CRCs while decoding, and the pixels are intact, so 200 is fine too.
CORRUPT_BUT_DECODABLE = {"xcsn0g01.png"}


def test_the_corpus_is_all_there() -> None:
    assert len(FILES) == 175
    assert sum(path.name.startswith("x") for path in FILES) == 14


@pytest.mark.slow
@pytest.mark.parametrize("path", FILES, ids=[path.name for path in FILES])
def test_pngsuite_file(make_client: Callable, path: Path) -> None:
    response = make_client().post("/predict", files={"file": (path.name, path.read_bytes(), "image/png")})
    assert response.status_code < 500, response.text
    if path.name.startswith("x") and path.name not in CORRUPT_BUT_DECODABLE:
        assert response.status_code == 400, response.text
        return
    assert response.status_code == 200, response.text
    with Image.open(path) as original:
        assert Image.open(io.BytesIO(response.content)).size == original.size
