"""The bucket's layout: ``uploads/`` in, ``overlays/`` out, output keys derived from the input key.

``uploads/<id>/cat.jpg`` -> ``overlays/<id>/cat.jpg.png`` (the result asked for: the
overlay; ``.mask``/``.cutout`` before the suffix for those outputs, the suffix by
format), ``overlays/<id>/cat.jpg.mask.png`` (the 0/255 mask, always PNG) and
``overlays/<id>/cat.jpg.json`` (the summary, written last). Deriving outputs from
the input key makes S3's at-least-once delivery overwrite, never duplicate. The
upload flow's keys are ``uploads/<32 hex id>/<sanitised file name>``.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from app.core.encoding import SUFFIXES
from app.core.options import RenderOptions

UPLOAD_PREFIX = "uploads/"
OUTPUT_PREFIX = "overlays/"
OUTPUT_INFIX = {"overlay": "", "mask": ".mask", "cutout": ".cutout"}  # json: the summary carries it
UPLOAD_ID = re.compile(r"[0-9a-f]{32}")  # uuid4().hex: 122 random bits
MAX_NAME_BYTES = 200  # S3 keys hold 1024 bytes; the prefix and our suffixes take < 80 of them
FALLBACK_NAME = "image"


@dataclass(frozen=True)
class OutputKeys:
    """Where one upload's outputs go; ``result`` is None for ``output=json`` (the summary carries the RLE)."""

    result: str | None
    mask: str
    summary: str


def is_upload_key(key: str) -> bool:
    """Keys this service processes as uploads: under ``uploads/``, and not a folder marker."""
    return key.startswith(UPLOAD_PREFIX) and not key.endswith("/")


def output_keys(key: str, options: RenderOptions) -> OutputKeys:
    """The outputs of upload ``key`` made with ``options`` (``key`` must be an upload key)."""
    stem = output_stem(key)
    result = None
    if options.output != "json":
        result = f"{stem}{OUTPUT_INFIX[options.output]}{SUFFIXES[options.format]}"
    return OutputKeys(result=result, mask=f"{stem}.mask.png", summary=summary_key(key))


def summary_key(key: str) -> str:
    """Where the summary of upload ``key`` goes: its presence means every other output is there."""
    return f"{output_stem(key)}.json"


def output_stem(key: str) -> str:
    if not is_upload_key(key):
        raise ValueError(f"{key!r} is not an upload: only keys under {UPLOAD_PREFIX} are")
    return OUTPUT_PREFIX + key.removeprefix(UPLOAD_PREFIX)


def upload_key(upload_id: str, filename: str) -> str:
    return f"{UPLOAD_PREFIX}{upload_id}/{sanitise_filename(filename)}"


def uploads_of(upload_id: str) -> str:
    """The prefix under which upload ``upload_id`` lies."""
    return f"{UPLOAD_PREFIX}{upload_id}/"


def sanitise_filename(name: str) -> str:
    """A file name safe as one key segment: the last path part, no control characters, no leading dots,
    at most MAX_NAME_BYTES of UTF-8 (the extension kept); letters of any script stay as they are."""
    last = re.split(r"[/\\]", unicodedata.normalize("NFC", name))[-1]
    visible = "".join(char for char in last if unicodedata.category(char)[0] != "C")
    cleaned = re.sub(r"\s+", " ", visible).strip(" .")
    return _cap(cleaned, MAX_NAME_BYTES) or FALLBACK_NAME


def _cap(name: str, limit: int) -> str:
    """``name`` cut to ``limit`` UTF-8 bytes before its extension (a short extension survives)."""
    if len(name.encode()) <= limit:
        return name
    stem, dot, extension = name.rpartition(".")
    if not dot or not stem or len(extension.encode()) > 16:
        stem, dot, extension = name, "", ""
    keep = limit - len(extension.encode()) - len(dot)
    cut = stem.encode()[:keep].decode(errors="ignore").rstrip(" .")
    return f"{cut}{dot}{extension}" if extension else cut
