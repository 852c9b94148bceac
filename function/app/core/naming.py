"""How results are named, wherever they are written: a bucket key, a zip entry, a file on disk.

A result is named after its input with a suffix that says what it is and how it is
encoded: ``cat.jpg`` -> ``cat.jpg.png`` (the overlay), ``cat.jpg.mask.png``,
``cat.jpg.cutout.webp``, ``cat.jpg.json`` (``output=json``). Keeping the input's
whole name, extension included, means ``cat.jpg`` and ``cat.png`` never collide,
and a rerun overwrites (or skips) the same name. The S3 trigger, Batch Operations,
``POST /predict/batch`` and ``unet-segment`` all name their results this way.
"""

from __future__ import annotations

import re
import unicodedata

from app.core.options import Output, RenderOptions
from app.core.output.encoding import SUFFIXES

RESULT_INFIX: dict[Output, str] = {"overlay": "", "mask": ".mask", "cutout": ".cutout", "json": ""}
JSON_SUFFIX = ".json"
MAX_NAME_BYTES = 200  # S3 keys hold 1024 bytes; a prefix and our suffixes take < 80 of them
FALLBACK_NAME = "image"


def result_suffix(options: RenderOptions) -> str:
    """What follows the input's name: ``.png``, ``.mask.jpg``, ``.cutout.webp``, ``.json``."""
    if options.output == "json":
        return JSON_SUFFIX
    return RESULT_INFIX[options.output] + SUFFIXES[options.format]


def result_name(name: str, options: RenderOptions) -> str:
    """``name`` (a file name, a relative path or a key) with the suffix of the result ``options`` ask for."""
    return name + result_suffix(options)


def sanitise_filename(name: str) -> str:
    """A file name safe as one key segment or zip entry: the last path part, no control characters, no leading
    dots, at most MAX_NAME_BYTES of UTF-8 (the extension kept); letters of any script stay as they are."""
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
