"""app.core.decoding.heif: which plugin a HEIF container goes to, by its ftyp brands; the decoders as registered."""

from __future__ import annotations

import io
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import AvifImagePlugin, Image

from app.core.decoding import heif
from app.core.decoding.heif import ftyp_brands, heif_format, meta_end, unreadable_item_strings
from app.core.decoding.imaging import HEAD_BYTES, CorruptImage, DecodeLimits, decode_image
from app.core.resources.cpus import usable_cpus
from tests.samples import heic


def ftyp(major: bytes, *compatible: bytes, declared: int | None = None) -> bytes:
    size = 16 + 4 * len(compatible) if declared is None else declared
    return struct.pack(">I", size) + b"ftyp" + major + b"\x00\x00\x00\x00" + b"".join(compatible) + b"\x00" * 64


# id: (file start, brands, plugin)
FILES = {
    "iphone-heic": (ftyp(b"heic", b"mif1", b"MiHB", b"MiHA", b"heic", b"MiPr", b"miaf", b"tmap"),
                    ("heic", "mif1", "MiHB", "MiHA", "heic", "MiPr", "miaf", "tmap"), "HEIF"),
    "heix-10bit": (ftyp(b"heix", b"mif1", b"heix"), ("heix", "mif1", "heix"), "HEIF"),
    "mif1-hevc": (ftyp(b"mif1", b"mif1", b"heic"), ("mif1", "mif1", "heic"), "HEIF"),
    "msf1-sequence": (ftyp(b"msf1", b"msf1"), ("msf1", "msf1"), "HEIF"),
    "libavif": (ftyp(b"avif", b"avif", b"mif1", b"miaf", b"MA1B"), ("avif", "avif", "mif1", "miaf", "MA1B"), "AVIF"),
    "animated-avif": (ftyp(b"avis", b"avis", b"msf1"), ("avis", "avis", "msf1"), "AVIF"),
    "mif1-av1": (ftyp(b"mif1", b"mif1", b"avif"), ("mif1", "mif1", "avif"), "AVIF"),  # avif decides over mif1
    "mp4-video": (ftyp(b"isom", b"isom", b"mp41"), ("isom", "isom", "mp41"), None),
    "canon-cr3": (ftyp(b"crx ", b"crx ", b"isom"), ("crx ", "crx ", "isom"), None),
    "no-compatible-brands": (ftyp(b"heic"), ("heic",), "HEIF"),
    # a box size past the data is cut to the data; 0 ("to the end of the file") likewise
    "size-past-the-end": (ftyp(b"avif", b"avif", declared=1 << 30)[:24], ("avif", "avif", "\x00" * 4), "AVIF"),
    "jpeg": (b"\xff\xd8\xff\xe0" + b"\x00" * 20, (), None),
    "ftyp-without-a-brand": (b"\x00\x00\x00\x18ftyp", (), None),
}


@pytest.mark.parametrize(("data", "brands", "plugin"), FILES.values(), ids=FILES)
def test_the_brands_name_the_plugin(data: bytes, brands: tuple[str, ...], plugin: str | None) -> None:
    assert (ftyp_brands(data), heif_format(data)) == (brands, plugin)


def test_at_most_64_compatible_brands_are_read() -> None:
    data = ftyp(b"mif1", *[b"miaf"] * 1000, b"avif")
    assert (len(ftyp_brands(data)), heif_format(data)) == (65, "HEIF")


# In a fresh interpreter: the decoding modules imported, then a HEIC decoded. Prints what was loaded when.
FIRST_HEIF = """
import sys
from PIL import Image
from app.core.decoding.imaging import DecodeLimits, decode_image
before = "pi_heif" in sys.modules
decode_image(open(sys.argv[1], "rb").read(), DecodeLimits(max_bytes=10**6, max_pixels=10**6))
Image.init()
print(before, Image.OPEN["HEIF"][0].__module__, "HEIF" in Image.SAVE)
"""


