"""Cold starts of both Lambda functions, as fresh processes: init, and init plus the first event, beside their floors.

    python -m bench.coldstart                      # 5 processes per function and per floor, prints the table
    python -m bench.coldstart --processes 9

Each process is a new interpreter that imports the function's entry (``app.lambda_api`` or
``app.lambda_upload``: template.yaml's ImageConfig commands), which is Lambda's init phase
(settings, logging, the model's session), then calls its handler once with an event:
POST /predict carrying a 1080p photo-like JPEG through API Gateway's HTTP API (v2), or an
S3 ObjectCreated event for that JPEG under uploads/, read from and written to moto's S3 on
loopback (started here, in this process, so its cost is not the function's). Init is
measured from the parent's launch of the interpreter, so Python's own start-up counts, as
it does in Lambda's billed init (https://docs.aws.amazon.com/lambda/latest/dg/lambda-runtime-environment.html:
"Init phase", limited to 10 s). Deferring an import to the first event moves its cost from
init to the first event: both are reported. Processes run one at a time while this
parent waits, so the parent's own work does not overlap them.

Each function's floor (issue 22) is a fresh interpreter, launched the same way, that only
imports what the function cannot do without and opens the default model's session with
``app.core.inference.segmenter.open_session``'s options (``floor_session``): numpy, onnxruntime,
PIL.Image, FastAPI and Mangum for the HTTP function; the same without FastAPI and Mangum,
with boto3 and an S3 client, for the upload function. The entries and their floors run
interleaved, round by round, so init / floor is a ratio of medians from the same rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from bench import REPO

PROCESSES = 5
CHILD_TIMEOUT_S = 120
EVENTS = {"api": REPO / "events" / "http_api_post_predict.json", "upload": REPO / "events" / "s3_put_upload.json"}
FLOOR_IMPORTS = {  # what each function cannot start without: its floor imports these, then opens the session
    "api": ("numpy", "onnxruntime", "PIL.Image", "fastapi", "mangum"),
    "upload": ("numpy", "onnxruntime", "PIL.Image", "boto3"),
}


def child(entry: str, event_path: Path, result_path: Path) -> None:
    """In the fresh process: import the entry (init), then one event; times as epoch seconds for the parent."""
    import importlib
    from contextlib import redirect_stdout

    with redirect_stdout(sys.stderr):  # the function's JSON logs; the result goes to its own file
        handler = importlib.import_module(f"app.lambda_{entry}").handler
        init_done = time.time()
        from scripts.invoke import LambdaContext  # the harness's, after init

        event = json.loads(event_path.read_text())
        started = time.perf_counter()
        response = handler(event, LambdaContext())
        handled_s = time.perf_counter() - started
    from bench.memory import vmhwm_mb

    outcome = response.get("statusCode") or [record.get("status") for record in response.get("records", [])]
    result_path.write_text(json.dumps({"init_epoch_s": init_done, "first_event_s": handled_s, "outcome": outcome,
                                       "vmhwm_mb": vmhwm_mb(os.getpid())}))


def floor_child(entry: str, model: Path, result_path: Path) -> None:
    """In the fresh process: the floor's imports and the model's session, nothing of the service."""
    import importlib

    for module in FLOOR_IMPORTS[entry]:
        importlib.import_module(module)
    if entry == "upload":
        import boto3

        boto3.client("s3")
    floor_session(model)
    result_path.write_text(json.dumps({"init_epoch_s": time.time()}))


def floor_session(model: Path) -> Any:
    """The default model's session with ``app.core.inference.segmenter.open_session``'s options, written out here so the
    floor imports nothing of the service (tests/unit/test_bench_smoke.py checks that the two agree)."""
    import onnxruntime as ort

    from app.core.resources.cpus import usable_cpus  # os, math and pathlib: the thread count the service would use

    options = ort.SessionOptions()
    options.intra_op_num_threads = usable_cpus()
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.enable_mem_pattern = False
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])


def launch(mode: str, arguments: list[str], env: dict[str, str], result_path: Path) -> tuple[float, dict[str, Any]]:
    """A fresh interpreter running this module with ``--child`` or ``--floor``: when it was launched (epoch
    seconds, so Python's own start-up counts) and what it wrote to ``result_path``."""
    command = [sys.executable, "-m", "bench.coldstart", mode, *arguments, str(result_path)]
    launched = time.time()
    subprocess.run(command, cwd=REPO, env=env, check=True, timeout=CHILD_TIMEOUT_S, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return launched, json.loads(result_path.read_text())


def floor_process(entry: str, model: Path, env: dict[str, str], work: Path) -> dict[str, Any]:
    """Launch a fresh interpreter for ``entry``'s floor, as ``one_process`` launches the entry: its init seconds."""
    launched, measured = launch("--floor", [entry, str(model)], env, work / f"{entry}-floor-result.json")
    return {"init_s": measured["init_epoch_s"] - launched}


def one_process(entry: str, event_path: Path, env: dict[str, str], work: Path) -> dict[str, Any]:
    """Launch a fresh interpreter for ``entry`` and read what it measured."""
    launched, measured = launch("--child", [entry, str(event_path)], env, work / f"{entry}-result.json")
    init_s = measured["init_epoch_s"] - launched
    return {"init_s": init_s, "first_event_s": measured["first_event_s"],
            "init_and_first_event_s": init_s + measured["first_event_s"], "outcome": measured["outcome"],
            "peak_rss_mb": measured["vmhwm_mb"]}


@contextmanager
def function_inputs(entry: str, image: Path, work: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    """The event file each process reads, and its environment (moto's S3, seeded, for the upload function)."""
    from scripts.invoke import load_event, s3_objects, seed, with_image
    from scripts.local_s3 import local_aws_env, moto_in_thread

    event = load_event(EVENTS[entry])
    event_path = work / f"{entry}-event.json"
    if entry == "api":
        event_path.write_text(json.dumps(with_image(event, image)))
        yield event_path, {**os.environ}
        return
    event_path.write_text(json.dumps(event))
    with moto_in_thread() as endpoint:
        env = {**os.environ, **local_aws_env(endpoint)}
        import boto3

        seed(boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing",
                          aws_secret_access_key="testing"), s3_objects(event), image)
        yield event_path, env


def measure(image: Path, processes: int = PROCESSES) -> dict[str, Any]:
    """Per function: medians over ``processes`` fresh interpreters of the entry and of its floor, interleaved
    round by round (which goes first alternates), init / floor, and every sample."""
    model = default_model()
    samples: dict[str, list[dict[str, Any]]] = {entry: [] for entry in EVENTS}
    floors: dict[str, list[dict[str, Any]]] = {entry: [] for entry in EVENTS}
    shown = model.relative_to(REPO).as_posix() if model.is_relative_to(REPO) else str(model)
    results: dict[str, Any] = {"load_average_1m": os.getloadavg()[0], "processes": processes, "model": shown,
                               "functions": {}}
    with tempfile.TemporaryDirectory() as scratch, ExitStack() as inputs:
        work = Path(scratch)
        prepared = {entry: inputs.enter_context(function_inputs(entry, image, work)) for entry in EVENTS}
        for index in range(processes):
            for entry, (event_path, env) in prepared.items():
                first_the_floor = index % 2 == 1
                if first_the_floor:
                    floors[entry].append(floor_process(entry, model, env, work))
                samples[entry].append(one_process(entry, event_path, env, work))
                if not first_the_floor:
                    floors[entry].append(floor_process(entry, model, env, work))
    for entry in EVENTS:
        run = {key: statistics.median(s[key] for s in samples[entry])
               for key in ("init_s", "first_event_s", "init_and_first_event_s", "peak_rss_mb")}
        floor_s = statistics.median(f["init_s"] for f in floors[entry])
        results["functions"][entry] = {**run, "floor_init_s": floor_s, "init_to_floor": run["init_s"] / floor_s,
                                       "outcomes": [s["outcome"] for s in samples[entry]], "samples": samples[entry],
                                       "floor_samples": floors[entry]}
    return results


def default_model() -> Path:
    """The model the entries load with no MODEL_URI set (the checkout's int8 model), or the one MODEL_URI names."""
    from app.core.settings import Settings

    return Path(Settings().MODEL_URI)


def markdown(results: dict[str, Any]) -> str:
    lines = [f"Cold starts (`bench.coldstart`): median of {results['processes']} fresh processes per function "
             f"and per floor, interleaved, 1-minute load {results['load_average_1m']:.2f} at the start; Lambda allows "
             "10 s of init. Floors: a fresh interpreter importing "
             + "; ".join(f"{entry}: {', '.join(modules)}" for entry, modules in FLOOR_IMPORTS.items())
             + " (upload: and creating an S3 client), then opening the session of "
             f"`{results['model']}` as the service does.", "",
             "| function (entry) | init s | floor s | init / floor | first event s | init + first event s "
             "| peak RSS MB | answers |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for entry, run in results["functions"].items():
        outcomes = ", ".join(sorted({json.dumps(outcome) for outcome in run["outcomes"]}))
        lines.append(f"| {entry} (app.lambda_{entry}) | {run['init_s']:.3f} | {run['floor_init_s']:.3f} | "
                     f"{run['init_to_floor']:.2f}x | {run['first_event_s']:.3f} | {run['init_and_first_event_s']:.3f}"
                     f" | {run['peak_rss_mb']:.0f} | {outcomes} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--processes", type=int, default=PROCESSES)
    parser.add_argument("--image", type=Path, help="default: a 1080p photo-like JPEG")
    parser.add_argument("--child", nargs=3, metavar=("ENTRY", "EVENT", "RESULT"), help=argparse.SUPPRESS)
    parser.add_argument("--floor", nargs=3, metavar=("ENTRY", "MODEL", "RESULT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child[0], Path(args.child[1]), Path(args.child[2]))
        return
    if args.floor:
        floor_child(args.floor[0], Path(args.floor[1]), Path(args.floor[2]))
        return
    image = args.image
    if image is None:
        from bench.photo import photo_jpeg

        image = REPO / "bench" / "out" / "photo_1080p.jpg"
        image.parent.mkdir(parents=True, exist_ok=True)
        image.write_bytes(photo_jpeg(1920, 1080))
    sys.stdout.write(markdown(measure(image, args.processes)) + "\n")


if __name__ == "__main__":
    main()
