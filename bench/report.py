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

BEGIN = "<!-- bench:begin (written by `make bench`; edit outside these markers) -->"
END = "<!-- bench:end -->"


@dataclass(frozen=True)
class Goal:
    """``measured <= limit`` (``at_least``: ``measured >= limit``), where ``measured`` is ``results`` along ``path``."""

    name: str
    path: tuple[str, ...]
    limit: float
    unit: str
    at_least: bool = False


GOALS = (  # issue 3, section 6, then issue 11
    Goal("1080p end to end in-process / model alone", ("ratios", "inprocess_1080p"), 1.5, "x"),
    Goal("1080p end to end over HTTP / model alone", ("ratios", "http_1080p"), 1.8, "x"),
    Goal("start to first answer, uvicorn (HTTP)", ("start_to_first_answer_s", "http_1080p"), 1.0, "s"),
    Goal("peak RSS serving 1080p", ("peak_rss_mb", "worst_1080p"), 200.0, "MB"),
    Goal("peak RSS serving 12 MP", ("peak_rss_mb", "worst_12MP"), 500.0, "MB"),
    Goal("int8 model alone, faster than fp32 by", ("model_alone", "int8_speedup"), 1.5, "x", at_least=True),
    Goal("1080p end to end minus model, in-process", ("overhead_ms", "inprocess_1080p"), 30.0, "ms"),
    Goal("1080p end to end minus model, over HTTP", ("overhead_ms", "http_1080p"), 45.0, "ms"),
    Goal("1080p end to end, the seed's fp32 path / ours", ("seed_path", "speedup_1080p"), 4.0, "x", at_least=True),
    Goal("HTTP function init (import the entry, load the model)", ("cold_start", "api_init_s"), 0.45, "s"),
    Goal("HTTP function init + first 1080p answer", ("cold_start", "api_init_and_first_event_s"), 0.7, "s"),
    Goal("upload function init (import the entry, load the model)", ("cold_start", "upload_init_s"), 0.35, "s"),
    Goal("idle RSS after a history of large images, over post-warm-up", ("memory", "history_growth_pct"), 10.0, "%"),
    Goal("peak bytes per decoded pixel at 40 MP, worst format", ("memory", "worst_bytes_per_pixel"), 6.0, "B/px"),
    Goal("8 concurrent 40 MP requests, MEMORY_BUDGET_MB=600: peak RSS", ("memory", "budget_worst_peak_mb"), 650.0,
         "MB"),
    Goal("... and answers other than 200 or 429", ("memory", "budget_answers_not_200_or_429"), 0.0, ""),
)


def evaluate(results: dict[str, Any], goals: tuple[Goal, ...] | list[Goal] = GOALS) -> list[dict[str, Any]]:
    """One row per goal: measured value, limit, met, and by how much it misses (0 when met)."""
    rows = []
    for goal in goals:
        measured: Any = results
        for key in goal.path:
            measured = measured[key]
        over = max(0.0, goal.limit - measured if goal.at_least else measured - goal.limit)
        rows.append({"goal": goal.name, "measured": round(measured, 3), "limit": goal.limit, "unit": goal.unit,
                     "met": over == 0.0, "at_least": goal.at_least, "over_by": round(over, 3),
                     "over_by_pct": round(100.0 * over / goal.limit, 1) if goal.limit else None})
    return rows


def write_json(results: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(results, indent=2, sort_keys=False) + "\n")


def markdown(results: dict[str, Any]) -> str:
    """This run's tables: goals, end-to-end times, stage breakdown, memory and cold start."""
    machine = results["machine"]
    lines = [
        f"Command: `{results['command']}` ({results['finished_at']}, commit {machine['git_commit']}, "
        f"{results['wall_s']:.0f} s).",
        f"Machine: {machine['cpu']}, {machine['affinity_cpus']} CPUs usable, 1-minute load "
        f"{machine['load_average_1m_at_start']:.2f} at start; Python {machine['python']}, "
        f"onnxruntime {machine['packages']['onnxruntime']}.",
        "",
        "| goal | measured | goal | met | missed by |",
        "| --- | --- | --- | --- | --- |",
    ]
    for row in results["goals"]:
        share = "" if row["over_by_pct"] is None else f" ({row['over_by_pct']:.0f}%)"
        over = "" if row["met"] else f"{row['over_by']:.2f} {row['unit']}{share}"
        limit = f"{'>=' if row.get('at_least') else '<='} {row['limit']:g} {row['unit']}"
        lines.append(f"| {row['goal']} | {row['measured']:.2f} {row['unit']} | {limit} | "
                     f"{'yes' if row['met'] else '**no**'} | {over} |")
    return "\n".join(lines + ["", *_model_table(results), "", *_timing_table(results), "", *_stage_table(results), "",
                              *_seed_table(results), "", *_process_table(results), "", *results.get("sections", [])])


