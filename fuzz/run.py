"""One atheris (libFuzzer) run of one target of ``fuzz.targets``, seeded, bounded in time, memory and per input.

    python -m fuzz.run decode --model runs/fuzz/tiny.onnx --seconds 300
    python -m fuzz.run http_event --model runs/fuzz/tiny.onnx --seconds 60 -- -jobs=1 -dict=...

What counts as a bug (libFuzzer stops at the first and writes the input under --crashes):
an exception out of the target, an input that takes more than --timeout seconds (2: a hang
at the fuzz limits), or the process over --rss-mb of resident memory. The corpus grown
in runs/fuzz/corpus/<target> is kept between runs; the seeds (fuzz.seeds) are rebuilt.
A found input goes, once fixed, to tests/corpus/fuzz/<target>/, which ``make test`` replays.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
from pathlib import Path

import atheris

REPO = Path(__file__).resolve().parents[1]
RUNS = REPO / "runs" / "fuzz"
TARGETS = ("decode", "s3_event", "batch_event", "http_event")
# Modules whose Python code is instrumented for coverage: ours, and the parsers the bytes meet
# (Pillow's plugins are Python over C decoders; Mangum turns events into ASGI scopes).
INSTRUMENTED = ["app", "PIL", "mangum", "pi_heif", "multipart", "python_multipart"]
HANG_S = 2  # issue 12: an input that takes longer than this is a bug
RSS_MB = 1536  # the process, model and interpreter included: ~250 MB at rest


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("target", choices=TARGETS)
    parser.add_argument("--model", type=Path, required=True, help="a small ONNX model (tests.support's tiny one)")
    parser.add_argument("--seconds", type=int, default=60, help="libFuzzer's -max_total_time")
    parser.add_argument("--timeout", type=int, default=HANG_S, help="seconds one input may take (a hang past it)")
    parser.add_argument("--rss-mb", type=int, default=RSS_MB, help="the process's memory cap (-rss_limit_mb)")
    parser.add_argument("--work", type=Path, default=RUNS, help="where seeds, corpus and crashes go")
    parser.add_argument("--no-corpus", action="store_true", help="seeds only, nothing kept (make test's short run)")
    arguments, extra = parser.parse_known_args(argv)
    return arguments, [argument for argument in extra if argument != "--"]


def libfuzzer_args(arguments: argparse.Namespace, seeds: Path) -> list[str]:
    """libFuzzer's command line: limits, where crashes go, then the corpus directories (the first one grows)."""
    crashes = arguments.work / "crashes" / arguments.target
    crashes.mkdir(parents=True, exist_ok=True)
    corpus = [] if arguments.no_corpus else [arguments.work / "corpus" / arguments.target]
    for directory in corpus:
        directory.mkdir(parents=True, exist_ok=True)
    return [
        f"-max_total_time={arguments.seconds}", f"-timeout={arguments.timeout}", f"-rss_limit_mb={arguments.rss_mb}",
        "-max_len=1048576", "-print_final_stats=1", f"-artifact_prefix={crashes}/",
        *map(str, corpus), str(seeds),
    ]


def write_seeds(target: str, directory: Path) -> Path:
    """The seeds, made by another process: Pillow imported here before ``instrument_imports`` would go uncovered."""
    subprocess.run([sys.executable, "-m", "fuzz.seeds", target, str(directory)], cwd=REPO, check=True)
    return directory


def build_target(name: str, model: Path):  # type: ignore[no-untyped-def]
    """The target, with the app's modules imported under atheris' instrumentation."""
    with atheris.instrument_imports(include=INSTRUMENTED):
        from PIL import Image

        from app.core.settings import Settings
        from app.runtime import build_holder
        from fuzz import targets

        Image.init()  # every plugin imported now, instrumented
        from scripts.invoke import LambdaContext

        settings = Settings(MODEL_URI=str(model))
        holder = build_holder(settings)
        segmenter = holder.get()
        if name == "decode":
            return targets.decode_target(segmenter)
        if name == "http_event":
            from app.http.factory import create_app
            from app.http.work_queue import WorkQueue

            app = create_app(settings, holder, WorkQueue(workers=1, max_waiting=4))
            return targets.http_event_target(app, LambdaContext())
        return targets.upload_event_target(segmenter, LambdaContext())


def main(argv: list[str] | None = None) -> None:
    arguments, extra = parse_args(sys.argv[1:] if argv is None else argv)
    seeds = write_seeds(arguments.target, arguments.work / "seeds" / arguments.target)
    target = build_target(arguments.target, arguments.model.resolve())
    from fuzz.targets import quiet_logs

    quiet_logs()
    asyncio.set_event_loop(asyncio.new_event_loop())  # Mangum answers on the main thread's loop, as on Lambda
    sys.stdout = open(os.devnull, "w")  # the metrics' EMF lines; libFuzzer reports on stderr
    atheris.Setup([sys.argv[0], *libfuzzer_args(arguments, seeds), *extra], target)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