def test_heif_is_registered_by_the_first_heif_file_to_decode_and_never_to_encode(tmp_path: Path) -> None:
    # pi-heif is ~7 ms of a cold start: not imported until a HEIF file arrives
    path = tmp_path / "photo.heic"
    path.write_bytes(heic(Image.new("RGB", (16, 12), (10, 200, 30))))
    printed = subprocess.run([sys.executable, "-c", FIRST_HEIF, str(path)], capture_output=True, text=True, check=True,
                             cwd=Path(heif.__file__).parents[3]).stdout.split()
    # THEN not imported before, the opener afterwards, and still no encoder: nothing here can write a HEIF
    assert printed == ["False", "pi_heif.as_plugin", "False"]


def test_the_avif_decoder_uses_the_usable_cpus() -> None:
    assert AvifImagePlugin.DEFAULT_MAX_THREADS == usable_cpus()


def infe(version: int, rest: bytes) -> bytes:
    """An item info entry: version/flags, item_ID (32-bit from version 3), protection index, then ``rest``."""
    body = bytes([version, 0, 0, 0]) + (b"\x00\x00\x00\x01" if version >= 3 else b"\x00\x01") + b"\x00\x00" + rest
    return struct.pack(">I", 8 + len(body)) + b"infe" + body


def heif_with_items(*entries: bytes, iinf_version: int = 0) -> bytes:
    count = struct.pack(">H" if iinf_version == 0 else ">I", len(entries))
    iinf_body = bytes([iinf_version, 0, 0, 0]) + count + b"".join(entries)
    iinf = struct.pack(">I", 8 + len(iinf_body)) + b"iinf" + iinf_body
    meta = struct.pack(">I", 12 + len(iinf)) + b"meta" + b"\x00" * 4 + iinf
    return ftyp(b"heic", b"mif1")[:20] + meta


# id: (file, whether pi-heif could not read one of its item strings)
ITEM_STRINGS = {
    "hevc-and-exif": (heif_with_items(infe(2, b"hvc1\x00"), infe(2, b"Exif\x00")), False),
    "mime-xmp": (heif_with_items(infe(2, b"mime\x00application/rdf+xml\x00")), False),
    "version-3-ids": (heif_with_items(infe(3, b"hvc1\x00"), iinf_version=1), False),
    "unicode-name": (heif_with_items(infe(2, "hvc1caf\u00e9\x00".encode())), False),
    "type-not-utf8": (heif_with_items(infe(2, b"E\x88\x96f\x00")), True),  # what make fuzz found
    "name-not-utf8": (heif_with_items(infe(2, b"hvc1\xff\xfe\x00")), True),
    "content-type-not-utf8": (heif_with_items(infe(2, b"mime\x00\xc3\x00")), True),
    "version-0-name-not-utf8": (heif_with_items(infe(0, b"\x80\x00")), True),
    "truncated-box": (heif_with_items(infe(2, b"E\x88\x96f\x00"))[:-3], False),  # left to libheif to refuse
}


@pytest.mark.parametrize(("data", "unreadable"), ITEM_STRINGS.values(), ids=ITEM_STRINGS.keys())
def test_item_strings_pi_heif_cannot_read_are_found(data: bytes, unreadable: bool) -> None:
    assert unreadable_item_strings(data) is unreadable


def test_meta_end_is_read_from_the_box_headers_in_the_head() -> None:
    many = heif_with_items(*[infe(2, b"hvc1\x00")] * 400, infe(2, b"E\x88\x96f\x00"))  # ~8 KB of meta
    assert len(many) > HEAD_BYTES and meta_end(many[:HEAD_BYTES]) == len(many)
    assert meta_end(ftyp(b"heic", b"mif1")[:20] + struct.pack(">I", 0) + b"meta") is None  # "to the end of file"
    assert meta_end(ftyp(b"heic", b"mif1")[:20]) is None  # no meta header in the head


def test_a_bad_item_past_the_head_of_a_streamed_upload_is_still_refused() -> None:
    # The HTTP path decodes from the spooled upload: the item check reads up to meta's end, not just the head.
    many = heif_with_items(*[infe(2, b"hvc1\x00")] * 400, infe(2, b"E\x88\x96f\x00"))
    assert not unreadable_item_strings(many[:HEAD_BYTES]) and unreadable_item_strings(many)
    with pytest.raises(CorruptImage, match="item information is corrupt"):
        decode_image(io.BytesIO(many), DecodeLimits(max_bytes=10**6, max_pixels=10**6))