def _model_table(results: dict[str, Any]) -> list[str]:
    models = results["model_alone"]
    lines = ["| model alone (1x3x256x256, interleaved) | median ms (q1-q3) |", "| --- | --- |"]
    for name in ("int8", "fp32"):
        run = models[name]
        lines.append(f"| {name} (`{models['files'][name]}`) | {run['median']:.1f} ({run['q1']:.1f}-{run['q3']:.1f}) |")
    return lines + [f"| int8 speed-up | {models['int8_speedup']:.2f}x |"]


def _seed_table(results: dict[str, Any]) -> list[str]:
    seed = results["seed_path"]
    lines = ["| 1080p, same image, same run | median ms | peak RSS MB | speed-up of ours |",
             "| --- | --- | --- | --- |",
             f"| ours, in-process (bytes -> PNG overlay, int8) | {seed['ours_ms']:.0f} | "
             f"{seed['ours_peak_rss_mb']:.0f} | |",
             f"| the seed's path, PyTorch eager fp32 | {seed['fp32_ms']:.0f} | {seed['fp32_peak_rss_mb']:.0f} | "
             f"{seed['speedup_1080p']:.2f}x |"]
    if seed.get("fp16_ms") is not None:
        lines.append(f"| the seed's path, PyTorch eager fp16 on the CPU (once) | {seed['fp16_ms']:.0f} | "
                     f"{seed['fp16_peak_rss_mb']:.0f} | {seed['fp16_ms'] / seed['ours_ms']:.1f}x |")
    return lines


def _timing_table(results: dict[str, Any]) -> list[str]:
    lines = ["| path | image | median ms (q1-q3) | model alone, same rounds | ratio | end to end minus model ms "
             "| PNG MB |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for run in results["end_to_end"].values():
        total, model = run["total_ms"], run["model_ms"]
        lines.append(f"| {run['path']} | {run['image']} | {total['median']:.0f} ({total['q1']:.0f}-{total['q3']:.0f})"
                     f" | {model['median']:.0f} | {run['ratio_to_model']:.2f}x | {run['overhead_ms']:.1f} "
                     f"| {run['png_mb']:.2f} |")
    return lines


def _stage_table(results: dict[str, Any]) -> list[str]:
    runs = results["end_to_end"]
    stages = sorted({stage for run in runs.values() for stage in run["stages_ms"]}, key=_stage_order)
    lines = ["| stage (median ms) | " + " | ".join(runs) + " |", "| --- |" + " --- |" * len(runs)]
    for stage in stages:
        cells = [f"{run['stages_ms'][stage]:.1f}" if stage in run["stages_ms"] else "" for run in runs.values()]
        lines.append(f"| {stage} | " + " | ".join(cells) + " |")
    return lines


def _stage_order(stage: str) -> int:
    order = ["wait", "decode", "resize", "infer", "upsample", "blend", "encode", "http_other"]
    return order.index(stage) if stage in order else len(order)


def _process_table(results: dict[str, Any]) -> list[str]:
    lines = ["| fresh process | image | start to first answer s | of which the first request s | peak RSS MB "
             "| peak RSS MB before the first request |", "| --- | --- | --- | --- | --- | --- |"]
    for run in results["fresh_processes"].values():
        idle = run.get("peak_rss_mb_before_first_request")
        idle_cell = "" if idle is None else f"{idle:.0f}"
        lines.append(f"| {run['kind']} | {run['image']} | {run['start_to_first_answer_s']:.2f} | "
                     f"{run['first_request_s']:.2f} | {run['peak_rss_mb']:.0f} | {idle_cell} |")
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

