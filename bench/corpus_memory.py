"""The server's memory over varied files: every file of some corpora posted once, one at a time, at default settings.

    python -m bench.corpus_memory          # PngSuite, the fuzz corpora, events/images, 40 MP JPEG, PNG and LZW TIFF
    python -m bench.corpus_memory --corpus path/to/images --out runs/corpus-memory   # those folders only

A fresh uvicorn (bench.server.Server) serves the default model at its default settings, but for
MAX_UPLOAD_BYTES, raised to the largest file when one is over it (a 40 MP PNG is ~50 MB, the
default 4.4 MB is Lambda's response limit, not a memory setting). Each file is posted to /predict
as an upload (the default answer, a PNG overlay); the answer's status is counted (any 5xx or
dropped connection is listed by name). Reported: files per corpus, statuses, the peak RSS over the
whole run (VmHWM: issue 22's goal is at most 400 MB), the file whose request raised it most, and the
idle RSS before and after (12 s idle, as bench.load measures it). Writes report.json under --out.
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

from app.core.settings import Settings
from bench import REPO
from bench.bytes_per_pixel import encoders, photo, photo_size
from bench.load import IDLE_S, MODEL, REQUEST_TIMEOUT_S
from bench.memory import vmhwm_mb
from bench.server import Server

CORPORA = (
    REPO.parent / "shared" / "corpus" / "pngsuite" / "png",  # PngSuite: every PNG colour type, depth, filter, chunk
    REPO / "runs" / "fuzz" / "corpus" / "decode",  # what make fuzz kept: inputs that reached new code
    REPO / "tests" / "corpus" / "fuzz" / "decode",  # what once broke the decoder
    REPO / "events" / "images",
)
LARGE_MEGAPIXELS = 40.0
LARGE = {"JPEG q90": "photo_40mp_q90.jpg", "PNG": "photo_40mp.png", "TIFF LZW": "photo_40mp_lzw.tif"}
LARGE_DIR = REPO / "bench" / "out" / "corpus_large"  # git-ignored, written by each run

logger = logging.getLogger("corpus_memory")


def corpus_files(corpora: list[Path]) -> list[Path]:
    """Every regular file under the corpora that exist, in a stable order."""
    return [path.resolve() for corpus in corpora if corpus.is_dir() for path in sorted(corpus.rglob("*"))
            if path.is_file()]


def large_files(out_dir: Path = LARGE_DIR, megapixels: float = LARGE_MEGAPIXELS) -> list[Path]:
    """A photo-like image of ``megapixels`` in each format of LARGE, written under ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    image, encode = photo(*photo_size(megapixels)), encoders()
    paths = []
    for name, file_name in LARGE.items():
        paths.append(out_dir / file_name)
        paths[-1].write_bytes(encode[name](image))
    return paths


def upload_limit(files: list[Path]) -> dict[str, str]:
    """The one setting changed from the defaults: MAX_UPLOAD_BYTES, when a file is over it."""
    largest = max((path.stat().st_size for path in files), default=0)
    default = Settings.model_fields["MAX_UPLOAD_BYTES"].default
    return {"MAX_UPLOAD_BYTES": str(largest + 1)} if largest > default else {}


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
    settings = upload_limit(files)
    with Server(MODEL, work / "server.log", extra_env=settings) as server:
        server.wait_ready()
        assert server.process is not None
        pid = server.process.pid
        before = idle_rss_mb(pid)
        report = post_all(server.url, pid, files)
        return {**report, "settings_changed": settings, "idle_rss_before_mb": before,
                "idle_rss_after_mb": idle_rss_mb(pid)}


def measure(corpora: list[Path], work: Path, with_large: bool = True) -> dict[str, Any]:
    """Every file of ``corpora`` (and the LARGE files), posted in turn: ``run``'s report and the files per corpus."""
    counted = {str(corpus): len(corpus_files([corpus])) for corpus in corpora}
    files = corpus_files(corpora) + (large_files() if with_large else [])
    logger.info("posting %d files", len(files))
    report = run(files, work)
    return {**report, "corpora": counted, "large": list(LARGE) if with_large else []}


def markdown(report: dict[str, Any]) -> str:
    corpora = ", ".join(f"`{_shown(Path(corpus))}` {count}" for corpus, count in report["corpora"].items())
    large = ""
    if report["large"]:
        large = f", and a {LARGE_MEGAPIXELS:g} MP photo-like image as {', '.join(report['large'])}"
    settings = ", ".join(f"{key}={value}" for key, value in report["settings_changed"].items()) or "none"
    statuses = ", ".join(f"{count}x {status}" for status, count in sorted(report["statuses"].items()))
    return "\n".join([
        f"`python -m bench.corpus_memory`: {report['files']} files posted one at a time to a fresh uvicorn at default "
        f"settings (changed: {settings}): files per corpus {corpora}{large}.", "",
        "| files | statuses | 5xx or no answer | peak RSS MB | raised most by | idle RSS before MB | after MB |",
        "| ---: | --- | ---: | ---: | --- | ---: | ---: |",
        f"| {report['files']} | {statuses} | {len(report['5xx_or_no_answer'])} | {report['peak_rss_mb']:.0f} | "
        f"`{_shown(Path(report['peak_file']))}` | {report['idle_rss_before_mb']:.0f} | "
        f"{report['idle_rss_after_mb']:.0f} |"])


def _shown(path: Path) -> str:
    """A path as the report shows it: relative to the checkout or its parent (the shared corpora)."""
    for root in (REPO, REPO.parent):
        if path.is_relative_to(root):
            return path.relative_to(root).as_posix()
    return str(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, action="append", help="a folder of files (repeatable)")
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "corpus-memory")
    arguments = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    report = measure(arguments.corpus or list(CORPORA), arguments.out, with_large=not arguments.corpus)
    arguments.out.mkdir(parents=True, exist_ok=True)
    (arguments.out / "report.json").write_text(json.dumps(report, indent=2))
    logger.info("%s", json.dumps(report, indent=2))
    return 1 if report["5xx_or_no_answer"] else 0


if __name__ == "__main__":
    sys.exit(main())
