"""``unet-segment INPUT... -o OUT_DIR``: segment image files, folders and globs into OUT_DIR.

    unet-segment photo.jpg -o out                          # out/photo.jpg.png, the overlay
    unet-segment photos -o out --recursive --jobs 2        # out/<path under photos>.png for every image
    unet-segment 'scans/**/*.tif' -o out --output mask     # a quoted glob; out/<path under scans>.mask.png
    unet-segment photos -o out --format webp --skip-existing --model s3://bucket/models/unet.onnx

Options are the API's (``POST /predict``), checked by the same ``RenderOptions``. Results
are named as the S3 trigger names them (``cat.jpg`` -> ``cat.jpg.png``, ``.mask.png``,
``.cutout.webp``, ``.json``), under the input's path relative to the folder given.
Progress goes to stderr, one line per failed file with its reason; the last line on stdout
is one JSON object ``{"processed", "failed", "skipped", "seconds"}``. Exit status: 0 when
nothing failed, 1 when some input failed (the others are written), 2 for a usage error
(a bad option, an input that does not exist, two inputs that would write the same file, a
model that cannot be loaded), 130 when interrupted (rerun with --skip-existing).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import get_args

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from app.cli.inputs import Job, UsageError, find_sources, plan
from app.cli.runner import PROGRAM, Runner, Tally
from app.core.decoding.imaging import ACCEPTED
from app.core.inference.segmenter import Segmenter
from app.core.options import ImageFormat, Output, RenderOptions
from app.core.settings import Settings
from app.runtime import load_segmenter

OPTIONS = ("output", "format", "quality", "color", "alpha", "threshold")  # RenderOptions' fields, as flags
INTERRUPTED = 130  # 128 + SIGINT, as shells report it
HELP = __doc__.replace("``", "")  # --help is read in a terminal: the docstring's literals as plain text

logger = logging.getLogger(PROGRAM)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROGRAM, description=HELP.partition("\n\n")[0],
                                     epilog=HELP.partition("\n\n")[2],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help=f"an image file ({ACCEPTED}), a folder, a glob")
    parser.add_argument("-o", "--out", required=True, type=Path, metavar="OUT_DIR", help="where results go")
    parser.add_argument("-r", "--recursive", action="store_true", help="also the images in folders' subfolders")
    parser.add_argument("--output", choices=get_args(Output), help="overlay (default), mask, cutout or json")
    parser.add_argument("--format", choices=get_args(ImageFormat), help="png (default), jpeg or webp")
    parser.add_argument("--quality", help="JPEG/WebP quality 1-100 (default 85 JPEG, 80 WebP)")
    parser.add_argument("--color", help="overlay colour: rrggbb, #rrggbb or r,g,b (default OVERLAY_COLOR, ff3b30)")
    parser.add_argument("--alpha", help="overlay opacity 0-1 (default OVERLAY_ALPHA, 0.5)")
    parser.add_argument("--threshold", help="foreground probability cut-off, 0 < t < 1 (default: the model's own)")
    parser.add_argument("--model", metavar="PATH_OR_S3_URI", help="an ONNX model (default: MODEL_URI, else the "
                                                                  "bundled model)")
    parser.add_argument("--skip-existing", action="store_true", help="leave results that exist (resume a run)")
    parser.add_argument("-j", "--jobs", type=positive, default=1,
                        help="images decoded, drawn and encoded at once; inference shares one session (default 1)")
    return parser


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive number")
    return value


def main(argv: list[str] | None = None) -> int:
    """The command: parse, check everything that can be checked, load the model, run, report."""
    started = time.perf_counter()
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging()
    try:
        settings = read_settings(args.model)
        options = render_options(args, settings)
        jobs = find_jobs(args, options)
        segmenter = load_model(settings)
    except UsageError as error:
        parser.error(str(error))  # exits with status 2
    runner = Runner(segmenter, options, settings.stored_object_limits(), threads=args.jobs)
    tally = runner.run(jobs, args.skip_existing)
    report(tally, time.perf_counter() - started)
    return INTERRUPTED if tally.interrupted else int(tally.failed > 0)


def configure_logging() -> None:
    """The command's lines on stderr as ``unet-segment: <message>``; the service's JSON logging is not used here."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"{PROGRAM}: %(message)s"))
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False


def read_settings(model: str | None) -> Settings:
    """The environment's settings (as the server reads them), with --model for MODEL_URI if given."""
    try:
        return Settings(MODEL_URI=model) if model else Settings()
    except ValidationError as invalid:
        raise UsageError(f"invalid settings in the environment: {invalid}") from None


def render_options(args: argparse.Namespace, settings: Settings) -> RenderOptions:
    """The settings' defaults with the flags given, checked as the API checks its query."""
    given = {name: getattr(args, name) for name in OPTIONS}
    try:
        return settings.render_defaults().with_overrides(given)
    except ValidationError as invalid:
        raise UsageError("; ".join(describe(error, given) for error in invalid.errors())) from None


def describe(error: ErrorDetails, given: dict[str, object]) -> str:
    """One pydantic error as the flag it is about: ``--alpha 2: Input should be less than or equal to 1``."""
    field = next((str(part) for part in error["loc"] if part in given), None)
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"--{field} {given[field]}: {message}" if field else message


def find_jobs(args: argparse.Namespace, options: RenderOptions) -> list[Job]:
    found = find_sources(args.inputs, args.recursive, args.out)
    if found.ignored:
        logger.warning("ignored %d file(s) in the folders that are not %s images, e.g. %s", len(found.ignored),
                       ACCEPTED, found.ignored[0])
    if not found.sources:
        logger.warning("no images found in %s", " ".join(args.inputs))
    return plan(found.sources, args.out, options)


def load_model(settings: Settings) -> Segmenter:
    """The model MODEL_URI (or --model) names, through the runtime's loader: a path, or s3:// with the model store."""
    try:
        return load_segmenter(settings)
    except Exception as error:  # missing file, S3 out of reach, not a model of ours: the user's to fix
        raise UsageError(f"cannot load the model {settings.MODEL_URI} ({type(error).__name__}: {error}): give "
                         "--model an ONNX file or s3://bucket/key") from error


def report(tally: Tally, seconds: float) -> None:
    """The last line on stdout: what happened, as one JSON object."""
    summary = {"processed": tally.processed, "failed": tally.failed, "skipped": tally.skipped,
               "seconds": round(seconds, 2)}
    print(json.dumps(summary), flush=True)  # noqa: T201 - the command's result, for scripts to read
