"""The benchmark's measuring rules (issue 22): waiting for a quiet machine, interleaved rounds, floors, goals.

No timing is asserted: these are the rules that turn timings into the report's figures.
"""

from __future__ import annotations

import io
import json
import zlib
from pathlib import Path

import pytest
from PIL import Image

from app.core.inference.segmenter import open_session
from app.core.resources.cpus import usable_cpus
from bench import coldstart, corpus_memory, quiet
from bench.floors import FLOOR_OF_STAGE, decode, decode_view, deflate, jpeg_save, stage_rows, upsample
from bench.measure import interleaved_many, paired_median
from bench.photo import photo_jpeg
from bench.report import GOALS, LOADED, TRIED, Goal, evaluate, markdown, read_tried


class FakeMachine:
    """A clock that moves only when slept on, and a 1-minute load that follows a script of readings."""

    def __init__(self, loads: list[float]) -> None:
        self.now, self.loads, self.sleeps = 0.0, loads, []

    def loadavg(self) -> tuple[float, float, float]:
        load = self.loads.pop(0) if len(self.loads) > 1 else self.loads[0]
        return load, load, load

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def _wait(machine: FakeMachine, wait_limit_s: float) -> dict:
    return quiet.wait_for_quiet(wait_limit_s, limit=1.0, poll_s=5.0, loadavg=machine.loadavg, clock=machine.clock,
                                sleep=machine.sleep)


def test_a_quiet_machine_is_not_waited_for() -> None:
    machine = FakeMachine([0.4])
    assert _wait(machine, 120.0) == {"load_1m": 0.4, "waited_s": 0.0, "gave_up": False}
    assert machine.sleeps == []


def test_the_wait_polls_until_the_load_drops_under_the_limit() -> None:
    machine = FakeMachine([2.1, 1.6, 1.0, 0.9])  # exactly the limit is not under it
    assert _wait(machine, 120.0) == {"load_1m": 0.9, "waited_s": 15.0, "gave_up": False}
    assert machine.sleeps == [5.0, 5.0, 5.0]


def test_the_wait_gives_up_at_its_bound_and_never_sleeps_past_it() -> None:
    machine = FakeMachine([3.0])
    assert _wait(machine, 12.0) == {"load_1m": 3.0, "waited_s": 12.0, "gave_up": True}
    assert machine.sleeps == [5.0, 5.0, 2.0]


def test_no_wait_at_all_reads_the_load_once() -> None:
    machine = FakeMachine([3.0])
    assert _wait(machine, 0.0)["gave_up"] is True
    assert machine.sleeps == []


@pytest.mark.parametrize(
    ("load_before", "others", "loaded"),
    [(0.3, 0.0, False), (0.99, 0.5, False), (1.0, 0.0, True), (0.2, 0.51, True)],
)
def test_a_section_is_loaded_by_the_load_it_began_with_or_by_others_cpu(load_before: float, others: float,
                                                                         loaded: bool) -> None:
    assert quiet.is_loaded({"load_before": load_before, "others_cores": others}) is loaded


def test_others_cpu_is_the_busy_time_this_run_did_not_use() -> None:
    assert quiet.others_cores(busy_s=30.0, own_s=20.0, wall_s=20.0) == 0.5
    assert quiet.others_cores(busy_s=19.0, own_s=20.0, wall_s=20.0) == 0.0  # own time counted late: never negative
    assert quiet.others_cores(busy_s=1.0, own_s=0.0, wall_s=0.0) == 0.0


def test_busy_cpu_leaves_out_idle_and_iowait(tmp_path: Path) -> None:
    stat = tmp_path / "stat"
    tick = quiet.os.sysconf("SC_CLK_TCK")
    # user nice system idle iowait irq softirq steal guest guest_nice
    stat.write_text(f"cpu  {tick} {tick} {tick} {100 * tick} {50 * tick} {tick} {tick} {tick} 0 0\ncpu0 1 2 3\n")
    assert quiet.busy_cpu_s(str(stat)) == pytest.approx(6.0)


def test_a_section_records_its_load_and_wait() -> None:
    sections = quiet.Sections(wait_limit_s=0.0)
    with sections.run("models"):
        pass
    record = sections.log["models"]
    assert set(record) == {"load_before", "load_after", "waited_s", "gave_up_waiting", "wall_s", "others_cores",
                           "loaded"}
    assert record["waited_s"] == 0.0 and record["others_cores"] >= 0.0


def test_interleaved_rounds_time_each_work_once_per_round_in_order() -> None:
    calls: list[str] = []
    works = {name: (lambda name=name: calls.append(name)) for name in ("model", "png", "floor")}

    timed = interleaved_many(works, rounds=2, warmup=1)

    assert calls == ["model", "png", "floor"] * 3
    assert {name: len(samples) for name, samples in timed.items()} == {"model": 2, "png": 2, "floor": 2}


def test_a_paired_median_is_the_median_of_round_by_round_differences() -> None:
    assert paired_median([10.0, 30.0, 12.0], [5.0, 5.0, 10.0]) == 5.0  # the medians' difference would be 7


def test_stage_rows_set_each_stage_beside_its_floor() -> None:
    stages = {"png": {"decode": 12.0, "encode": 20.0, "infer": 60.0}, "mask": {"decode": 4.0, "mask": 1.0}}
    floors = {"decode": 10.0, "decode_view": 0.0, "deflate_overlay": 25.0, "model": 60.0}

    rows = stage_rows(stages, floors)

    assert [(row["stage"], row["output"], row["floor"], row["ratio"]) for row in rows] == [
        ("decode", "png", "decode", 1.2), ("decode", "mask", "decode_view", None),  # a zero floor: no ratio
        ("infer", "png", "model", 1.0), ("encode", "png", "deflate_overlay", 0.8)]


