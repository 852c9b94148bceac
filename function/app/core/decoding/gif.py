"""A GIF's canvas as Pillow will size it, read from the bytes before Pillow opens the file.

Pillow's GIF plugin reads the first frame while *opening* the file (``GifImageFile._seek(0)``,
PIL/GifImagePlugin.py, Pillow 13): it grows the canvas to that frame's extent (left + width,
top + height, each up to 65535 + 65535) and, when the frame's disposal method is 2 or 3,
allocates that extent (``Image.core.fill``). All of this happens before ``image.size`` can be
checked against a pixel limit, and Pillow's own guard there (the decompression-bomb check) is
off in ``app.core.decoding.imaging``. A 6 KB GIF found by ``make fuzz`` (tests/corpus/fuzz/decode/)
declared a 95283x78109 frame: 2 s and 2.7 GB of RSS inside ``Image.open``.

``gif_canvas`` walks the blocks as that ``_seek`` does (GIF89a spec, sections 17-23:
https://www.w3.org/Graphics/GIF/spec-gif89a.txt): extensions (``!``, a label, then data
sub-blocks up to a zero length) are skipped, any other byte but ``,`` (an image descriptor)
or ``;`` (the trailer) is stepped over, one at a time, as Pillow steps over it.
"""

from __future__ import annotations

import struct

SIGNATURES = (b"GIF87a", b"GIF89a")
SCREEN = struct.Struct("<HH")  # the logical screen's width and height, at offset 6
SCREEN_END = 13  # signature (6), screen size (4), flags, background colour, aspect ratio
DESCRIPTOR = struct.Struct("<HHHH")  # left, top, width, height, right after ","
EXTENSION, IMAGE, TRAILER = ord("!"), ord(","), ord(";")
GLOBAL_TABLE_FLAG = 0x80


def gif_canvas(data: bytes) -> tuple[int, int] | None:
    """The (width, height) Pillow gives a GIF once it has read the first frame's descriptor; None for bytes
    that are not a GIF. A GIF whose first frame cannot be found keeps its screen size (Pillow refuses it)."""
    if data[:6] not in SIGNATURES or len(data) < SCREEN_END:
        return None
    width, height = SCREEN.unpack_from(data, 6)
    flags = data[10]
    table = 3 << ((flags & 7) + 1) if flags & GLOBAL_TABLE_FLAG else 0
    frame = first_descriptor(data, SCREEN_END + table)
    if frame is None:
        return width, height
    left, top, frame_width, frame_height = frame
    return max(width, left + frame_width), max(height, top + frame_height)


def first_descriptor(data: bytes, offset: int) -> tuple[int, int, int, int] | None:
    """The first image descriptor's (left, top, width, height) at or after ``offset``, or None before the end."""
    while offset < len(data):
        block = data[offset]
        if block == TRAILER:
            return None
        if block == IMAGE:
            if offset + 1 + DESCRIPTOR.size > len(data):
                return None
            return DESCRIPTOR.unpack_from(data, offset + 1)  # type: ignore[return-value]
        offset = skip_sub_blocks(data, offset + 2) if block == EXTENSION else offset + 1
    return None


def skip_sub_blocks(data: bytes, offset: int) -> int:
    """The offset after data sub-blocks starting at ``offset``: each a length byte and that many bytes, until 0."""
    while offset < len(data) and data[offset]:
        offset += data[offset] + 1
    return offset + 1
