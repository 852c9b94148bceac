"""The benchmark's own code keeps working: its in-process path once on a tiny image, and its goal arithmetic.

No timing is asserted here: speed goals are checked by ``make bench`` (docs/benchmarks.md).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.cli_throughput import measure
from bench.inprocess import load_pipeline, model_alone
from bench.phone_photos import decode_table, encodings
from bench.photo import photo_jpeg
from bench.report import BEGIN, END, GOALS, evaluate, update_docs
from bench.run import measure_inprocess

STAGES = {"decode", "resize", "infer", "upsample", "blend", "encode"}


def test_inprocess_path_runs_once_on_a_tiny_image(bundled_model_path: Path) -> None:
    pipeline = load_pipeline(bundled_model_path)
    model = model_alone(bundled_model_path, pipeline.segmenter)

    run = measure_inprocess(pipeline, model, photo_jpeg(48, 32), "tiny", rounds=1, warmup=0)

    assert set(run["stages_ms"]) == STAGES
    assert (run["total_ms"]["n"], run["model_ms"]["n"]) == (1, 1)
    assert run["png_mb"] > 0
    assert run["ratio_to_model"] > 0


def test_phone_photos_bench_decodes_each_format_on_a_tiny_frame() -> None:
    files = encodings(photo_jpeg(64, 48))
    table = decode_table(files, rounds=1)
    assert list(table) == ["JPEG q90", "HEIC q65", "AVIF q75"]
    assert all(row["mb"] > 0 and row["ms_1_threads"] > 0 for row in table.values())


def _results_where_every_goal_measures(value: float) -> dict:
    results: dict = {}
    for goal in GOALS:
        results.setdefault(goal.path[0], {})[goal.path[1]] = value
    return results


@pytest.mark.parametrize(
    ("value", "met", "over_by_first"),
    [
        (0.5, True, 0.0),  # under every limit
        (1.5, False, 0.0),  # exactly the first limit (1.5x) is met; 1.5 s is over the 1.0 s goals
        (1000.0, False, 998.5),
    ],
)
def test_goals_are_met_at_or_under_their_limit(value: float, met: bool, over_by_first: float) -> None:
    rows = evaluate(_results_where_every_goal_measures(value))

    assert [row["goal"] for row in rows] == [goal.name for goal in GOALS]
    assert all(row["met"] for row in rows) is met
    assert rows[0]["over_by"] == over_by_first


def test_docs_update_keeps_the_prose_outside_the_markers(tmp_path: Path) -> None:
    page = tmp_path / "benchmarks.md"
    page.write_text(f"# Benchmarks\n\nprose before\n\n{BEGIN}\nold numbers\n{END}\n\nprose after\n")

    update_docs(page, "new numbers")

    assert page.read_text() == f"# Benchmarks\n\nprose before\n\n{BEGIN}\nnew numbers\n{END}\n\nprose after\n"


def test_cli_throughput_runs_once_on_two_images(tmp_path: Path, bundled_model_path: Path) -> None:
    result = measure(images=2, rounds=1, jobs=(2,), model=bundled_model_path, out_dir=tmp_path, model_runs=1)
    [run] = result["cli"]
    assert (run["jobs"], run["exit"], run["processed"], run["failed"]) == (2, 0, 2, 0)
    assert result["model_alone"][0]["images_per_s"] > 0
    assert sorted(path.name for path in (tmp_path / "out-jobs2").iterdir()) == ["photo-000.jpg.png",
                                                                                "photo-001.jpg.png"]
