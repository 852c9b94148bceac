"""One fresh process doing what a Lambda execution environment does first: init, then one image.

    python -m bench.child IMAGE MODEL

Imports ``app.main`` (settings, logging, the model's session: Lambda's init phase),
renders IMAGE through ``app.core.pipeline.render`` with the route's default options, and
prints one JSON line: the wall-clock time of that first answer (``time.time()``, for
the parent to subtract its launch time from), the import and render milliseconds,
and peak RSS as /proc's VmHWM and ``getrusage``'s ``ru_maxrss`` (the latter only
meaningful when the parent is small: Linux keeps it across fork+exec).
"""

from __future__ import annotations

import time

STARTED = time.perf_counter()  # before any heavy import: the import is part of the cold start

import json  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

from bench.memory import vmhwm_mb  # noqa: E402


def main(image_path: Path, model_path: Path) -> dict[str, float]:
    """Init as Lambda does, answer one image, report times and peak memory."""
    os.environ["MODEL_URI"] = str(model_path)
    from app import main as service
    from app.core.pipeline import render
    from bench.inprocess import route_defaults

    imported = time.perf_counter()
    rendered = render(service.runtime.holder.get(), image_path.read_bytes(), *route_defaults(service.runtime.settings))
    answered = time.perf_counter()
    return {
        "first_answer_epoch_s": time.time(),
        "import_ms": (imported - STARTED) * 1000.0,
        "first_render_ms": (answered - imported) * 1000.0,
        "ru_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6,
        "vmhwm_mb": vmhwm_mb(os.getpid()),
        "png_bytes": len(rendered.result.body),
    }


if __name__ == "__main__":
    sys.stdout.write(json.dumps(main(Path(sys.argv[1]), Path(sys.argv[2]))) + "\n")
