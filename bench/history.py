"""Does the idle server's memory grow with what it has served? And what the work around the model costs at 1080p.

    python -m bench.history                     # -> the "Memory and history" table in docs/benchmarks.md
    python -m bench.history --rounds 1 --no-write

One fresh uvicorn (the served default model), warmed with two 1080p requests: its RSS then
is the post-warm-up RSS. Then ``--rounds`` passes over a varied sequence (every accepted
format at 40 MP, 12 MP and 1080p photos, a 16-bit PNG, output formats and kinds), and the idle
RSS after it; the goal is within 10% of the post-warm-up RSS. Before and after the history,
ten 1080p requests give the non-model milliseconds (the ``Server-Timing`` stages other than ``infer``,
the model run): a setting that keeps memory flat must not make the work around the model slower.
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import pickle
import statistics
import time
from typing import Any

import numpy as np
import requests
from PIL import Image

from app.http.work_queue import IDLE_TRIM_S
from bench import REPO
from bench.bytes_per_pixel import encoders
from bench.memory import vmrss_mb
from bench.photo import photo_jpeg
from bench.report import publish
from bench.server import Server, server_timing

OUT = REPO / "bench" / "out"
RESULTS = REPO / "bench" / "history.json"
# The server trims its heap once it has been idle for IDLE_TRIM_S (app.http.work_queue): idle RSS is read after it
IDLE_SETTLE_S = IDLE_TRIM_S + 1.0
logger = logging.getLogger("bench.history")


def history_files() -> list[tuple[str, bytes, dict[str, str]]]:
    """The sequence, made once and kept in bench/out (encoding 40 MP AVIF and HEIC takes most of a minute)."""
    cache = OUT / "history_files.pickle"
    if not cache.exists():
        OUT.mkdir(parents=True, exist_ok=True)
        cache.write_bytes(pickle.dumps(make_history_files()))
    return pickle.loads(cache.read_bytes())  # noqa: S301 - our own file, written just above


def make_history_files() -> list[tuple[str, bytes, dict[str, str]]]:
    """(name, file, form options): large images of every format, then ordinary ones with varied outputs."""
    width, height = 7300, 5475  # 40 MP
    with Image.open(io.BytesIO(photo_jpeg(width, height))) as decoded:
        large = decoded.convert("RGB")
    files = [(f"40 MP {name}", encode(large), {}) for name, encode in encoders().items()]
    sixteen = io.BytesIO()
    grey = np.asarray(large.convert("L").resize((3000, 2000)), dtype=np.uint16) * 257
    Image.fromarray(grey).save(sixteen, format="PNG")  # 16-bit greyscale: the I;16 path
    files += [("12 MP JPEG webp out", photo_jpeg(4000, 3000, seed=1), {"format": "webp"}),
              ("12 MP JPEG cutout", photo_jpeg(4000, 3000, seed=2), {"output": "cutout"}),
              ("6 MP 16-bit PNG", sixteen.getvalue(), {"output": "mask"}),
              ("1080p JPEG jpeg out", photo_jpeg(1920, 1080, seed=3), {"format": "jpeg"})]
    return files


def non_model_ms(server: Server, image: bytes, count: int = 10) -> float:
    """Median over ``count`` 1080p requests of the server's stage milliseconds other than the model's."""
    outside = []
    for _ in range(count):
        response = requests.post(server.url, files={"file": image}, timeout=300)
        response.raise_for_status()
        stages = server_timing(response)
        outside.append(sum(stages.values()) - stages["infer"])
    return statistics.median(outside)


def measure(rounds: int) -> dict[str, Any]:
    files = history_files()
    env = {"MAX_UPLOAD_BYTES": str(max(len(data) for _, data, _ in files) + 1), "MAX_PIXELS": "100000000"}
    photo_1080p = photo_jpeg(1920, 1080)
    with Server(REPO / "model" / "weights" / "unet-int8.onnx", OUT / "history.log", extra_env=env) as server:
        server.wait_ready()
        pid = server.process.pid  # type: ignore[union-attr]
        before_ms = non_model_ms(server, photo_1080p)
        time.sleep(IDLE_SETTLE_S)
        warm = vmrss_mb(pid)
        statuses = {}
        for _ in range(rounds):
            for name, data, options in files:
                statuses[name] = requests.post(server.url, files={"file": data}, data=options, timeout=600).status_code
        time.sleep(IDLE_SETTLE_S)
        idle = vmrss_mb(pid)
        after_ms = non_model_ms(server, photo_1080p)
    return {"load_average": os.getloadavg()[0], "rounds": rounds, "statuses": statuses, "warm_rss_mb": warm,
            "idle_rss_mb": idle, "growth": idle / warm - 1, "non_model_ms_before": before_ms,
            "non_model_ms_after": after_ms, "malloc_tunables": os.environ.get("GLIBC_TUNABLES", "")}


def markdown(results: dict[str, Any]) -> str:
    statuses = ", ".join(f"{name} {status}" for name, status in results["statuses"].items())
    return "\n".join([
        f"`python -m bench.history` (load average {results['load_average']:.2f}): {results['rounds']} passes over"
        f" {len(results['statuses'])} requests ({statuses}).", "",
        "| post-warm-up RSS MB | idle RSS after the history MB | growth | goal | 1080p non-model ms before | after |",
        "| ---: | ---: | ---: | --- | ---: | ---: |",
        f"| {results['warm_rss_mb']:.0f} | {results['idle_rss_mb']:.0f} | {results['growth']:+.1%} | within 10% |"
        f" {results['non_model_ms_before']:.1f} | {results['non_model_ms_after']:.1f} |"])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    results = measure(args.rounds)
    publish(results, markdown(results), RESULTS, "history", write=not args.no_write)


if __name__ == "__main__":
    main()
