"""HEIF containers (ISO/IEC 23008-12), as phones save photos: HEIC through pi-heif, AVIF through Pillow.

Which of the two a file is comes from the brands of its ``ftyp`` box (ISO/IEC 14496-12
section 4.3: the major brand, then the compatible ones), never from its name: AVIF if
any brand is ``avif``/``avis``, else HEIF if any is ``heic``/``heix``/``mif1``/``msf1``.
``mif1`` alone says "some HEIF image" and AVIF files list it too, hence AVIF first.
``app.core.decoding.imaging`` then lets that one plugin parse the bytes.

Decoders: AVIF's set up at import; pi-heif imported and registered when the first HEIF file arrives
(``use_heif_decoder``), since importing it is ~7 ms of every cold start (python -X importtime, 2026-12-08):

- HEIF: pi-heif (libheif + libde265), the decode-only build of pillow-heif: 4.3 MB in
  the Lambda layer where pillow-heif's x265 encoder makes it 27.4 MB (docs/benchmarks.md).
  Its thumbnail, depth and auxiliary image support is switched off; only the primary
  image (``pitm``) is ever decoded. libheif applies the container's ``irot``/``imir`` while
  decoding and pi-heif then resets the EXIF orientation to 1, so it is applied once.
- AVIF: Pillow's own plugin (libavif). It does not turn the pixels; it reports
  ``irot``/``imir`` as the EXIF orientation instead, which ``imaging.upright`` applies.

Either way the container's transforms decide and an EXIF orientation of its own is
ignored, as MIAF (ISO/IEC 23000-22:2024, 7.3.10.1) tells readers to: "If present, they
shall be ignored" (https://github.com/strukturag/libheif/issues/227, libavif#3078).
10- and 12-bit images come out as 8-bit RGB, scaled by the decoders (1023 -> 255).
"""

from __future__ import annotations

import struct
import threading

from PIL import AvifImagePlugin

from app.core.resources.cpus import process_cpus

AVIF_BRANDS = frozenset({"avif", "avis"})
HEIF_BRANDS = frozenset({"heic", "heix", "mif1", "msf1"})
FTYP_OFFSET, BRAND_BYTES = 8, 4  # box size (4) and type (4), then the major brand; ISO/IEC 14496-12 4.3
MAX_BRANDS = 64  # more compatible brands than any real file lists: the rest is not read


def heif_format(data: bytes) -> str | None:
    """Pillow's plugin for the file: "AVIF", "HEIF" or None (not a HEIF container we decode)."""
    brands = ftyp_brands(data)
    if AVIF_BRANDS.intersection(brands):
        return "AVIF"
    if HEIF_BRANDS.intersection(brands):
        return "HEIF"
    return None


def ftyp_brands(data: bytes) -> tuple[str, ...]:
    """The major and compatible brands of a leading ``ftyp`` box; () when the file has none."""
    if len(data) < FTYP_OFFSET + BRAND_BYTES or data[4:8] != b"ftyp":
        return ()
    size = min(struct.unpack(">I", data[:4])[0], len(data), FTYP_OFFSET + (MAX_BRANDS + 2) * BRAND_BYTES)
    major = data[FTYP_OFFSET : FTYP_OFFSET + BRAND_BYTES]
    compatible_start = FTYP_OFFSET + 2 * BRAND_BYTES  # after the major brand and the minor version
    compatible = [data[at : at + BRAND_BYTES] for at in range(compatible_start, size - BRAND_BYTES + 1, BRAND_BYTES)]
    return tuple(brand.decode("latin-1") for brand in (major, *compatible))


# --- item strings pi-heif cannot read ------------------------------------------------------------
# pi-heif 1.4.0 turns each item's type and names into Python strings without checking them: one that
# is not UTF-8 (a 1 KB upload, found by make fuzz: tests/corpus/fuzz/decode/heif-item-type-not-utf8.heic)
# crashes the whole process with a segmentation fault while the file is opened. pillow-heif 1.8.1
# reads the same file; pi-heif has no newer release. So such files are refused before pi-heif sees them.
CONTAINER_HEADERS = {b"meta": 4}  # boxes holding boxes, and the bytes of their own header (version, flags)
ITEM_INFO, ITEM_ENTRY = b"iinf", b"infe"
BOX_HEADER = 8  # size (4) and type (4); ISO/IEC 14496-12 4.2


def unreadable_item_strings(data: bytes) -> bool:
    """True if an ``infe`` item's type, name or content type is not UTF-8 (see above); ``data``: the file up to
    the end of its ``meta`` box at least (``meta_end``)."""
    return any(not _utf8(entry) for entry in item_entries(data, 0, len(data)))


def meta_end(head: bytes) -> int | None:
    """Where the file's top-level ``meta`` box ends, from the box headers in ``head`` (its body may lie past the
    head, as an item-rich one does). None: the whole file (no ``meta`` header within ``head``, or a size of 0,
    "to the end", or 1, 64-bit)."""
    start = 0
    while start + BOX_HEADER <= len(head):
        size, kind = struct.unpack(">I4s", head[start : start + BOX_HEADER])
        if size < BOX_HEADER:
            return None
        if kind in CONTAINER_HEADERS:
            return start + size
        start += size
    return None


def item_entries(data: bytes, start: int, end: int) -> list[bytes]:
    """The bodies of the ``infe`` boxes under ``meta``/``iinf``, from their item type or name on."""
    found: list[bytes] = []
    for kind, body, stop in _boxes(data, start, end):
        if kind in CONTAINER_HEADERS:
            found += item_entries(data, body + CONTAINER_HEADERS[kind], stop)
        elif kind == ITEM_INFO and body < stop:
            found += item_entries(data, body + (6 if data[body] == 0 else 8), stop)  # version 0: 16-bit count
        elif kind == ITEM_ENTRY and body < stop:
            version = data[body]
            id_bytes = 4 if version >= 3 else 2
            found.append(data[body + 4 + id_bytes + 2 : stop])  # after version/flags, item_ID, protection index
    return found


def _boxes(data: bytes, start: int, end: int) -> list[tuple[bytes, int, int]]:
    """(type, body start, end) of the boxes in ``data[start:end]``; stops at the first that does not fit."""
    boxes = []
    while start + BOX_HEADER <= end:
        size, kind = struct.unpack(">I4s", data[start : start + BOX_HEADER])
        size = end - start if size == 0 else size
        if size < BOX_HEADER or start + size > end:  # 64-bit sizes (1) and broken ones: left to libheif
            break
        boxes.append((kind, start + BOX_HEADER, start + size))
        start += size
    return boxes


def _utf8(text: bytes) -> bool:
    try:
        text.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def register_decoders() -> None:
    """Pillow's AVIF decoder's threads (pi-heif's are set when it is registered: ``use_heif_decoder``)."""
    # Pillow's AVIF decoder counts the affinity mask, not a cgroup quota (a module global by design:
    # https://github.com/python-pillow/Pillow/issues/569).
    AvifImagePlugin.DEFAULT_MAX_THREADS = process_cpus()


_heif_registration = threading.Lock()
_heif_registered = False


def use_heif_decoder() -> None:
    """pi-heif as Pillow's "HEIF" opener (it has no encoder: decode only), registered once, by the first caller."""
    global _heif_registered
    with _heif_registration:
        if not _heif_registered:
            import pi_heif  # here, not at the module's top: the cold start does not pay for it (module docstring)

            pi_heif.register_heif_opener(thumbnails=False, depth_images=False, aux_images=False,
                                         decode_threads=process_cpus())
            _heif_registered = True


register_decoders()
