"""unet-segment in-process (``app.cli.main``): folders of good, corrupt and non-image files, names, exit
statuses, the JSON line, resuming an interrupted run."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from app.core.decoding.imaging import ACCEPTED, DecodeLimits
from app.core.inference.segmenter import Segmenter
from app.core.options import RenderOptions
from app.core.pipeline import render
from app.core.settings import Settings
from app.runtime import load_segmenter
from tests.support import PNGSUITE, SAMPLE_JPEG, SAMPLE_PNG

CORRUPT = ["xc1n0g08.png", "xcrn0g04.png", "xs1n0g01.png"]  # PngSuite: bad CRC, line-ending damage, bad signature
GOOD = ["basn2c08.png", "basn0g16.png"]


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    """photos/{cat.jpg, cat.png, README.txt, a/<PngSuite good and corrupt>, a/b/deep.jpg}."""
    root = tmp_path / "photos"
    (root / "a" / "b").mkdir(parents=True)
    shutil.copy(SAMPLE_JPEG, root / "cat.jpg")
    shutil.copy(SAMPLE_PNG, root / "cat.png")
    (root / "README.txt").write_text("not an image")
    for name in GOOD + CORRUPT:
        shutil.copy(PNGSUITE / name, root / "a" / name)
    shutil.copy(SAMPLE_JPEG, root / "a" / "b" / "deep.jpg")
    return root


@pytest.fixture
def segment(tiny_model_path: Path, capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, Any, str]]:
    """``segment(*argv)`` -> (exit status, the last stdout line parsed, stderr), with the tiny model."""
    from app.cli import main

    def run(*argv: str) -> tuple[int, Any, str]:
        try:
            status = main([*argv, "--model", str(tiny_model_path)])
        except SystemExit as exit_:  # argparse's usage errors
            status = int(exit_.code or 0)
        out, err = capsys.readouterr()
        lines = out.splitlines()
        assert len(lines) <= 1, lines  # stdout carries the summary alone
        return status, json.loads(lines[0]) if lines else None, err

    return run


def files_under(folder: Path) -> list[str]:
    return sorted(path.relative_to(folder).as_posix() for path in folder.rglob("*") if path.is_file())


def counts(summary: dict[str, Any]) -> tuple[int, int, int]:
    assert set(summary) == {"processed", "failed", "skipped", "seconds"} and summary["seconds"] >= 0
    return summary["processed"], summary["failed"], summary["skipped"]


def test_a_folder_recursively(segment: Callable, photos: Path, tmp_path: Path) -> None:
    status, summary, err = segment(str(photos), "-o", str(tmp_path / "out"), "--recursive")
    assert (status, counts(summary)) == (1, (5, 3, 0))  # some failed: 1, the others written
    assert files_under(tmp_path / "out") == ["a/b/deep.jpg.png", "a/basn0g16.png.png", "a/basn2c08.png.png",
                                             "cat.jpg.png", "cat.png.png"]  # cat.jpg and cat.png: no collision
    failures = [line for line in err.splitlines() if line.startswith("unet-segment: failed ")]
    assert [line.split(":")[1].strip().removeprefix("failed ") for line in failures] == [
        str(photos / "a" / name) for name in CORRUPT]
    assert "the file is not a recognised image" in err  # each with its reason
    assert f"ignored 1 file(s) in the folders that are not {ACCEPTED} images" in err


@pytest.mark.parametrize(("data", "reason"), [
    (b"a shopping list, not an image", "the file is not a recognised image"),
    (b"", "the file is empty"),
    (b"8BPS\x00\x01" + b"\x00" * 64, "PSD images are not accepted"),
    (b"\x89PNG\r\n\x1a\n" + b"\x00" * 50, "the file looks like PNG but its header is corrupt"),
], ids=["text", "empty", "psd", "png-header"])
def test_a_file_that_is_not_a_readable_image_is_named_with_its_reason(segment: Callable, tmp_path: Path,
                                                                      data: bytes, reason: str) -> None:
    # GIVEN a local file that is no image it can read (the HTTP API's detail adds "send a ... image")
    source = tmp_path / "in" / "notes.png"
    source.parent.mkdir()
    source.write_bytes(data)
    status, summary, err = segment(str(source), "-o", str(tmp_path / "out"))
    # THEN it fails with one line naming the file and what is wrong with it, and nothing a client would send
    assert (status, counts(summary)) == (1, (0, 1, 0))
    assert err.splitlines() == [f"unet-segment: failed {source}: {reason}"]


def test_a_folder_without_recursive_takes_its_own_images_only(segment: Callable, photos: Path,
                                                              tmp_path: Path) -> None:
    status, summary, _ = segment(str(photos), "-o", str(tmp_path / "out"))
    assert (status, counts(summary)) == (0, (2, 0, 0))
    assert files_under(tmp_path / "out") == ["cat.jpg.png", "cat.png.png"]


def test_results_are_the_pipelines_with_the_options_given(segment: Callable, photos: Path, tmp_path: Path,
                                                          tiny_model_path: Path) -> None:
    status, _, _ = segment(str(photos / "cat.jpg"), "-o", str(tmp_path / "out"), "--output", "cutout",
                           "--format", "webp", "--quality", "70")
    expected = render(load_segmenter(Settings(MODEL_URI=str(tiny_model_path))), SAMPLE_JPEG.read_bytes(),
                      DecodeLimits(10**8, 10**8), RenderOptions(output="cutout", format="webp", quality=70))
    assert status == 0
    assert (tmp_path / "out" / "cat.jpg.cutout.webp").read_bytes() == expected.result.body


def test_threads_write_the_same_bytes(segment: Callable, photos: Path, tmp_path: Path) -> None:
    """--jobs 3 shares one onnxruntime session between threads: the results are those of one thread."""
    one, three = tmp_path / "one", tmp_path / "three"
    assert segment(str(photos), "-o", str(one), "-r", "--format", "jpeg")[0] == 1
    assert segment(str(photos), "-o", str(three), "-r", "--format", "jpeg", "--jobs", "3")[0] == 1
    assert files_under(one) == files_under(three)
    assert all((one / name).read_bytes() == (three / name).read_bytes() for name in files_under(one))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--alpha", "2"], "--alpha 2: Input should be less than or equal to 1"),
        (["--color", "red"], "--color red: colour 'red' is not '#rrggbb', 'rrggbb' or 'r,g,b'"),
        (["--threshold", "1"], "--threshold 1: Input should be less than 1"),
        (["--quality", "high"], "--quality high: Input should be a valid integer"),
        (["--output", "cutout", "--format", "jpeg"], "JPEG has no alpha channel, so it cannot carry a cutout"),
        (["--output", "picture"], "argument --output: invalid choice: 'picture'"),
        (["--jobs", "0"], "argument -j/--jobs: 0 is not a positive number"),
        (["missing.jpg"], "missing.jpg: no such file or folder"),
        (["--format", "png", "--alpha", "1", "--color", "1,2,3", "--threshold", "0.4"], None),  # the control: valid
    ],
)
def test_usage_errors_exit_2_before_any_work(segment: Callable, photos: Path, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch, argv: list[str],
                                             message: str | None) -> None:
    monkeypatch.chdir(photos.parent)
    status, summary, err = segment("photos", *argv, "-o", str(tmp_path / "out"))
    if message is None:
        assert (status, counts(summary)) == (0, (2, 0, 0))
        return
    assert (status, summary) == (2, None)
    assert f"unet-segment: error: {message}" in err and err.startswith("usage: unet-segment")
    assert not (tmp_path / "out").exists()


def test_help_is_plain_text(capsys: pytest.CaptureFixture[str]) -> None:
    """--help is the module docstring, read in a terminal: its reStructuredText literals come out as plain text."""
    from app.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    out = capsys.readouterr().out
    assert exit_.value.code == 0
    assert "\nunet-segment INPUT... -o OUT_DIR: segment image files, folders and globs into OUT_DIR.\n" in out
    assert "Results\nare named as the S3 trigger names them (cat.jpg -> cat.jpg.png, .mask.png," in out
    assert "``" not in out


def test_two_inputs_for_one_output_exit_2(segment: Callable, photos: Path, tmp_path: Path) -> None:
    """Files named one by one are named by their file name: two cat.jpg would overwrite each other."""
    shutil.copy(SAMPLE_JPEG, photos / "a" / "cat.jpg")
    status, summary, err = segment(str(photos / "cat.jpg"), str(photos / "a" / "cat.jpg"), "-o", str(tmp_path / "out"))
    assert (status, summary) == (2, None)
    assert f"{photos / 'cat.jpg'} and {photos / 'a' / 'cat.jpg'} would both be written to" in err


def test_a_model_that_cannot_load_is_a_usage_error(photos: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    from app.cli import main

    with pytest.raises(SystemExit) as exit_:
        main([str(photos), "-o", str(tmp_path / "out"), "--model", str(tmp_path / "none.onnx")])
    assert exit_.value.code == 2
    message = f"cannot load the model {tmp_path / 'none.onnx'} (ModelUnavailable: no model file at"
    assert message in capsys.readouterr().err


def interrupt_on(call: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C as the ``call``-th result is being renamed into place (the worst moment for a half-written file)."""
    calls, replace = [], os.replace

    def replace_or_interrupt(source: str, target: Any) -> None:
        calls.append(target)
        if len(calls) == call:
            raise KeyboardInterrupt
        replace(source, target)

    monkeypatch.setattr("app.cli.runner.os.replace", replace_or_interrupt)


