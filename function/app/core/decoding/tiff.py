"""A compressed TIFF decoded a band of strips at a time, so its file is never held whole in memory.

Pillow decodes every compressed TIFF with libtiff in one call (``TiffImagePlugin._load_libtiff``).
Given a file, libtiff maps all of it; given a stream without a descriptor, Pillow reads all of it
into memory. A 40 MP LZW TIFF is ~138 MB: 3.5 bytes per pixel beside the decoded image
(docs/benchmarks.md, "Memory per pixel"). A strip is compressed on its own (TIFF 6.0, section 3:
"StripOffsets"), so a band of them is a complete image: ``decode_in_bands`` copies each band's
strips out of the file into a small TIFF of its own (the original's byte order and pixel tags, only
that band's rows) that Pillow and libtiff decode as before, and pastes the band into the image. The
pixels are the same; the file is read a band at a time.

Only striped, contiguous, single-plane layouts with a lossless, per-strip compression are banded
(``BANDED_COMPRESSIONS``); YCbCr, tiles, separate planes, a file of one band and a strip table that
does not fit the file or the image (which libtiff words its own error for) decode whole, as before.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import accumulate
from typing import IO

from PIL import Image, TiffImagePlugin, TiffTags

from app.core.resources.bands import rows_per_band

# Pillow's names (TiffImagePlugin.COMPRESSION_INFO) of the codecs whose strips decode on their own.
BANDED_COMPRESSIONS = frozenset({"tiff_lzw", "tiff_adobe_deflate", "tiff_deflate", "packbits", "zstd"})

# What libtiff needs to decode a strip's pixels, copied into each band's TIFF; never an offset into the
# original file (EXIF, GPS, sub-IFDs), so a band's TIFF refers to nothing outside itself.
PIXEL_TAGS = (
    258,  # BitsPerSample
    259,  # Compression
    262,  # PhotometricInterpretation
    266,  # FillOrder
    277,  # SamplesPerPixel
    284,  # PlanarConfiguration
    317,  # Predictor
    320,  # ColorMap
    338,  # ExtraSamples
    339,  # SampleFormat
)
IMAGE_WIDTH, IMAGE_LENGTH, STRIP_BYTE_COUNTS = 256, 257, 279
PLANAR_CONTIGUOUS, PHOTOMETRIC_YCBCR = 1, 6
# libtiff reads a file with these as tiled, its StripOffsets as tile offsets: never banded
TILE_TAGS = (322, 323, 324, 325)  # TileWidth, TileLength, TileOffsets, TileByteCounts
# Pixel tags of one value (TIFF 6.0). Where the file declares another count, Pillow and libtiff read it
# differently (libtiff ignores a Predictor of 2 values, Pillow reads one): such a file is decoded whole.
ONE_VALUE_TAGS = frozenset({259, 262, 266, 277, 284, 317})


@dataclass(frozen=True)
class StripLayout:
    """Where a TIFF's strips lie in its file, and how many rows each holds (the last may hold fewer)."""

    offsets: tuple[int, ...]
    byte_counts: tuple[int, ...]
    rows_per_strip: int
    height: int

    def bands(self, strips_per_band: int) -> Iterator[tuple[int, int, range]]:
        """(top row, rows, strip indices) of each band of ``strips_per_band`` strips, top to bottom."""
        for first in range(0, len(self.offsets), strips_per_band):
            top = first * self.rows_per_strip
            strips = range(first, min(first + strips_per_band, len(self.offsets)))
            yield top, min(len(strips) * self.rows_per_strip, self.height - top), strips


