"""app.cli.inputs: which files an input names, how each is named, and where its result goes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from app.cli.inputs import UsageError, find_sources, glob_base, plan
from app.core.options import RenderOptions

TREE = ["photos/cat.jpg", "photos/cat.png", "photos/README.txt", "photos/Dog.JPEG", "photos/a/cat.jpg",
        "photos/a/b/deep.webp", "photos/a/notes.md", "other/cat.jpg"]


@pytest.fixture
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """TREE under tmp_path, which becomes the working directory (inputs are given relative to it)."""
    for name in TREE:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def found(inputs: list[str], recursive: bool = False, out: str = "out") -> tuple[list[tuple[str, str]], list[str]]:
    """(path, name) of each source and the ignored paths, as strings."""
    result = find_sources(inputs, recursive, Path(out))
    return ([(str(s.path), s.name.as_posix()) for s in result.sources], [str(path) for path in result.ignored])


@pytest.mark.parametrize(
    ("inputs", "recursive", "sources", "ignored"),
    [
        (["photos"], False, [("photos/Dog.JPEG", "Dog.JPEG"), ("photos/cat.jpg", "cat.jpg"),
                             ("photos/cat.png", "cat.png")], ["photos/README.txt"]),
        (["photos"], True, [("photos/Dog.JPEG", "Dog.JPEG"), ("photos/cat.jpg", "cat.jpg"),
                            ("photos/cat.png", "cat.png"), ("photos/a/cat.jpg", "a/cat.jpg"),
                            ("photos/a/b/deep.webp", "a/b/deep.webp")],
         ["photos/README.txt", "photos/a/notes.md"]),
        (["photos/a/cat.jpg", "photos/README.txt"], False,  # files named are always attempted
         [("photos/a/cat.jpg", "cat.jpg"), ("photos/README.txt", "README.txt")], []),
        (["photos/**/*.jpg"], False, [("photos/a/cat.jpg", "a/cat.jpg"), ("photos/cat.jpg", "cat.jpg")], []),
        (["photos/*"], False, [("photos/Dog.JPEG", "Dog.JPEG"), ("photos/README.txt", "README.txt"),
                               ("photos/a/cat.jpg", "cat.jpg"), ("photos/cat.jpg", "cat.jpg"),
                               ("photos/cat.png", "cat.png")], ["photos/a/notes.md"]),  # as the shell expands it
        (["photos/cat.jpg", "photos", "./photos/cat.jpg"], False,  # a path given twice is read once, first name kept
         [("photos/cat.jpg", "cat.jpg"), ("photos/Dog.JPEG", "Dog.JPEG"), ("photos/cat.png", "cat.png")],
         ["photos/README.txt"]),
        (["photos/a"], True, [("photos/a/cat.jpg", "cat.jpg"), ("photos/a/b/deep.webp", "b/deep.webp")],
         ["photos/a/notes.md"]),
    ],
    ids=["folder", "folder-recursive", "files", "glob-crosses-folders", "glob-like-the-shell", "twice", "subfolder"],
)
def test_sources_and_their_names(tree: Path, inputs: list[str], recursive: bool, sources: list[tuple[str, str]],
                                 ignored: list[str]) -> None:
    assert found(inputs, recursive) == (sources, ignored)


def test_the_output_folder_inside_an_input_is_never_read(tree: Path) -> None:
    """A rerun with OUT under the folder processed must not segment its own results."""
    (tree / "photos" / "out").mkdir()
    (tree / "photos" / "out" / "cat.jpg.png").write_bytes(b"x")
    assert [name for _, name in found(["photos"], recursive=True, out="photos/out")[0]] == [
        "Dog.JPEG", "cat.jpg", "cat.png", "a/cat.jpg", "a/b/deep.webp"]


@pytest.mark.parametrize(
    ("inputs", "message"),
    [(["missing.jpg"], "missing.jpg: no such file or folder"), (["photos/*.gif"], "photos/*.gif: matches no file")],
)
def test_inputs_that_name_nothing_are_usage_errors(tree: Path, inputs: list[str], message: str) -> None:
    with pytest.raises(UsageError, match=message.replace("*", r"\*")):
        find_sources(inputs, False, Path("out"))


@pytest.mark.parametrize(
    ("pattern", "base"),
    [("photos/**/*.jpg", "photos"), ("*.jpg", "."), ("/data/in/*/x.png", "/data/in"), ("a/b[12]/c", "a")],
)
def test_glob_base(pattern: str, base: str) -> None:
    assert glob_base(pattern) == Path(base)


@pytest.mark.parametrize(
    ("options", "targets"),
    [
        ({}, ["out/cat.jpg.png", "out/cat.png.png", "out/a/cat.jpg.png"]),  # cat.jpg and cat.png never collide
        ({"output": "mask", "format": "webp"}, ["out/cat.jpg.mask.webp", "out/cat.png.mask.webp",
                                                "out/a/cat.jpg.mask.webp"]),
        ({"output": "json"}, ["out/cat.jpg.json", "out/cat.png.json", "out/a/cat.jpg.json"]),
    ],
)
def test_plan_names_outputs_as_the_s3_trigger(tree: Path, options: dict[str, Any], targets: list[str]) -> None:
    sources = find_sources(["photos/cat.jpg", "photos/cat.png", "photos/**/a/cat.jpg"], False, Path("out")).sources
    jobs = plan(sources, Path("out"), RenderOptions(**options))
    assert [job.target.as_posix() for job in jobs] == targets


def test_two_sources_for_one_output_are_refused_before_anything_runs(tree: Path) -> None:
    sources = find_sources(["photos/cat.jpg", "other/cat.jpg"], False, Path("out")).sources
    with pytest.raises(UsageError, match="photos/cat.jpg and other/cat.jpg would both be written to out/cat.jpg.png"):
        plan(sources, Path("out"), RenderOptions())
