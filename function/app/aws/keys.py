"""The bucket's layout: sources in, ``overlays/`` out, output keys derived from the source key.

``uploads/<id>/cat.jpg`` -> ``overlays/<id>/cat.jpg.png`` (the result asked for, named
by ``app.core.naming``: ``.mask``/``.cutout`` before the format's suffix for those
outputs), ``overlays/<id>/cat.jpg.mask.png`` (the 0/255 mask, always PNG) and
``overlays/<id>/cat.jpg.json`` (the summary, written last). Deriving outputs from the
source key makes S3's at-least-once delivery (and Batch Operations' retries) overwrite,
never duplicate. The upload flow's keys are ``uploads/<32 hex id>/<sanitised file name>``.

Any other key (S3 Batch Operations processes stored objects wherever they are) keeps
its whole key under ``overlays/``: ``photos/2019/cat.jpg`` -> ``overlays/photos/2019/cat.jpg.png``.
Only ``uploads/`` is dropped, so the upload flow finds its results by id. Keys under
``overlays/`` are our own outputs and never a source, so no run ever feeds on itself.
(A key whose first segment is 32 hex digits would share its outputs with the upload of
that id: ids are 122 random bits, so only someone who can write the bucket could aim at one.)
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from app.core.naming import result_name, sanitise_filename
from app.core.options import RenderOptions

UPLOAD_PREFIX = "uploads/"
OUTPUT_PREFIX = "overlays/"
UPLOAD_ID = re.compile(r"[0-9a-f]{32}")  # uuid4().hex: 122 random bits
MASK_SUFFIX = ".mask.png"
SUMMARY_SUFFIX = ".json"


@dataclass(frozen=True)
class OutputKeys:
    """Where one source's outputs go; ``result`` is None for ``output=json`` (the summary carries the RLE)."""

    result: str | None
    mask: str
    summary: str


def is_upload_key(key: str) -> bool:
    """Keys the upload trigger processes: under ``uploads/``, and not a folder marker."""
    return key.startswith(UPLOAD_PREFIX) and not key.endswith("/")


def is_source_key(key: str) -> bool:
    """Keys this service may process at all: not one of its outputs, not a folder marker, not empty."""
    return bool(key) and not key.startswith(OUTPUT_PREFIX) and not key.endswith("/")


def output_keys(key: str, options: RenderOptions) -> OutputKeys:
    """The outputs of source ``key`` made with ``options``."""
    stem = output_stem(key)
    result = None if options.output == "json" else result_name(stem, options)
    return OutputKeys(result=result, mask=stem + MASK_SUFFIX, summary=summary_key(key))


def summary_key(key: str) -> str:
    """Where the summary of source ``key`` goes: its presence means every other output is there."""
    return output_stem(key) + SUMMARY_SUFFIX


def output_stem(key: str) -> str:
    if not is_source_key(key):
        raise ValueError(f"{key!r} is not a source: keys under {OUTPUT_PREFIX} are outputs, keys ending in / folders")
    return OUTPUT_PREFIX + key.removeprefix(UPLOAD_PREFIX)


def upload_key(upload_id: str, filename: str) -> str:
    return f"{UPLOAD_PREFIX}{upload_id}/{sanitise_filename(filename)}"


def uploads_of(upload_id: str) -> str:
    """The prefix under which upload ``upload_id`` lies."""
    return f"{UPLOAD_PREFIX}{upload_id}/"
