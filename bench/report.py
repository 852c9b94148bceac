"""Goals, and the results written where people read them: bench/results.json and docs/benchmarks.md.

The docs page is half prose (decisions, what was tried) and half this run's numbers;
``update_docs`` rewrites only the part between ``BEGIN`` and ``END`` so the prose
survives every ``make bench``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.quiet import LOAD_LIMIT, OTHERS_LIMIT_CORES

BEGIN = "<!-- bench:begin (written by `make bench`; edit outside these markers) -->"
END = "<!-- bench:end -->"


TRIED = Path(__file__).with_name("tried.json")  # goal id -> what was tried for it, filled in by hand
LOADED = "**loaded**"  # the mark of a figure taken with the machine under load (bench.quiet.is_loaded)


@dataclass(frozen=True)
class Goal:
    """``measured <= limit`` (``at_least``: ``measured >= limit``), where ``measured`` is ``results`` along ``path``.

    ``floor``: where ``results`` holds a line saying what the figure is measured against (``goal_floors``);
    ``sections``: the sections of ``make bench`` (``results["load"]``) it was measured in.
    """

    name: str
    path: tuple[str, ...]
    limit: float
    unit: str
    at_least: bool = False
    floor: tuple[str, ...] | None = None
    sections: tuple[str, ...] = ()

    @property
    def id(self) -> str:
        """Its key in bench/tried.json."""
        return ".".join(self.path)


GOALS = (  # issue 22 (the work around the model, cold start, memory), then the goals of issues 3 and 11 it keeps
    Goal("1080p PNG overlay in-process / model alone", ("ratios", "png_1080p"), 1.4, "x",
         floor=("goal_floors", "png_1080p"), sections=("1080p",)),
    Goal("1080p JPEG overlay in-process / model alone", ("ratios", "jpeg_1080p"), 1.2, "x",
         floor=("goal_floors", "jpeg_1080p"), sections=("1080p",)),
    Goal("1080p output=mask in-process / model alone", ("ratios", "mask_1080p"), 1.15, "x",
         floor=("goal_floors", "mask_1080p"), sections=("1080p",)),
    Goal("1080p output=json in-process / model alone", ("ratios", "json_1080p"), 1.15, "x",
         floor=("goal_floors", "json_1080p"), sections=("1080p",)),
    Goal("1080p PNG overlay, HTTP loopback minus in-process", ("http_minus_inprocess_ms", "png_1080p"), 8.0, "ms",
         floor=("goal_floors", "http_png_1080p"), sections=("1080p",)),
    Goal("HTTP function init / its floor", ("cold_start", "api_init_to_floor"), 1.15, "x",
         floor=("goal_floors", "api_init"), sections=("coldstart",)),
    Goal("upload function init / its floor", ("cold_start", "upload_init_to_floor"), 1.1, "x",
         floor=("goal_floors", "upload_init"), sections=("coldstart",)),
    Goal("peak RSS serving 1080p", ("peak_rss_mb", "worst_1080p"), 190.0, "MB", sections=("1080p", "children")),
    Goal("peak RSS over a varied corpus, default settings", ("memory", "corpus_peak_rss_mb"), 400.0, "MB",
         floor=("goal_floors", "corpus"), sections=("corpus",)),
    *(Goal(f"peak bytes per decoded pixel at 40 MP, {name}", ("memory", "bytes_per_pixel_by_format", name), 6.0,
           "B/px", sections=("bytes_per_pixel",)) for name in ("JPEG q90", "PNG", "TIFF LZW")),
    Goal("start to first answer, uvicorn (HTTP)", ("start_to_first_answer_s", "http_1080p"), 1.0, "s",
         sections=("1080p",)),
    Goal("peak RSS serving 12 MP", ("peak_rss_mb", "worst_12MP"), 500.0, "MB", sections=("12MP", "children")),
    Goal("int8 model alone, faster than fp32 by", ("model_alone", "int8_speedup"), 1.5, "x", at_least=True,
         sections=("models",)),
    Goal("1080p end to end, the seed's fp32 path / ours", ("seed_path", "speedup_1080p"), 4.0, "x", at_least=True,
         sections=("1080p", "seed")),
    Goal("idle RSS after a history of large images, over post-warm-up", ("memory", "history_growth_pct"), 10.0, "%",
         sections=("history",)),
    Goal("8 concurrent 40 MP requests, MEMORY_BUDGET_MB=600: peak RSS", ("memory", "budget_worst_peak_mb"), 650.0,
         "MB", sections=("budget",)),
    Goal("... and answers other than 200 or 429", ("memory", "budget_answers_not_200_or_429"), 0.0, "",
         sections=("budget",)),
)


def lookup(results: dict[str, Any], path: tuple[str, ...]) -> Any:
    """``results`` along ``path``; None where a key is missing (a section that did not run)."""
    found: Any = results
    for key in path:
        if not isinstance(found, dict) or key not in found:
            return None
        found = found[key]
    return found


def evaluate(results: dict[str, Any], goals: tuple[Goal, ...] | list[Goal] = GOALS,
             tried: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """One row per goal: measured value (None: not measured), limit, met, by how much it misses (0 when met), what
    it is measured against, the load of its sections, and what was tried."""
    tried = read_tried() if tried is None else tried
    rows = []
    for goal in goals:
        measured = lookup(results, goal.path)
        over = None if measured is None else max(0.0, goal.limit - measured if goal.at_least else measured - goal.limit)
        loads = [results.get("load", {}).get(section) for section in goal.sections]
        rows.append({"goal": goal.name, "id": goal.id, "measured": None if measured is None else round(measured, 3),
                     "limit": goal.limit, "unit": goal.unit, "at_least": goal.at_least,
                     "met": None if over is None else over == 0.0, "over_by": None if over is None else round(over, 3),
                     "over_by_pct": round(100.0 * over / goal.limit, 1) if goal.limit and over is not None else None,
                     "floor": lookup(results, goal.floor) if goal.floor else None,
                     "loaded": any(load["loaded"] for load in loads if load),
                     "tried": tried.get(goal.id, "to be filled")})
    return rows


def read_tried(path: Path = TRIED) -> dict[str, str]:
    """bench/tried.json: what was tried per goal id (``Goal.id``)."""
    return json.loads(path.read_text()) if path.exists() else {}


def write_json(results: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(results, indent=2, sort_keys=False) + "\n")


def markdown(results: dict[str, Any]) -> str:
    """This run's tables: goals, the load per section, model, end to end, stages beside their floors, the seed's path,
    fresh processes, then the sections of the side benchmarks (cold start, memory)."""
    machine = results["machine"]
    lines = [
        f"Command: `{results['command']}` ({results['finished_at']}, commit {machine['git_commit']}, "
        f"{results['wall_s']:.0f} s).",
        f"Machine: {machine['cpu']}, {machine['affinity_cpus']} CPUs usable, 1-minute load "
        f"{machine['load_average_1m_at_start']:.2f} at start; Python {machine['python']}, "
        f"onnxruntime {machine['packages']['onnxruntime']}.",
        "",
        *_goal_table(results["goals"]),
        "", *_load_table(results),
    ]
    tables = [_model_table, _timing_table, _stage_table, _floor_tables, _seed_table, _process_table]
    for table in tables:
        found = table(results)
        if found:
            lines += ["", *found]
    return "\n".join([*lines, "", *results.get("sections", [])])


def _goal_table(rows: list[dict[str, Any]]) -> list[str]:
    lines = ["| goal | measured | against | goal | met | missed by | load | what was tried |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for row in rows:
        limit = f"{'>=' if row.get('at_least') else '<='} {row['limit']:g} {row['unit']}"
        if row["measured"] is None:
            lines.append(f"| {row['goal']} | not measured | {row['floor'] or ''} | {limit} | | | | {row['tried']} |")
            continue
        share = "" if row["over_by_pct"] is None else f" ({row['over_by_pct']:.0f}%)"
        over = "" if row["met"] else f"{row['over_by']:.2f} {row['unit']}{share}"
        lines.append(f"| {row['goal']} | {row['measured']:.2f} {row['unit']} | {row['floor'] or ''} | {limit} | "
                     f"{'yes' if row['met'] else '**no**'} | {over} | {LOADED if row['loaded'] else 'quiet'} | "
                     f"{row['tried']} |")
    return lines


def _load_table(results: dict[str, Any]) -> list[str]:
    """Each section's wait for a quiet machine and its load; ``loaded`` marks the figures taken under load."""
    log = results.get("load", {})
    lines = [f"Load: before each section `make bench` waits up to {results.get('wait_limit_s', 0):g} s for the "
             f"1-minute load to drop under {LOAD_LIMIT:g} (2 cores). A section is {LOADED} when the load was still "
             f"at or over {LOAD_LIMIT:g} as it began (the wait gave up) or other processes used over "
             f"{OTHERS_LIMIT_CORES:g} of a core during it (/proc/stat less this run's own CPU); the load after a "
             "section counts the section's own work.", "",
             "| section | waited s | load before | load after | others' CPU, cores | wall s | figures |",
             "| --- | ---: | ---: | ---: | ---: | ---: | --- |"]
    for name, load in log.items():
        waited = f"{load['waited_s']:.0f}" + (" (gave up)" if load["gave_up_waiting"] else "")
        lines.append(f"| {name} | {waited} | {load['load_before']:.2f} | {load['load_after']:.2f} | "
                     f"{load['others_cores']:.2f} | {load['wall_s']:.0f} | {LOADED if load['loaded'] else 'quiet'} |")
    return lines


