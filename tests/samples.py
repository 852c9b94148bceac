"""HEIC and AVIF samples and ICC profiles, made by the tests themselves: nothing is committed or downloaded.

- HEIC through pillow-heif's x265 encoder (a dev dependency; the service decodes with pi-heif,
  which has no encoder), lossless when asked (4:4:4, identity matrix: pixels come back exact);
- AVIF through Pillow's own encoder (8-bit), 10-bit AVIF through imagecodecs' libavif;
- orientation: both encoders turn an EXIF orientation into the container's ``irot``/``imir``;
  an EXIF orientation *tag* without them is written under a stand-in tag and renamed in place;
- ``declaring``: the ``ispe`` box patched to claim another size (a 28 KB file "of" 121 MP);
- ICC: a Display P3 profile built from its published primaries (ICC.1:2022 v4 matrix/TRC),
  checked against Apple's colorants in tests/unit/core/test_colour.py.
"""

from __future__ import annotations

import io
import struct

import imagecodecs
import numpy as np
import pillow_heif
from PIL import Image

ORIENTATION = 0x0112
STAND_IN = 0x0128  # ResolutionUnit, a SHORT like Orientation: what the encoders pass through untouched

# --- ISO BMFF boxes (ISO/IEC 14496-12 4.2) ---------------------------------------------------

CONTAINER_BOXES = {b"meta": 4, b"iprp": 0, b"ipco": 0}  # boxes holding boxes, and their header's extra bytes


def boxes(data: bytes, start: int = 0, end: int | None = None) -> list[tuple[bytes, int, int]]:
    """(type, offset, size) of every box down the meta/iprp/ipco path, in file order."""
    end = len(data) if end is None else end
    found = []
    while start + 8 <= end:
        size, kind = struct.unpack(">I4s", data[start : start + 8])
        size = end - start if size == 0 else size
        found.append((kind, start, size))
        if kind in CONTAINER_BOXES:
            found += boxes(data, start + 8 + CONTAINER_BOXES[kind], start + size)
        start += size
    return found


def box_types(data: bytes) -> list[bytes]:
    return [kind for kind, _, _ in boxes(data)]


def replace_box_body(data: bytes, kind: bytes, body: bytes) -> bytes:
    """``data`` with the one ``kind`` box's contents (after its 8-byte header) replaced, same length."""
    [(_, offset, size)] = [box for box in boxes(data) if box[0] == kind]
    assert len(body) == size - 8, (kind, len(body), size)
    return data[: offset + 8] + body + data[offset + size :]


def declaring(data: bytes, width: int, height: int) -> bytes:
    """``data`` whose ``ispe`` (version/flags, width, height) declares ``width`` x ``height``."""
    return replace_box_body(data, b"ispe", struct.pack(">III", 0, width, height))


# --- EXIF inside the files ------------------------------------------------------------------


def exif_with(tags: dict[int, int]) -> bytes:
    exif = Image.Exif()
    for tag, value in tags.items():
        exif[tag] = value
    return exif.tobytes()


def rename_exif_tag(data: bytes, old: int, new: int, value: int) -> bytes:
    """The one SHORT entry ``old`` = ``value`` of the file's EXIF renamed ``new`` (either byte order)."""
    entries = {order: (struct.pack(f"{order}HHIH", old, 3, 1, value), struct.pack(f"{order}HHIH", new, 3, 1, value))
               for order in "<>"}
    [(before, after)] = [pair for pair in entries.values() if data.count(pair[0]) == 1]
    return data.replace(before, after)


# --- HEIC and AVIF ----------------------------------------------------------------------------


def heic(image: Image.Image, lossless: bool = True, **params: object) -> bytes:
    """``image`` as HEIC (``exif=``, ``icc_profile=`` pass through to pillow-heif)."""
    if lossless:  # lossless HEVC, and RGB stored as is (matrix 0): the pixels come back exact
        params = {"quality": -1, "chroma": 444, "matrix_coefficients": 0, **params}
    buffer = io.BytesIO()
    pillow_heif.from_pillow(image).save(buffer, **params)
    return buffer.getvalue()


def avif(image: Image.Image, **params: object) -> bytes:
    """``image`` as 8-bit AVIF by Pillow's encoder (4:4:4, near-lossless unless ``quality`` says otherwise)."""
    buffer = io.BytesIO()
    image.save(buffer, format="AVIF", **{"quality": 100, "subsampling": "4:4:4", **params})
    return buffer.getvalue()


def encoded(fmt: str, image: Image.Image, params: dict[str, object]) -> bytes:
    return heic(image, **params) if fmt == "HEIF" else avif(image, **params)


def oriented(fmt: str, image: Image.Image, container: int = 1, exif: int | None = None, **params: object) -> bytes:
    """``image`` stored with the container transform of EXIF orientation ``container`` (the encoders write it
    as ``irot``/``imir``) and, when ``exif`` is given, an EXIF Orientation tag of ``exif`` of its own.

    pillow-heif also keeps the orientation it was given in the EXIF (as iPhones write both); Pillow drops
    it. Here the EXIF says ``exif``, or nothing about orientation, whichever the encoder. ``params``
    (``icc_profile=``) go to the encoder.
    """
    tags = {STAND_IN: exif} if exif is not None else {}
    if container != 1:
        tags[ORIENTATION] = container
    data = encoded(fmt, image, {"exif": exif_with(tags), **params})
    if container != 1 and fmt == "HEIF":  # pillow-heif wrote Orientation = container: make it a stand-in
        data = rename_exif_tag(data, ORIENTATION, STAND_IN + 1, container)
    return rename_exif_tag(data, STAND_IN, ORIENTATION, exif) if exif is not None else data


