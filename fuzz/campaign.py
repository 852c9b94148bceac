"""``make fuzz``: every target of ``fuzz.targets`` in turn, the time shared out, a summary at the end.

    make fuzz SECONDS=600                      # 600 s in all: half to the decoder, the rest to the event parsers
    python -m fuzz.campaign --seconds 600 --targets decode http_event -- -jobs=1

Each target runs as its own ``python -m fuzz.run`` process (libFuzzer exits the process on a
finding), with a hang at 2 s and a memory cap (``fuzz.run``). Prints, and writes to
runs/fuzz/summary.json, per target: executions, coverage (libFuzzer's ``cov``: edges of the
instrumented Python code; ``ft``: features), corpus size, peak RSS and the inputs found
(under runs/fuzz/crashes/<target>/). Exit status 1 if any target found something.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import subprocess
import sys
from pathlib import Path

from fuzz.run import REPO, RUNS, TARGETS

# The decoder is the biggest surface (every plugin); the event parsers are small and saturate fast.
SHARES = {"decode": 0.5, "http_event": 0.2, "s3_event": 0.15, "batch_event": 0.15}
STATS = {
    "executions": re.compile(r"stat::number_of_executed_units:\s+(\d+)"),
    "exec_per_s": re.compile(r"stat::average_exec_per_sec:\s+(\d+)"),
    "peak_rss_mb": re.compile(r"stat::peak_rss_mb:\s+(\d+)"),
    "cov": re.compile(r"cov: (\d+)"),
    "ft": re.compile(r"ft: (\d+)"),
    "corpus": re.compile(r"corp: (\d+)/"),
}

logger = logging.getLogger("fuzz")


def tiny_model(path: Path) -> Path:
    """The tests' tiny model, exported once (torch, ~10 s) and kept under runs/."""
    if not path.is_file():
        from tests.support import export_tiny_model

        path.parent.mkdir(parents=True, exist_ok=True)
        export_tiny_model(path)
    return path


def run_target(target: str, seconds: int, model: Path, extra: list[str]) -> dict[str, object]:
    """One ``fuzz.run`` process; its final statistics and what it found (inputs of earlier runs not counted)."""
    crashes = RUNS / "crashes" / target
    earlier = {path.name for path in crashes.glob("*")}
    command = [sys.executable, "-m", "fuzz.run", target, "--model", str(model), "--seconds", str(seconds), *extra]
    log = RUNS / f"{target}.log"
    with log.open("w") as output:
        done = subprocess.run(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=output, check=False)
    text = log.read_text(errors="replace")
    stats: dict[str, object] = {"target": target, "seconds": seconds, "exit": done.returncode, "log": str(log)}
    for name, pattern in STATS.items():
        values = pattern.findall(text)
        stats[name] = int(values[-1]) if values else None
    stats["found"] = sorted(path.name for path in crashes.glob("*") if path.name not in earlier)
    return stats


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=600, help="the whole campaign's time, shared by SHARES")
    parser.add_argument("--targets", nargs="+", choices=TARGETS, default=list(TARGETS))
    arguments, extra = parser.parse_known_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    model = tiny_model(RUNS / "tiny.onnx")
    total = sum(SHARES[target] for target in arguments.targets)
    results = []
    for target in arguments.targets:
        seconds = max(1, round(arguments.seconds * SHARES[target] / total))
        logger.info("fuzzing %s for %d s (log: runs/fuzz/%s.log)", target, seconds, target)
        results.append(run_target(target, seconds, model, extra))
        logger.info("  %s", json.dumps(results[-1]))
    (RUNS / "summary.json").write_text(json.dumps(results, indent=2))
    return 1 if any(result["found"] or result["exit"] != 0 for result in results) else 0


if __name__ == "__main__":
    sys.exit(main())
