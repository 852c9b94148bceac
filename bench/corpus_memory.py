"""The server's memory over varied files: every file of some corpora posted once, one at a time, at default settings.

    python -m bench.corpus_memory                               # PngSuite, the fuzz corpora, events/images
    python -m bench.corpus_memory --corpus path/to/images --out runs/corpus-memory

A fresh uvicorn (bench.server.Server) serves the default model. Each file is posted to /predict as an
upload; the answer's status is counted (any 5xx or dropped connection is listed by name). Reported:
files, statuses, the peak RSS over the whole run (VmHWM), the file whose request raised it most, and
the idle RSS before and after (12 s idle, as bench.load measures it). Writes report.json under --out.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import requests

from bench import REPO
from bench.load import IDLE_S, MODEL, REQUEST_TIMEOUT_S
from bench.memory import vmhwm_mb
from bench.server import Server

CORPORA = (
    REPO.parent / "shared" / "corpus" / "pngsuite" / "png",  # PngSuite: every PNG colour type, depth, filter, chunk
    REPO / "runs" / "fuzz" / "corpus" / "decode",  # what make fuzz kept: inputs that reached new code
    REPO / "tests" / "corpus" / "fuzz" / "decode",  # what once broke the decoder
    REPO / "events" / "images",
)

logger = logging.getLogger("corpus_memory")


def corpus_files(corpora: list[Path]) -> list[Path]:
    """Every regular file under the corpora that exist, in a stable order."""
    return [path.resolve() for corpus in corpora if corpus.is_dir() for path in sorted(corpus.rglob("*"))
            if path.is_file()]


def post(url: str, path: Path) -> int | None:
    """The status of ``path`` posted as an upload; None when no answer came (a dropped connection)."""
    try:
        return requests.post(url, files={"file": (path.name, path.read_bytes())}, timeout=REQUEST_TIMEOUT_S).status_code
    except requests.RequestException:
        return None


def idle_rss_mb(pid: int) -> float:
    """RSS after IDLE_S without requests, as bench.load measures it."""
    time.sleep(IDLE_S)
    return round(psutil.Process(pid).memory_info().rss / 1e6, 1)


def post_all(url: str, pid: int, files: list[Path]) -> dict[str, Any]:
    """Each file once, in turn: statuses, the files that got a 5xx or no answer, the peak RSS and its file."""
    statuses: dict[str, int] = {}
    failures: list[str] = []
    peak, peak_file = 0.0, ""
    for path in files:
        status = post(url, path)
        statuses[str(status)] = statuses.get(str(status), 0) + 1
        if status is None or status >= 500:
            failures.append(str(path))
        if vmhwm_mb(pid) > peak:
            peak, peak_file = vmhwm_mb(pid), str(path)
    return {"files": len(files), "statuses": statuses, "5xx_or_no_answer": failures, "peak_rss_mb": round(peak, 1),
            "peak_file": peak_file}


def run(files: list[Path], work: Path) -> dict[str, Any]:
    with Server(MODEL, work / "server.log") as server:
        server.wait_ready()
        assert server.process is not None
        pid = server.process.pid
        before = idle_rss_mb(pid)
        report = post_all(server.url, pid, files)
        return {**report, "idle_rss_before_mb": before, "idle_rss_after_mb": idle_rss_mb(pid)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, action="append", help="a folder of files (repeatable)")
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "corpus-memory")
    arguments = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    files = corpus_files(arguments.corpus or list(CORPORA))
    logger.info("posting %d files", len(files))
    report = run(files, arguments.out)
    arguments.out.mkdir(parents=True, exist_ok=True)
    (arguments.out / "report.json").write_text(json.dumps(report, indent=2))
    logger.info("%s", json.dumps(report, indent=2))
    return 1 if report["5xx_or_no_answer"] else 0


if __name__ == "__main__":
    sys.exit(main())