def test_every_output_has_a_floor_for_the_model_and_the_upsample() -> None:
    for stage in ("infer", "upsample", "resize", "decode"):
        assert set(FLOOR_OF_STAGE[stage]) == {"png", "jpeg", "mask", "json", "http_png"}, stage


def test_the_floors_do_their_library_call_on_the_pixels_given() -> None:
    data = photo_jpeg(1024, 768)

    assert decode(data).size == (1024, 768)
    assert decode_view(data, (256, 256)).size == (512, 384)  # DCT scaling 1/2: the smallest that covers 256
    assert zlib.decompress(deflate(b"raw pixels" * 100)) == b"raw pixels" * 100
    assert Image.open(io.BytesIO(jpeg_save(decode(data)))).format == "JPEG"
    assert upsample(Image.new("F", (256, 256), 0.5), (1024, 768)).size == (1024, 768)


def test_the_cold_start_floor_opens_the_session_as_the_service_does(bundled_model_path: Path) -> None:
    floor = coldstart.floor_session(bundled_model_path).get_session_options()
    served = open_session(bundled_model_path, usable_cpus()).get_session_options()

    for name in ("intra_op_num_threads", "inter_op_num_threads", "execution_mode", "enable_mem_pattern",
                 "enable_cpu_mem_arena", "graph_optimization_level"):
        assert getattr(floor, name) == getattr(served, name), name
    for key in ("session.intra_op.allow_spinning", "session.inter_op.allow_spinning"):
        assert floor.get_session_config_entry(key) == served.get_session_config_entry(key), key


def test_a_goal_not_measured_is_neither_met_nor_missed() -> None:
    goal = Goal("corpus RSS", ("memory", "corpus_peak_rss_mb"), 400.0, "MB", sections=("corpus",))

    [row] = evaluate({"memory": {}}, [goal], tried={})

    assert (row["measured"], row["met"], row["over_by"], row["tried"]) == (None, None, None, "to be filled")


def test_a_goal_carries_its_floor_line_its_sections_load_and_what_was_tried() -> None:
    goal = Goal("PNG / model", ("ratios", "png_1080p"), 1.4, "x", floor=("goal_floors", "png_1080p"),
                sections=("1080p",))
    results = {"ratios": {"png_1080p": 1.62}, "goal_floors": {"png_1080p": "model alone 67.7 ms"},
               "load": {"1080p": {"loaded": True}}}

    [row] = evaluate(results, [goal], tried={"ratios.png_1080p": "bands"})

    assert (row["met"], row["over_by"], row["over_by_pct"]) == (False, 0.22, 15.7)
    assert (row["floor"], row["loaded"], row["tried"]) == ("model alone 67.7 ms", True, "bands")


def test_what_was_tried_has_one_entry_per_goal() -> None:
    assert set(read_tried(TRIED)) == {goal.id for goal in GOALS}
    assert len({goal.id for goal in GOALS}) == len(GOALS)


def test_the_report_marks_loaded_figures_and_goals_not_measured() -> None:
    load = {"load_before": 2.5, "load_after": 2.9, "waited_s": 10.0, "gave_up_waiting": True, "wall_s": 30.0,
            "others_cores": 0.9, "loaded": True}
    results = {"command": "make bench", "finished_at": "now", "wall_s": 60.0, "wait_limit_s": 10.0,
               "machine": {"git_commit": "abc", "cpu": "cpu", "affinity_cpus": 2, "load_average_1m_at_start": 2.5,
                           "python": "3.11", "packages": {"onnxruntime": "1"}},
               "load": {"models": load},
               "model_alone": {"int8": {"median": 60.0, "q1": 59.0, "q3": 61.0},
                               "fp32": {"median": 130.0, "q1": 129.0, "q3": 131.0}, "int8_speedup": 2.17,
                               "files": {"int8": "int8.onnx", "fp32": "fp32.onnx"}}}
    results["goals"] = evaluate({**results, "model_alone": {"int8_speedup": 2.17}}, tried={})

    lines = markdown(results).splitlines()

    assert f"| models | 10 (gave up) | 2.50 | 2.90 | 0.90 | 30 | {LOADED} |" in lines
    speed_up = f"| int8 model alone, faster than fp32 by | 2.17 x |  | >= 1.5 x | yes |  | {LOADED} | to be filled |"
    assert speed_up in lines
    assert "| peak RSS serving 1080p | not measured |  | <= 190 MB | | | | to be filled |" in lines
    assert f"| model alone (1x3x256x256, interleaved) {LOADED} | median ms (q1-q3) |" in lines


def test_the_corpus_raises_the_upload_limit_only_for_a_file_over_it(tmp_path: Path) -> None:
    small, large = tmp_path / "small.png", tmp_path / "large.tif"
    small.write_bytes(b"0" * 10)
    assert corpus_memory.upload_limit([small]) == {}
    with open(large, "wb") as sparse:
        sparse.truncate(60_000_000)
    assert corpus_memory.upload_limit([small, large]) == {"MAX_UPLOAD_BYTES": "60000001"}


def test_the_tried_file_is_json_of_strings() -> None:
    assert all(isinstance(text, str) and text for text in json.loads(TRIED.read_text()).values())