def grey_levels_16bit(levels: list[int], block: int = 16) -> np.ndarray:
    """A row of ``block``-wide flat squares of the given 16-bit grey ``levels``, as HxWx3 uint16."""
    row = np.repeat(np.asarray(levels, dtype=np.uint16), block)
    return np.repeat(np.stack([row] * 3, axis=-1)[None], block, axis=0)


def heic_10bit(pixels: np.ndarray) -> bytes:
    """HxWx3 uint16 pixels as a 10-bit HEIC (pillow-heif keeps the top 10 bits)."""
    height, width = pixels.shape[:2]
    buffer = io.BytesIO()
    pillow_heif.from_bytes(mode="RGB;16", size=(width, height), data=pixels.tobytes()).save(buffer, quality=-1)
    return buffer.getvalue()


def avif_10bit(pixels: np.ndarray) -> bytes:
    """HxWx3 uint16 pixels as a 10-bit AVIF (their top 10 bits), lossless."""
    return bytes(imagecodecs.avif_encode(pixels >> 6, level=100, bitspersample=10))


def bit_depth(data: bytes) -> int:
    """The bits per channel the file's ``pixi`` box declares (ISO/IEC 23008-12 6.5.6)."""
    [(_, offset, _)] = [box for box in boxes(data) if box[0] == b"pixi"]
    return data[offset + 13]


# --- ICC profiles ----------------------------------------------------------------------------

D50 = (0.9642, 1.0, 0.8249)  # the ICC's profile connection space white (ICC.1:2022 7.2.16)
BRADFORD = np.array([[0.8951, 0.2664, -0.1614], [-0.7502, 1.7135, 0.0367], [0.0389, -0.0685, 1.0296]])
SRGB_CURVE = (2.4, 1 / 1.055, 0.055 / 1.055, 1 / 12.92, 0.04045)  # IEC 61966-2-1 as ICC parametric type 3
D65 = (0.3127, 0.3290)
DISPLAY_P3 = ((0.680, 0.320), (0.265, 0.690), (0.150, 0.060))  # DCI-P3 primaries, D65 white, sRGB curve
SRGB_PRIMARIES = ((0.64, 0.33), (0.30, 0.60), (0.15, 0.06))


def _xyz(x: float, y: float) -> np.ndarray:
    return np.array([x / y, 1.0, (1 - x - y) / y])


def _to_d50(white: np.ndarray) -> np.ndarray:
    """Bradford chromatic adaptation from ``white`` to D50 (ICC.1:2022 Annex E)."""
    cone_source, cone_target = BRADFORD @ white, BRADFORD @ np.array(D50)
    return np.linalg.inv(BRADFORD) @ np.diag(cone_target / cone_source) @ BRADFORD


def rgb_to_xyz_d50(primaries: tuple[tuple[float, float], ...], white_xy: tuple[float, float]) -> np.ndarray:
    """The 3x3 matrix from linear RGB to D50 XYZ: the profile's colorants as columns."""
    white = _xyz(*white_xy)
    matrix = np.stack([_xyz(*primary) for primary in primaries], axis=1)
    return _to_d50(white) @ (matrix * np.linalg.solve(matrix, white))


def _s15(value: float) -> bytes:
    return struct.pack(">i", round(value * 65536))  # s15Fixed16Number


def _mluc(text: str) -> bytes:
    body = text.encode("utf-16-be")
    return b"mluc" + bytes(4) + struct.pack(">II2s2sII", 1, 12, b"en", b"US", len(body), 28) + body


def _xyz_tag(values: np.ndarray | tuple[float, ...]) -> bytes:
    return b"XYZ " + bytes(4) + b"".join(_s15(value) for value in values)


def rgb_profile_bytes(description: str, primaries: tuple[tuple[float, float], ...], white_xy: tuple[float, float] = D65
                ) -> bytes:
    """An ICC v4.3 display profile: colorants from ``primaries``, sRGB's tone curve, ``description``."""
    colorants = rgb_to_xyz_d50(primaries, white_xy)
    curve = b"para" + bytes(4) + struct.pack(">HH", 3, 0) + b"".join(_s15(value) for value in SRGB_CURVE)
    tags = [(b"desc", _mluc(description)), (b"cprt", _mluc("No copyright, use freely")), (b"wtpt", _xyz_tag(D50)),
            (b"chad", b"sf32" + bytes(4) + b"".join(_s15(v) for v in _to_d50(_xyz(*white_xy)).flatten())),
            (b"rXYZ", _xyz_tag(colorants[:, 0])), (b"gXYZ", _xyz_tag(colorants[:, 1])),
            (b"bXYZ", _xyz_tag(colorants[:, 2])), (b"rTRC", curve), (b"gTRC", curve), (b"bTRC", curve)]
    data_start = 128 + 4 + 12 * len(tags)
    table, data = b"", b""
    for signature, body in tags:
        body += bytes(-len(body) % 4)  # tag data starts on 4-byte boundaries
        table += struct.pack(">4sII", signature, data_start + len(data), len(body))
        data += body
    header = struct.pack(">I4sI4s4s4s6H4s4sI4s4sQI", data_start + len(data), b"", 0x04300000, b"mntr", b"RGB ",
                         b"XYZ ", 2026, 1, 1, 0, 0, 0, b"acsp", b"", 0, b"", b"", 0, 0)
    header += b"".join(_s15(value) for value in D50) + bytes(4 + 16 + 28)  # illuminant, creator, ID, reserved
    return header + struct.pack(">I", len(tags)) + table + data


DISPLAY_P3_ICC = rgb_profile_bytes("Display P3", DISPLAY_P3)
SRGB_ICC = rgb_profile_bytes("sRGB by the tests", SRGB_PRIMARIES)  # not littlecms's own: detected by behaviour
