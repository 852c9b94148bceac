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
alpha, single-release wrapper without greyscale; parallel stripes lose on 2 cores
(and Lambda under 1769 MB has one vCPU); imagecodecs is a 28 MB wheel.

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
from collections.abc import Iterable, Iterator

import numpy as np
from isal import isal_zlib
from PIL import Image

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
COLOR_TYPES = {"L": 0, "RGB": 2, "RGBA": 6}  # PNG spec 11.2.2: greyscale, truecolour, truecolour+alpha
FILTER_UP = 2  # PNG spec 9.2: each byte minus the byte above it
DEFLATE_LEVEL = 1  # ISA-L levels 0-3: 0 is 27% larger for no speed gain, 2-3 slower for <1% smaller
STRIPE_ROWS = 128  # rows converted and filtered per step: one stripe's copies alive, never the whole image's
ICC_NAME = b"ICC profile"  # iCCP's profile name: 1-79 Latin-1 characters, free text (PNG spec 11.3.3.3)


def encode_png(image: Image.Image, icc_profile: bytes | None = None) -> bytes | bytearray:
    """Encode an RGB/RGBA/L image as PNG (other modes go through Pillow), with ``icc_profile`` if given.

    The file grows in one ``bytearray`` as each stripe is compressed: no list of pieces joined at the
    end, which held the compressed image twice (1.25 B/px each for a photo; glibc grows a large
    buffer in place, with ``mremap``, rather than copying it).
    """
    if image.mode not in COLOR_TYPES:
        return _encode_with_pillow(image, icc_profile)
    if image.width == 0 or image.height == 0:
        raise ValueError(f"cannot encode an empty {image.width}x{image.height} image: PNG needs at least 1x1")
    header = struct.pack(">IIBBBBB", image.width, image.height, 8, COLOR_TYPES[image.mode], 0, 0, 0)
    out = bytearray(PNG_SIGNATURE)
    _append_chunk(out, b"IHDR", [header])
    if icc_profile:
        _append_chunk(out, b"iCCP", [icc_chunk_data(icc_profile)])
    _append_chunk(out, b"IDAT", _deflate_up_filtered(image))
    _append_chunk(out, b"IEND", [])
    return out


def icc_chunk_data(profile: bytes) -> bytes:
    """An ``iCCP`` chunk's data: name, null separator, compression method 0 (zlib), compressed profile."""
    return ICC_NAME + b"\x00\x00" + zlib.compress(profile)


def _deflate_up_filtered(image: Image.Image) -> Iterator[bytes]:
    """One zlib stream of Up-filtered scanlines, each prefixed by its filter byte (PNG spec 7.3), in pieces."""
    compressor = isal_zlib.compressobj(DEFLATE_LEVEL)
    above: np.ndarray | int = 0  # the first row of the image has an all-zero row above it (PNG spec 9.2)
    for top in range(0, image.height, STRIPE_ROWS):
        stripe = _stripe(image, top)
        filtered = np.empty((stripe.shape[0], stripe.shape[1] + 1), dtype=np.uint8)
        filtered[:, 0] = FILTER_UP
        np.subtract(stripe[0], above, out=filtered[0, 1:])
        np.subtract(stripe[1:], stripe[:-1], out=filtered[1:, 1:])
        yield compressor.compress(filtered)
        above = stripe[-1]
    yield compressor.flush()


def _stripe(image: Image.Image, top: int) -> np.ndarray:
    """Rows ``top`` to ``top + STRIPE_ROWS`` as bytes per row: ``np.asarray(image)`` would copy the whole image."""
    bottom = min(top + STRIPE_ROWS, image.height)
    return np.asarray(image.crop((0, top, image.width, bottom))).reshape(bottom - top, -1)


def _append_chunk(out: bytearray, tag: bytes, pieces: Iterable[bytes]) -> None:
    """A PNG chunk appended to ``out``: length, type, data, CRC-32 of type and data (PNG spec 5.3); the length
    is written once the data is in, so the data can arrive in pieces."""
    start, crc = len(out), zlib.crc32(tag)
    out += b"\x00\x00\x00\x00" + tag
    for piece in pieces:
        out += piece
        crc = zlib.crc32(piece, crc)
    struct.pack_into(">I", out, start, len(out) - start - 8)
    out += struct.pack(">I", crc)


def _encode_with_pillow(image: Image.Image, icc_profile: bytes | None) -> bytes:
    """Modes the fast path does not write (P, LA, 1, I;16, ...): Pillow's encoder at its fastest level."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1, icc_profile=icc_profile)  # None: none, not image.info's
    return buffer.getvalue()
