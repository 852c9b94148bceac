"""Runs ``unet-segment``'s jobs: each file read, through the one pipeline, and its result written atomically.

Files are processed by ``jobs`` threads that share the process's one ``Segmenter``
(one onnxruntime session: ``InferenceSession.run`` is thread-safe, and onnxruntime and
Pillow release the GIL, so one file's decoding and encoding overlap another's
inference). At most twice ``jobs`` files are in flight, so a million inputs cost no
more memory than a few. A file that fails (not an image, over the limits, unreadable,
unwritable) is logged with its reason and counted; it never stops the run.

Each result is written to a temporary file beside its target, then renamed over it
(``os.replace``, atomic on one file system): an interrupted run leaves whole results
or none, so ``skip_existing`` resumes it. On Ctrl-C the files in progress are finished
and written, the rest are not started.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from app.cli.inputs import Job
from app.core.decoding.imaging import DecodeLimits, ImageRejected
from app.core.inference.segmenter import Segmenter
from app.core.options import RenderOptions
from app.core.pipeline import render

PROGRAM = "unet-segment"  # also the logger's name: the command's own lines, configured by app.cli.command
IN_FLIGHT_PER_THREAD = 2  # a file waiting for each thread, so no thread idles between files

logger = logging.getLogger(PROGRAM)


@dataclass
class Tally:
    """What happened to the jobs so far."""

    processed: int = 0
    failed: int = 0
    skipped: int = 0
    interrupted: bool = False


@dataclass
class Progress:
    """The tally, the progress bar and the files in flight, updated on the main thread only."""

    bar: tqdm
    tally: Tally = field(default_factory=Tally)
    pending: dict[Future[str | None], Job] = field(default_factory=dict)

    def skip(self) -> None:
        self.tally.skipped += 1
        self.bar.update()

    def count(self, done: set[Future[str | None]]) -> None:
        """Tallies finished jobs (waiting for any not finished yet) and logs each failure with its reason, in the
        order the jobs were given."""
        for future in [future for future in self.pending if future in done]:
            job = self.pending.pop(future)
            reason = future.result()
            if reason is None:
                self.tally.processed += 1
            else:
                self.tally.failed += 1
                logger.warning("failed %s: %s", job.source.path, reason)
            self.bar.update()


@dataclass(frozen=True)
class Runner:
    """Segments jobs with one model, one set of options and limits, on ``threads`` threads."""

    segmenter: Segmenter
    options: RenderOptions
    limits: DecodeLimits
    threads: int = 1

    def run(self, jobs: list[Job], skip_existing: bool) -> Tally:
        """Every job, or every job whose target is missing; progress on stderr (when it is a terminal)."""
        with logging_redirect_tqdm([logger]), tqdm(total=len(jobs), unit="image", file=sys.stderr, disable=None) as bar:
            progress = Progress(bar)
            pool = ThreadPoolExecutor(self.threads, thread_name_prefix="segment")
            try:
                self._submit_all(pool, jobs, skip_existing, progress)
            except KeyboardInterrupt:
                progress.tally.interrupted = True
                logger.warning("interrupted: finishing the files in progress; rerun with --skip-existing to resume")
            finally:
                finish(pool)
                progress.count({future for future in progress.pending if not future.cancelled()})
        return progress.tally

    def _submit_all(self, pool: ThreadPoolExecutor, jobs: list[Job], skip_existing: bool, progress: Progress) -> None:
        for job in jobs:
            if skip_existing and job.target.exists():
                progress.skip()
                continue
            progress.pending[pool.submit(self.segment, job)] = job
            if len(progress.pending) >= IN_FLIGHT_PER_THREAD * self.threads:
                done, _ = wait(progress.pending, return_when=FIRST_COMPLETED)
                progress.count(done)
        progress.count(set(progress.pending))

    def segment(self, job: Job) -> str | None:
        """One file read, rendered and written; None when it worked, else why not."""
        try:
            data = job.source.path.read_bytes()
            result = render(self.segmenter, data, self.limits, self.options).result
            write_atomically(job.target, result.body)
        except ImageRejected as rejected:  # its reason, of this file; its remedy is worded for HTTP clients
            return rejected.reason
        except OSError as error:  # unreadable input, unwritable output, a full disk
            return f"{type(error).__name__}: {error}"
        except Exception as error:  # a bug: its traceback in the log, and the run goes on
            logger.exception("%s: unexpected error", job.source.path)
            return f"internal error ({type(error).__name__}: {error})"
        return None


def finish(pool: ThreadPoolExecutor) -> None:
    """Cancels the files not started and waits for those in progress (one per thread). Another Ctrl-C does not
    cut that short: the threads would finish their files before the interpreter exits anyway, and the summary
    line would be lost (``timeout -s INT`` delivers SIGINT twice: to the command, then to its process group)."""
    while True:
        try:
            pool.shutdown(wait=True, cancel_futures=True)
            return
        except KeyboardInterrupt:
            logger.warning("still finishing the files in progress")


def write_atomically(target: Path, body: bytes | bytearray) -> None:
    """``body`` into a temporary file beside ``target``, then renamed over it: never a half-written ``target``,
    and no temporary file left behind, whatever stops it (an error, Ctrl-C)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    try:
        with os.fdopen(descriptor, "wb") as part:
            part.write(body)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
