"""PNG encoding for responses and S3 outputs: numpy's Up filter, then ISA-L's deflate.

Why not Pillow: its encoder tries None, Sub, Up and Paeth on every row and keeps
the best (src/libImaging/ZipEncode.c, no option to pick one), then deflates with
zlib, so even ``compress_level=1`` costs more than the model itself. Here the
filter is fixed to Up (a vectorised subtraction, ~3 ms at 1080p) and deflate is
ISA-L's level 1 (https://github.com/intel/isa-l, Python binding `isal`,
https://github.com/pycompression/python-isal): the same size as Pillow's level 1
at about 1/7 of its time.

Measured side by side in one run (`python -m bench.png_candidates`, 2-core x86_64,
CPython 3.11, photo-like overlays from ``bench.photo``; medians of 11 interleaved
rounds at 1080p and 5 at 12 MP; ratio to Pillow level 1 in the same run):

    encoder                          1080p ms  ratio    MB   12 MP ms  ratio     MB
    Pillow compress_level=6             1816    6.74   2.67      6712   5.84   14.45
    Pillow compress_level=1              270    1.00   3.04      1149   1.00   16.30
    Pillow compress_level=0              156    0.58   6.22       628   0.55   36.01
    numpy Up + stdlib zlib 1             123    0.45   3.13       583   0.51   15.96
    numpy Up + zlib-ng 1                  92    0.34   4.52       431   0.38   23.36
    numpy Up + libdeflate 1               61    0.23   2.96       383   0.33   15.15
    numpy Up + ISA-L 0                    35    0.13   3.85       189   0.16   18.30
    numpy Up + ISA-L 1 (this module)      39    0.14   3.02       193   0.17   15.70
    same, 2 stripes in 2 threads          48    0.18   3.02       259   0.23   15.70
    fpng (py-fpng-nb 0.1.0)               17    0.06   3.22       199   0.17   17.45
    imagecodecs png level 1              213    0.79   3.03      1104   0.96   16.08

docs/benchmarks.md has the reasons for the rest: fpng is faster at 1080p but an
alpha, single-release wrapper without greyscale; imagecodecs is a 28 MB wheel. The
"2 stripes in 2 threads" row deflated each half in a thread after filtering the whole
image in one; here each band is filtered *and* deflated in its thread
(``app.core.resources.bands``, one band per core's share, joined as pigz joins them), and
``make bench`` measures the encode stage against ISA-L's single call on the same bytes
(docs/benchmarks.md, "stage floors"). With one usable CPU it runs as one stream did.

A 1080p overlay stays ~3 MB, ~4 MB after base64: inside Lambda's 6 MB response
limit. No lossless encoder gets a 12 MP photo under it (all >= 14 MB): those go
through the S3 trigger.

An ICC profile, when given, is written as an ``iCCP`` chunk before the image data
(PNG spec 11.3.3.3: a name, a null, compression method 0, the zlib-compressed profile).
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable, Generator, Iterable
from contextlib import closing
from functools import partial

import numpy as np
from isal import isal_zlib
from PIL import Image

from app.core.resources.bands import map_bands

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
COLOR_TYPES = {"L": 0, "RGB": 2, "RGBA": 6}  # PNG spec 11.2.2: greyscale, truecolour, truecolour+alpha
FILTER_UP = 2  # PNG spec 9.2: each byte minus the byte above it
DEFLATE_LEVEL = 1  # ISA-L levels 0-3: 0 is 27% larger for no speed gain, 2-3 slower for <1% smaller
# Filtered bytes per band at most: a band's copies are alive, never the whole image's; and each band is enough
# deflate for a second thread to pay for itself. 128-row bands made a 1080p mask ("L", 2 MB) 1.6 ms to encode on
# two CPUs against 0.9 on one; 2 bands of 540 rows: 0.96. RGB at 1080p and 12 MP: the same with either (2026-12-07).
STRIPE_BYTES = 1 << 20
RAW_DEFLATE = -15  # zlib's wbits for raw deflate with a 32 KB window: the zlib wrapper is written here
ZLIB_HEADER = b"\x78\x01"  # RFC 1950: deflate, 32 KB window, "fastest" level, no dictionary; 0x7801 % 31 == 0
ADLER_BASE = 65521  # RFC 1950, 8.2: the largest prime below 2**16
ICC_NAME = b"ICC profile"  # iCCP's profile name: 1-79 Latin-1 characters, free text (PNG spec 11.3.3.3)


def encode_png(image: Image.Image, icc_profile: bytes | None = None) -> bytes | bytearray:
    """Encode an RGB/RGBA/L image as PNG (other modes go through Pillow), with ``icc_profile`` if given.

    The file grows in one ``bytearray`` as each stripe is compressed: no list of pieces joined at the
    end, which held the compressed image twice (1.25 B/px each for a photo; glibc grows a large
    buffer in place, with ``mremap``, rather than copying it).
    """
    if image.mode not in COLOR_TYPES:
        return _encode_with_pillow(image, icc_profile)
    return _encode(image.width, image.height, image.mode, partial(_image_rows, image), icc_profile)


def encode_png_levels(levels: np.ndarray) -> bytes | bytearray:
    """A greyscale HxW uint8 array (a mask's 0 and 255) as PNG, its rows read from the array itself: no Pillow
    image to copy them out of (a 1080p mask: 0.65 against 1.2 ms through an "L" image, 2026-12-07)."""
    if levels.ndim != 2 or levels.dtype != np.uint8:
        raise ValueError(f"need a 2-D uint8 array of grey levels, got {levels.ndim}-D {levels.dtype}")
    height, width = levels.shape
    return _encode(width, height, "L", lambda top, bottom: levels[top:bottom], None)


RowsOf = Callable[[int, int], np.ndarray]  # (top, bottom) -> those rows, (bottom - top) x (width * channels) bytes


def _encode(width: int, height: int, mode: str, rows_of: RowsOf, icc_profile: bytes | None) -> bytearray:
    if width == 0 or height == 0:
        raise ValueError(f"cannot encode an empty {width}x{height} image: PNG needs at least 1x1")
    header = struct.pack(">IIBBBBB", width, height, 8, COLOR_TYPES[mode], 0, 0, 0)
    out = bytearray(PNG_SIGNATURE)
    _append_chunk(out, b"IHDR", [header])
    if icc_profile:
        _append_chunk(out, b"iCCP", [icc_chunk_data(icc_profile)])
    channels = len(mode)  # L, RGB, RGBA: a letter a channel
    with closing(_deflate_up_filtered(rows_of, height, stripe_rows(width, channels))) as pieces:
        _append_chunk(out, b"IDAT", pieces)  # if this raises, closing stops the bands not yet started
    _append_chunk(out, b"IEND", [])
    return out


def icc_chunk_data(profile: bytes) -> bytes:
    """An ``iCCP`` chunk's data: name, null separator, compression method 0 (zlib), compressed profile."""
    return ICC_NAME + b"\x00\x00" + zlib.compress(profile)


def _deflate_up_filtered(rows_of: RowsOf, height: int, rows_per_stripe: int) -> Generator[bytes, None, None]:
    """One zlib stream of Up-filtered scanlines, each prefixed by its filter byte (PNG spec 7.3), in pieces.

    As pigz does (https://zlib.net/pigz/pigz.pdf, "independent blocks"): each band of rows is filtered and
    deflated on its own, on the usable CPUs (``app.core.resources.bands``), as raw deflate ended by a sync flush (an
    empty stored block, byte-aligned) so the pieces join into one valid stream; the last band ends it. The
    zlib wrapper (RFC 1950) is written here: a header, and the Adler-32 of all the filtered bytes combined
    from each band's. A band starts with an empty history, which costs <0.1% in size at these band sizes.
    """
    yield ZLIB_HEADER
    checksum = 1  # Adler-32's initial value (RFC 1950, 8.2)
    for piece, band_checksum, length in map_bands(partial(_deflate_band, rows_of, height), height, rows_per_stripe):
        checksum = adler32_combine(checksum, band_checksum, length)
        yield piece
    yield struct.pack(">I", checksum)


def stripe_rows(width: int, channels: int) -> int:
    """Rows per band: ``STRIPE_BYTES`` of filtered scanlines (a filter byte, ``channels`` bytes a pixel), at least 1."""
    return max(1, STRIPE_BYTES // (1 + channels * width))


def _image_rows(image: Image.Image, top: int, bottom: int) -> np.ndarray:
    """Rows ``top`` to ``bottom`` of a Pillow image as bytes, one row of ``width * channels`` a line."""
    return np.asarray(image.crop((0, top, image.width, bottom))).reshape(bottom - top, -1)


def _deflate_band(rows_of: RowsOf, height: int, top: int, bottom: int) -> tuple[bytes, int, int]:
    """Rows ``top`` to ``bottom`` Up-filtered and deflated raw: (deflate, their Adler-32, their length); the image's
    last band ends the stream."""
    rows = rows_of(max(top - 1, 0), bottom)
    band = rows[1:] if top else rows
    filtered = np.empty((band.shape[0], band.shape[1] + 1), dtype=np.uint8)
    filtered[:, 0] = FILTER_UP
    np.subtract(band[0], rows[0] if top else 0, out=filtered[0, 1:])  # the first row has zeros above (spec 9.2)
    np.subtract(band[1:], band[:-1], out=filtered[1:, 1:])
    compressor = isal_zlib.compressobj(DEFLATE_LEVEL, isal_zlib.DEFLATED, RAW_DEFLATE)
    last = bottom == height
    piece = compressor.compress(filtered) + compressor.flush(isal_zlib.Z_FINISH if last else isal_zlib.Z_SYNC_FLUSH)
    return piece, isal_zlib.adler32(filtered), filtered.size


def adler32_combine(first: int, second: int, second_length: int) -> int:
    """The Adler-32 of two byte strings joined, from each one's and the second's length: zlib's
    ``adler32_combine`` (adler32.c), which Python's zlib does not expose."""
    remainder = second_length % ADLER_BASE
    low = (first & 0xFFFF) + (second & 0xFFFF) + ADLER_BASE - 1
    high = (remainder * (first & 0xFFFF)) % ADLER_BASE
    high += (first >> 16) + (second >> 16) + ADLER_BASE - remainder
    return (low % ADLER_BASE) | ((high % ADLER_BASE) << 16)


def _append_chunk(out: bytearray, tag: bytes, pieces: Iterable[bytes]) -> None:
    """A PNG chunk appended to ``out``: length, type, data, CRC-32 of type and data (PNG spec 5.3); the length
    is written once the data is in, so the data can arrive in pieces. The CRC is ISA-L's: at 1080p 0.10 against
    0.64 ms for the stdlib's on the same 3 MB (measured 2026-12-07), the same number."""
    start, crc = len(out), isal_zlib.crc32(tag)
    out += b"\x00\x00\x00\x00" + tag
    for piece in pieces:
        out += piece
        crc = isal_zlib.crc32(piece, crc)
    struct.pack_into(">I", out, start, len(out) - start - 8)
    out += struct.pack(">I", crc)


def _encode_with_pillow(image: Image.Image, icc_profile: bytes | None) -> bytes:
    """Modes the fast path does not write (P, LA, 1, I;16, ...): Pillow's encoder at its fastest level."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1, icc_profile=icc_profile)  # None: none, not image.info's
    return buffer.getvalue()
