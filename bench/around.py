"""The work around the model at one image size, in one loop of interleaved rounds (issue 22, section 1).

Each round times, in this order: the model alone; the whole render in this process
(``app.core.pipeline.render``, what POST /predict runs) to each output: the PNG overlay,
the JPEG overlay, the mask and the JSON document; the PNG overlay over HTTP loopback by each client
in ``posts`` (``bench.server``: a real uvicorn); then each stage's floor
(``bench.floors``). So every ratio's two medians, end to end / model alone, HTTP minus
in-process and stage / floor, come from the same rounds and share their noise.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from app.core.options import RenderOptions
from app.core.pipeline import render
from bench.floors import prepare, stage_floors, stage_rows
from bench.inprocess import Pipeline
from bench.measure import interleaved_many, paired_median, stage_medians, summary

WARMUP = 2  # untimed rounds first: onnxruntime and the allocator settle on the first runs
OUTPUTS: dict[str, tuple[str, dict[str, str]]] = {  # in-process outputs: their name and the options they change
    "png": ("PNG overlay", {}),
    "jpeg": ("JPEG overlay", {"format": "jpeg"}),
    "mask": ("mask (PNG)", {"output": "mask"}),
    "json": ("JSON document", {"output": "json"}),
}
HTTP = "http_png"  # the PNG overlay over HTTP loopback, the leanest client (bench.server.KeepAliveClient): the goal's
HTTP_SEED_CLIENT = "http_png_seed_client"  # the same by the seed's client (requests.post): reported beside it
Post = Callable[[], tuple[dict[str, float], int]]  # one POST: the answer's Server-Timing stages and its size


def measure(pipeline: Pipeline, model: Callable[[], object], model_path: Path, data: bytes, label: str,
            rounds: int, warmup: int = WARMUP, posts: dict[str, Post] | None = None) -> dict[str, Any]:
    """The interleaved rounds at one size: every output's run, the model alone, each HTTP client's PNG overlay
    (``posts``: ``HTTP`` and ``HTTP_SEED_CLIENT``), the floors and the rows that set each stage beside its floor."""
    posts = posts or {}
    answers: dict[str, list[tuple[dict[str, float], int]]] = {name: [] for name in (*OUTPUTS, *posts)}
    works: dict[str, Callable[[], object]] = {"model": model}
    for name, (_, update) in OUTPUTS.items():
        works[name] = _render_call(pipeline, data, pipeline.options.model_copy(update=update), answers[name])
    for name, post in posts.items():
        works[name] = partial(_keep_answer, post, answers[name])
    floors = stage_floors(prepare(data, pipeline.segmenter, model_path, pipeline.options))
    works.update({f"floor_{name}": call for name, call in floors.items()})
    timed = interleaved_many(works, rounds, warmup)
    runs = {name: _run(name, label, timed[name], timed["model"], answers[name][warmup:], http=name in posts)
            for name in answers}
    floors_ms = {name: summary(timed[f"floor_{name}"]) for name in floors} | {"model": summary(timed["model"])}
    stages = {name: run["stages_ms"] for name, run in runs.items()}
    return {"image": label, "rounds": rounds, "model_ms": summary(timed["model"]), "runs": runs,
            "http_minus_inprocess_ms": _difference(timed[HTTP], timed["png"]) if HTTP in timed else None,
            "http_minus_inprocess_paired_ms": paired_median(timed[HTTP], timed["png"]) if HTTP in timed else None,
            "seed_client_minus_inprocess_ms": (_difference(timed[HTTP_SEED_CLIENT], timed["png"])
                                               if HTTP_SEED_CLIENT in timed else None),
            "floors_ms": floors_ms,
            "stage_floors": stage_rows(stages, {name: floor["median"] for name, floor in floors_ms.items()})}


def _render_call(pipeline: Pipeline, data: bytes, options: RenderOptions,
                 answers: list[tuple[dict[str, float], int]]) -> Callable[[], None]:
    """One render to ``options``, keeping its stage timings and size only (a 12 MP PNG is 15 MB a round)."""
    def call() -> None:
        rendered = render(pipeline.segmenter, data, pipeline.limits, options)
        answers.append((rendered.timings_ms, len(rendered.result.body)))
    return call


def _difference(first: list[float], second: list[float]) -> float:
    """The difference of the two medians: what goes with their ratio (the issue's "64 ms around the model" is
    131.7 - 67.7); the median of the differences round by round is kept beside it (``*_paired_ms``)."""
    return statistics.median(first) - statistics.median(second)


def _keep_answer(post: Post, answers: list[tuple[dict[str, float], int]]) -> None:
    answers.append(post())


def _run(name: str, label: str, total_ms: list[float], model_ms: list[float],
         answers: list[tuple[dict[str, float], int]], http: bool) -> dict[str, Any]:
    """One output's figures: end to end, the model in the same rounds, their ratio and difference, its stages."""
    stages = stage_medians([timings for timings, _ in answers])
    if http:  # what the server's own timings do not cover: multipart, uvicorn, loopback, the client
        stages["http_other"] = statistics.median(total - sum(timings.values())
                                                 for total, (timings, _) in zip(total_ms, answers, strict=True))
    output = OUTPUTS["png"][0] if http else OUTPUTS[name][0]
    path = {HTTP: "HTTP loopback", HTTP_SEED_CLIENT: "HTTP loopback, the seed's client"}.get(name, "in-process")
    return {"path": path, "output": output, "image": label,
            "total_ms": summary(total_ms), "model_ms": summary(model_ms),
            "ratio_to_model": statistics.median(total_ms) / statistics.median(model_ms),
            "overhead_ms": _difference(total_ms, model_ms), "overhead_paired_ms": paired_median(total_ms, model_ms),
            "stages_ms": stages,
            "result_mb": answers[-1][1] / 1e6, "samples_ms": total_ms}