def _mark(results: dict[str, Any], section: str) -> str:
    load = results.get("load", {}).get(section)
    return f" {LOADED}" if load and load["loaded"] else ""


def _model_table(results: dict[str, Any]) -> list[str]:
    models = results.get("model_alone")
    if not models:
        return []
    lines = [f"| model alone (1x3x256x256, interleaved){_mark(results, 'models')} | median ms (q1-q3) |",
             "| --- | --- |"]
    for name in ("int8", "fp32"):
        run = models[name]
        lines.append(f"| {name} (`{models['files'][name]}`) | {run['median']:.1f} ({run['q1']:.1f}-{run['q3']:.1f}) |")
    return lines + [f"| int8 speed-up | {models['int8_speedup']:.2f}x |"]


def _seed_table(results: dict[str, Any]) -> list[str]:
    seed = results.get("seed_path")
    if not seed:
        return []
    lines = [f"| 1080p, same image, same run{_mark(results, 'seed')} | median ms | peak RSS MB | speed-up of ours |",
             "| --- | --- | --- | --- |",
             f"| ours, in-process (bytes -> PNG overlay, int8) | {seed['ours_ms']:.0f} | "
             f"{_or_blank(seed['ours_peak_rss_mb'], '.0f')} | |",
             f"| the seed's path, PyTorch eager fp32 | {seed['fp32_ms']:.0f} | {seed['fp32_peak_rss_mb']:.0f} | "
             f"{seed['speedup_1080p']:.2f}x |"]
    if seed.get("fp16_ms") is not None:
        lines.append(f"| the seed's path, PyTorch eager fp16 on the CPU (once) | {seed['fp16_ms']:.0f} | "
                     f"{seed['fp16_peak_rss_mb']:.0f} | {seed['fp16_ms'] / seed['ours_ms']:.1f}x |")
    return lines


