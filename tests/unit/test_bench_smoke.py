"""The benchmark's own code keeps working: its in-process path once on a tiny image, and its goal arithmetic.

No timing is asserted here: speed goals are checked by ``make bench`` (docs/benchmarks.md).
"""

from __future__ import annotations

import time
from functools import partial
from pathlib import Path

import pytest

from bench import around, coldstart
from bench.budget import evaluate as budget_goal
from bench.budget import markdown as budget_markdown
from bench.cli_throughput import measure
from bench.inprocess import load_pipeline, model_alone
from bench.phone_photos import decode_table, encodings
from bench.photo import photo_jpeg
from bench.report import BEGIN, END, GOALS, Goal, evaluate, update_docs
from bench.server import KeepAliveClient, Server, timed_post_image

STAGES = {"decode", "resize", "infer", "upsample", "encode"}
DRAWING = {"png": "blend", "jpeg": "blend", "mask": "mask", "json": "json"}


def test_the_rounds_around_the_model_run_once_on_a_tiny_image(bundled_model_path: Path) -> None:
    pipeline = load_pipeline(bundled_model_path)
    model = model_alone(bundled_model_path, pipeline.segmenter)

    measured = around.measure(pipeline, model, bundled_model_path, photo_jpeg(480, 320), "tiny", rounds=1, warmup=0)

    assert list(measured["runs"]) == ["png", "jpeg", "mask", "json"]  # no HTTP without a server
    for name, run in measured["runs"].items():
        assert set(run["stages_ms"]) == STAGES | {DRAWING[name]}, name
        assert (run["total_ms"]["n"], run["model_ms"]["n"]) == (1, 1)
        assert run["result_mb"] > 0 and run["ratio_to_model"] > 0
        assert run["overhead_ms"] == pytest.approx(run["total_ms"]["median"] - run["model_ms"]["median"])
    assert measured["http_minus_inprocess_ms"] is None
    assert all(floor["median"] > 0 for floor in measured["floors_ms"].values())
    rows = {(row["stage"], row["output"]): row["floor"] for row in measured["stage_floors"]}
    assert rows[("decode", "png")] == "decode" and rows[("decode", "mask")] == "decode_view"
    assert rows[("encode", "jpeg")] == "jpeg_save" and ("encode", "json") not in rows


def test_both_http_clients_time_the_answer_the_render_gives(bundled_model_path: Path, tmp_path: Path) -> None:
    image = tmp_path / "photo.jpg"
    image.write_bytes(photo_jpeg(480, 320))
    pipeline = load_pipeline(bundled_model_path)
    model = model_alone(bundled_model_path, pipeline.segmenter)

    with Server(bundled_model_path, tmp_path / "server.log") as server:
        server.wait_ready()
        client = KeepAliveClient(server.url, image)
        posts = {around.HTTP: client.post, around.HTTP_SEED_CLIENT: partial(timed_post_image, server.url, image)}
        measured = around.measure(pipeline, model, bundled_model_path, image.read_bytes(), "tiny", rounds=2,
                                  warmup=0, posts=posts)
        client.close()

    runs = measured["runs"]
    assert list(runs) == ["png", "jpeg", "mask", "json", around.HTTP, around.HTTP_SEED_CLIENT]
    for name in posts:
        assert set(runs[name]["stages_ms"]) == STAGES | {"blend", "wait", "http_other"}, name
        assert runs[name]["result_mb"] == runs["png"]["result_mb"], name  # the same overlay, byte for byte in size
        assert runs[name]["total_ms"]["n"] == 2, name
    assert [runs[name]["path"] for name in posts] == ["HTTP loopback", "HTTP loopback, the seed's client"]
    assert measured["http_minus_inprocess_ms"] is not None and measured["seed_client_minus_inprocess_ms"] is not None


def test_the_keep_alive_client_refuses_an_answer_other_than_200(bundled_model_path: Path, tmp_path: Path) -> None:
    not_an_image = tmp_path / "notes.txt"
    not_an_image.write_bytes(b"not an image")
    with Server(bundled_model_path, tmp_path / "server.log") as server:
        server.wait_ready()
        client = KeepAliveClient(server.url, not_an_image)
        with pytest.raises(RuntimeError, match="POST /predict: 400"):
            client.post()
        client.close()


def test_the_keep_alive_client_opens_a_connection_the_server_closed(bundled_model_path: Path, tmp_path: Path) -> None:
    image = tmp_path / "photo.jpg"
    image.write_bytes(photo_jpeg(64, 48))
    with Server(bundled_model_path, tmp_path / "server.log", uvicorn_args=("--timeout-keep-alive", "1")) as server:
        server.wait_ready()
        client = KeepAliveClient(server.url, image)
        first = client.post()
        time.sleep(1.5)  # uvicorn closes the idle connection
        assert client.post()[1] == first[1]
        client.close()


def test_phone_photos_bench_decodes_each_format_on_a_tiny_frame() -> None:
    files = encodings(photo_jpeg(64, 48))
    table = decode_table(files, rounds=1)
    assert list(table) == ["JPEG q90", "HEIC q65", "AVIF q75"]
    assert all(row["mb"] > 0 and row["ms_1_threads"] > 0 for row in table.values())


