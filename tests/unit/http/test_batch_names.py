"""POST /predict/batch's names in the zip: the one naming rule, made unique by position, results.json kept free."""

from __future__ import annotations

from typing import Any

import pytest

from app.core.options import RenderOptions
from app.http.batch import numbered, result_names


@pytest.mark.parametrize(
    ("filenames", "options", "names"),
    [
        (["cat.jpg", "cat.png"], {}, ["cat.jpg.png", "cat.png.png"]),  # formats never collide
        (["cat.jpg", "cat.jpg", "cat.jpg"], {}, ["cat.jpg.png", "cat (2).jpg.png", "cat (3).jpg.png"]),
        (["a/cat.jpg", "../b/cat.jpg", "C:\\x\\cat.jpg"], {"output": "mask"},
         ["cat.jpg.mask.png", "cat (2).jpg.mask.png", "cat (3).jpg.mask.png"]),  # only the last path part is kept
        ([None, "", "..", "image"], {}, ["image.png", "image (2).png", "image (3).png", "image (4).png"]),
        (["results"], {"output": "json"}, ["results (2).json"]),  # results.json is the manifest's
        (["results"], {}, ["results.png"]),
        (["cat (2).jpg", "cat.jpg", "cat.jpg"], {}, ["cat (2).jpg.png", "cat.jpg.png", "cat (3).jpg.png"]),
    ],
)
def test_result_names(filenames: list[str | None], options: dict[str, Any], names: list[str]) -> None:
    assert result_names(filenames, RenderOptions(**options)) == names


@pytest.mark.parametrize(
    ("name", "copy", "expected"),
    [("cat.jpg", 2, "cat (2).jpg"), ("archive.tar.gz", 3, "archive.tar (3).gz"), ("README", 2, "README (2)"),
     ("image", 4, "image (4)")],
)
def test_numbered(name: str, copy: int, expected: str) -> None:
    assert numbered(name, copy) == expected