def _or_blank(value: float | None, spec: str) -> str:
    return "" if value is None else format(value, spec)


def _timing_table(results: dict[str, Any]) -> list[str]:
    runs = results.get("end_to_end", {})
    if not runs:
        return []
    lines = ["| path | output | image | median ms (q1-q3) | model alone, same rounds | ratio | around the model ms "
             "(end to end minus model) | result MB |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for run in runs.values():
        total, model = run["total_ms"], run["model_ms"]
        lines.append(f"| {run['path']} | {run['output']} | {run['image']}{_mark(results, run['image'])} | "
                     f"{total['median']:.0f} ({total['q1']:.0f}-{total['q3']:.0f}) | {model['median']:.0f} | "
                     f"{run['ratio_to_model']:.2f}x | {run['overhead_ms']:.1f} | {run['result_mb']:.2f} |")
    differences = [f"{label} {measured['http_minus_inprocess_paired_ms']:.1f} ms" + _seed_client(measured)
                   for label, measured in results.get("around_model", {}).items()
                   if measured["http_minus_inprocess_ms"] is not None]
    if differences:
        lines += ["", "PNG overlay over HTTP loopback (one keep-alive connection) minus in-process, median of the "
                  "differences round by round: " + ", ".join(differences) + "."]
    return lines


def _seed_client(measured: dict[str, Any]) -> str:
    difference = measured.get("seed_client_minus_inprocess_ms")
    return "" if difference is None else f" (the seed's client, requests.post: {difference:.1f} ms, medians)"


def _stage_table(results: dict[str, Any]) -> list[str]:
    runs = results.get("end_to_end", {})
    if not runs:
        return []
    stages = sorted({stage for run in runs.values() for stage in run["stages_ms"]}, key=_stage_order)
    lines = ["| stage (median ms) | " + " | ".join(runs) + " |", "| --- |" + " --- |" * len(runs)]
    for stage in stages:
        cells = [f"{run['stages_ms'][stage]:.1f}" if stage in run["stages_ms"] else "" for run in runs.values()]
        lines.append(f"| {stage} | " + " | ".join(cells) + " |")
    return lines


def _stage_order(stage: str) -> int:
    order = ["wait", "decode", "resize", "infer", "upsample", "blend", "mask", "cutout", "json", "encode",
             "http_other"]
    return order.index(stage) if stage in order else len(order)


def _floor_tables(results: dict[str, Any]) -> list[str]:
    """Per image size: each stage beside its floor (``bench.floors``), medians of the same rounds."""
    lines: list[str] = []
    for label, measured in results.get("around_model", {}).items():
        floors = measured["floors_ms"]
        outputs = measured["outputs"]
        lines += [f"Stages beside their floors, {label}{_mark(results, label)}: median ms of {measured['rounds']} "
                  "rounds, stage / floor in brackets (banded stages run on every core, a floor on one).", "",
                  "| stage | floor: the call alone | floor ms | " + " | ".join(outputs) + " |",
                  "| --- | --- | ---: |" + " ---: |" * len(outputs)]
        by_floor: dict[tuple[str, str, str], dict[str, dict[str, Any]]] = {}
        for row in measured["stage_floors"]:
            by_floor.setdefault((row["stage"], row["floor"], row["call"]), {})[row["output"]] = row
        for (stage, floor, call), cells in by_floor.items():
            shown = [_stage_cell(cells[name]) if name in cells else "" for name in outputs]
            lines.append(f"| {stage} | `{call}` | {floors[floor]['median']:.1f} | " + " | ".join(shown) + " |")
        lines.append("")
    return lines[:-1]


def _stage_cell(row: dict[str, Any]) -> str:
    ratio = "" if row["ratio"] is None else f" ({row['ratio']:.2f}x)"
    return f"{row['stage_ms']:.1f}{ratio}"


def _process_table(results: dict[str, Any]) -> list[str]:
    fresh = results.get("fresh_processes", {})
    if not fresh:
        return []
    lines = ["| fresh process | image | start to first answer s | of which the first request s | peak RSS MB "
             "| peak RSS MB before the first request |", "| --- | --- | --- | --- | --- | --- |"]
    for key, run in fresh.items():
        idle = run.get("peak_rss_mb_before_first_request")
        section = run["image"] if key.startswith("http_") else "children"
        lines.append(f"| {run['kind']}{_mark(results, section)} | {run['image']} | "
                     f"{run['start_to_first_answer_s']:.2f} | {run['first_request_s']:.2f} | {run['peak_rss_mb']:.0f}"
                     f" | {_or_blank(idle, '.0f')} |")
    return lines


def update_docs(path: Path, section: str, name: str = "") -> None:
    """Replaces the text between the markers of ``name`` (appends the section if the page has none).

    ``name`` "" is ``make bench``'s own section; other benchmarks name theirs (``bench.formats``: "formats").
    """
    begin, end = (BEGIN, END) if not name else (f"<!-- bench:{name}:begin (written by `python -m bench.{name}`) -->",
                                                f"<!-- bench:{name}:end -->")
    text = path.read_text() if path.exists() else ""
    block = f"{begin}\n{section}\n{end}"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        text = head + block + rest.split(end, 1)[1]
    else:
        text = f"{text.rstrip()}\n\n{block}\n" if text else f"# Benchmarks\n\n{block}\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def publish(results: dict[str, Any], section: str, results_path: Path, name: str, write: bool = True) -> None:
    """A side benchmark's ending: its JSON and its named section of docs/benchmarks.md (unless ``write`` is
    False), then the section on stdout."""
    if write:
        write_json(results, results_path)
        update_docs(results_path.parents[1] / "docs" / "benchmarks.md", section, name=name)
    print(section)  # noqa: T201