def test_skip_existing_resumes_an_interrupted_run(segment: Callable, photos: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    clean, resumed = tmp_path / "clean", tmp_path / "resumed"
    segment(str(photos), "-o", str(clean), "-r")
    # GIVEN a run stopped by Ctrl-C while its third result was being written
    with monkeypatch.context() as patch:
        interrupt_on(3, patch)
        status, summary, err = segment(str(photos), "-o", str(resumed), "-r")
    assert status == 130 and "interrupted" in err
    written = files_under(resumed)
    # THEN what is there is whole (the files in progress were finished), and nothing half-written is left
    assert summary["processed"] == len(written) >= 2
    assert all((resumed / name).read_bytes() == (clean / name).read_bytes() for name in written)
    # WHEN the run is resumed THEN only the rest is done, and the results are those of an uninterrupted run
    status, summary, _ = segment(str(photos), "-o", str(resumed), "-r", "--skip-existing")
    assert (status, counts(summary)) == (1, (5 - len(written), 3, len(written)))
    assert files_under(resumed) == files_under(clean)
    assert all((resumed / name).read_bytes() == (clean / name).read_bytes() for name in files_under(clean))


def test_skip_existing_skips_without_reading(segment: Callable, photos: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "cat.jpg.png").write_bytes(b"kept")
    status, summary, _ = segment(str(photos), "-o", str(out), "--skip-existing")
    assert (status, counts(summary)) == (0, (1, 0, 1))
    assert (out / "cat.jpg.png").read_bytes() == b"kept"
    status, summary, _ = segment(str(photos), "-o", str(out))  # without it, a rerun overwrites
    assert (status, counts(summary), (out / "cat.jpg.png").read_bytes() != b"kept") == (0, (2, 0, 0), True)


def test_no_images_is_not_an_error(segment: Callable, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    status, summary, err = segment(str(tmp_path / "empty"), "-o", str(tmp_path / "out"))
    assert (status, counts(summary)) == (0, (0, 0, 0))
    assert "no images found" in err


def test_the_segmenter_is_shared_not_rebuilt(segment: Callable, photos: Path, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[Segmenter] = []

    def load_and_count(settings: Settings) -> Segmenter:
        built.append(load_segmenter(settings))
        return built[-1]

    monkeypatch.setattr("app.cli.command.load_segmenter", load_and_count)
    assert segment(str(photos), "-o", str(tmp_path / "out"), "-r", "--jobs", "2")[0] == 1
    assert len(built) == 1