def decode_in_bands(image: TiffImagePlugin.TiffImageFile, band_rows: int | None = None) -> Image.Image | None:
    """``image``'s pixels (its mode, size and ``info``), decoded ``band_rows`` rows at a time (at least a
    strip; ``rows_per_band`` by default); None where its layout is not banded (the module docstring)."""
    band_rows = band_rows or rows_per_band(image.width)
    if band_rows >= image.height:
        return None  # one band: nothing to gain (and the file's IFD is not read again)
    layout = strip_layout(image)
    if layout is None:
        return None
    strips_per_band = max(1, band_rows // layout.rows_per_strip)
    if strips_per_band >= len(layout.offsets):
        return None  # a strip taller than a band: one band
    decoded = Image.new(image.mode, image.size)
    if image.palette is not None:
        decoded.putpalette(image.palette)
    for top, rows, strips in layout.bands(strips_per_band):
        band = _decode_band(image, layout, strips, rows)
        if band.mode != image.mode or band.size != (image.width, rows):
            return None  # read differently on its own: the whole file is decoded instead
        decoded.paste(band, (0, top))
    decoded.info = dict(image.info)
    return decoded


def strip_layout(image: TiffImagePlugin.TiffImageFile) -> StripLayout | None:
    """The strips of a banded layout (the module docstring) that all lie inside the file; else None."""
    tags = image.tag_v2
    if (image.info.get("compression") not in BANDED_COMPRESSIONS or tags.get(284, 1) != PLANAR_CONTIGUOUS
            or tags.get(262) == PHOTOMETRIC_YCBCR or TiffImagePlugin.STRIPOFFSETS not in tags
            or any(tag in tags for tag in TILE_TAGS) or not _one_value_each(image)):
        return None
    offsets, counts = _as_tuple(tags[TiffImagePlugin.STRIPOFFSETS]), _as_tuple(tags.get(STRIP_BYTE_COUNTS))
    rows_per_strip = tags.get(TiffImagePlugin.ROWSPERSTRIP, image.height)
    if not isinstance(rows_per_strip, int) or rows_per_strip < 1 or not _fits(offsets, counts, image):
        return None
    rows_per_strip = min(rows_per_strip, image.height)
    if len(offsets) != math.ceil(image.height / rows_per_strip):
        return None
    return StripLayout(offsets, counts, rows_per_strip, image.height)


def _fits(offsets: tuple[int, ...], counts: tuple[int, ...], image: TiffImagePlugin.TiffImageFile) -> bool:
    """Every strip inside the file, and all of them together no larger than it: strips that overlap (a hostile
    table pointing every strip at one large block) would be read once per strip, where libtiff maps them once."""
    size = _file(image).seek(0, io.SEEK_END)
    if len(offsets) != len(counts) or not counts:
        return False
    inside = all(isinstance(offset, int) and isinstance(count, int) and 0 <= offset and 0 <= count
                 and offset + count <= size for offset, count in zip(offsets, counts, strict=True))
    return inside and sum(counts) <= size


def _one_value_each(image: TiffImagePlugin.TiffImageFile) -> bool:
    """Whether the file's IFD declares one value for each of ``ONE_VALUE_TAGS`` it has (read from its entries:
    Pillow keeps no counts)."""
    tags, file = image.tag_v2, _file(image)
    big = getattr(tags, "_bigtiff", False)
    entry_size, count_format = (20, "Q") if big else (12, "L")
    file.seek(tags.offset)
    number = tags._unpack("Q" if big else "H", file.read(8 if big else 2))[0]
    entries = file.read(number * entry_size)
    for start in range(0, len(entries) - entry_size + 1, entry_size):
        tag, _, count = tags._unpack("HH" + count_format, entries[start:start + 4 + (8 if big else 4)])
        if tag in ONE_VALUE_TAGS and count != 1:
            return False
    return True


def _file(image: TiffImagePlugin.TiffImageFile) -> IO[bytes]:
    if image.fp is None:  # closed: Pillow's own load would fail the same way
        raise ValueError("the TIFF's file is closed")
    return image.fp


def _as_tuple(value: object) -> tuple[int, ...]:
    if isinstance(value, tuple):
        return value
    return () if value is None else (value,)  # type: ignore[return-value]


def _decode_band(image: TiffImagePlugin.TiffImageFile, layout: StripLayout, strips: range,
                 rows: int) -> Image.Image:
    """The band's strips, read from ``image``'s file, decoded as a TIFF of their own."""
    file, data = _file(image), []
    for strip in strips:
        file.seek(layout.offsets[strip])
        data.append(file.read(layout.byte_counts[strip]))
    with Image.open(io.BytesIO(band_file(image, layout, data, rows)), formats=("TIFF",)) as band:
        band.load()  # the pixels stay with the image once its file is closed
        return band


def band_file(image: TiffImagePlugin.TiffImageFile, layout: StripLayout, data: list[bytes], rows: int) -> bytes:
    """A TIFF in ``image``'s byte order: its header, an IFD of its pixel tags for ``rows`` rows, then the strips
    (``ImageFileDirectory_v2.tobytes`` moves the strip offsets past the IFD)."""
    source = image.tag_v2
    ifd = TiffImagePlugin.ImageFileDirectory_v2(prefix=source.prefix)
    for tag in PIXEL_TAGS:
        value = source.get(tag)  # None for a tag absent, or present but unreadable (libtiff's default then)
        if value is not None:
            ifd[tag], ifd.tagtype[tag] = value, source.tagtype[tag]
    starts = (0, *accumulate(len(strip_data) for strip_data in data[:-1]))
    for tag, value in ((IMAGE_WIDTH, image.width), (IMAGE_LENGTH, rows), (TiffImagePlugin.ROWSPERSTRIP,
                       layout.rows_per_strip), (TiffImagePlugin.STRIPOFFSETS, starts),
                       (STRIP_BYTE_COUNTS, tuple(len(strip_data) for strip_data in data))):
        ifd[tag], ifd.tagtype[tag] = value, TiffTags.LONG
    header = source.prefix + (b"\x2a\x00\x08\x00\x00\x00" if source.prefix == b"II" else b"\x00\x2a\x00\x00\x00\x08")
    return header + ifd.tobytes(len(header)) + b"".join(data)