def _results_where_every_goal_measures(value: float) -> dict:
    results: dict = {}
    for goal in GOALS:
        branch = results
        for key in goal.path[:-1]:
            branch = branch.setdefault(key, {})
        branch[goal.path[-1]] = value
    return results


@pytest.mark.parametrize("value", [0.0, 1.1, 1.15, 1.4, 4.0, 6.0, 190.0, 1000.0])
def test_a_goal_is_met_at_its_limit_or_on_its_side_of_it(value: float) -> None:
    rows = evaluate(_results_where_every_goal_measures(value), tried={})

    assert [row["goal"] for row in rows] == [goal.name for goal in GOALS]
    for goal, row in zip(GOALS, rows, strict=True):
        assert row["met"] is (value >= goal.limit if goal.at_least else value <= goal.limit), goal.name
        assert row["over_by"] == pytest.approx(0.0 if row["met"] else abs(value - goal.limit)), goal.name


def test_missed_by_is_measured_from_the_limit_in_the_goals_direction() -> None:
    at_most = Goal("RSS", ("memory", "peak"), 200.0, "MB")
    at_least = Goal("speed-up", ("model", "speedup"), 1.5, "x", at_least=True)
    results = {"memory": {"peak": 250.0}, "model": {"speedup": 1.2}}

    rows = evaluate(results, [at_most, at_least], tried={})

    missed = [(row["met"], row["over_by"], row["over_by_pct"]) for row in rows]
    assert missed == [(False, 50.0, 25.0), (False, 0.3, 20.0)]


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


def test_cold_start_bench_runs_one_process_per_function_and_per_floor(tmp_path: Path) -> None:
    image = tmp_path / "photo.jpg"
    image.write_bytes(photo_jpeg(64, 48))

    results = coldstart.measure(image, processes=1)

    assert results["functions"]["api"]["outcomes"] == [200]
    assert results["functions"]["upload"]["outcomes"] == [["processed"]]
    for run in results["functions"].values():
        assert 0 < run["init_s"] < run["init_and_first_event_s"]
        assert len(run["floor_samples"]) == 1 and run["floor_init_s"] > 0
        assert run["init_to_floor"] == pytest.approx(run["init_s"] / run["floor_init_s"])
    assert "| api (app.lambda_api) |" in coldstart.markdown(results)


def _burst(budget_mb: int | None, statuses: list[int | str], peak: float) -> dict:
    return {"format": "TIFF LZW", "budget_mb": budget_mb, "file_mb": 95.0, "statuses": statuses, "ready_rss_mb": 114.0,
            "peak_rss_mb": peak, "wall_s": 60.0, "requests_mb": 346}


@pytest.mark.parametrize(
    ("statuses", "peak", "met"),
    [
        ([200] * 6 + [429] * 2, 650.0, True),  # exactly the limit is met
        ([200] * 8, 650.1, False),
        ([200] * 7 + [503], 500.0, False),  # a 5xx is never an answer the goal accepts
        ([200] * 7 + ["ConnectionError"], 500.0, False),  # nor a server gone
    ],
)
def test_the_budget_goal_looks_at_the_budgeted_bursts_only(statuses: list, peak: float, met: bool) -> None:
    goal = budget_goal([_burst(600, statuses, peak), _burst(None, [500] * 8, 900.0)])  # unbudgeted: for comparison
    assert (goal["met"], goal["worst_peak_mb"]) == (met, peak)


def test_the_budget_section_has_one_row_per_burst() -> None:
    basis = {"ready_mb": 114.0, "after_one_mb": 191.0, "after_two_at_once_mb": 247.0, "request_overhead_mb": 11.5}
    bursts = [_burst(600, [200] * 7 + [429], 512.0), _burst(None, [200] * 8, 717.0)]
    results = {"size": "7302x5476", "pixels": 39985752, "requests": 8, "budget_mb": 600, "basis": basis,
               "bursts": bursts, "goal": budget_goal(bursts), "load_average": (1.5, 1.0, 1.0)}
    lines = budget_markdown(results).splitlines()
    assert "| TIFF LZW | 600 | 95.0 | 346 | 7x 200, 1x 429 | 114 | 512 | 60 |" in lines
    assert "| TIFF LZW | none (default) | 95.0 |  | 8x 200 | 114 | 717 | 60 |" in lines
    assert any(line.startswith("Goal, with the budget: every answer 200 or 429 and peak RSS <= 650 MB: met (worst "
                               "peak 512 MB") for line in lines)


def test_corpus_memory_lists_the_files_of_the_corpora_that_exist(tmp_path: Path) -> None:
    from bench.corpus_memory import corpus_files

    (tmp_path / "a" / "deep").mkdir(parents=True)
    for name in ("a/x.png", "a/deep/y.gif", "b.jpg"):
        (tmp_path / name).write_bytes(b"0")
    found = corpus_files([tmp_path / "a", tmp_path / "missing", tmp_path])
    assert [path.relative_to(tmp_path).as_posix() for path in found] == [
        "a/deep/y.gif", "a/x.png", "a/deep/y.gif", "a/x.png", "b.jpg"]
