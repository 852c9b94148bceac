"""app.core.decoding.gif: the canvas Pillow will give a GIF, read before Pillow opens it (and allocates the frame)."""

from __future__ import annotations

import io
import struct

import pytest
from PIL import Image

from app.core.decoding.gif import gif_canvas
from app.core.decoding.imaging import HEAD_BYTES, DecodeLimits, ImageTooLarge, decode_image
from tests.support import REPO, encode, noise

FOUND = REPO / "tests" / "corpus" / "fuzz" / "decode" / "gif-frame-far-beyond-its-screen.gif"


def gif(screen: tuple[int, int], frame: tuple[int, int, int, int], before_frame: bytes = b"",
        global_table: bool = True) -> bytes:
    """A GIF89a: the screen, a 2-colour global table (or none), ``before_frame`` bytes, one frame of ``frame``
    (left, top, width, height) without pixel data (enough for Pillow to open it), then the trailer."""
    flags, table = (0x80, b"\x00\x00\x00\xff\xff\xff") if global_table else (0, b"")
    header = b"GIF89a" + struct.pack("<HHBBB", *screen, flags, 0, 0) + table
    descriptor = b"," + struct.pack("<HHHHB", *frame, 0)
    return header + before_frame + descriptor + b"\x02\x02\x4c\x01\x00;"


GRAPHIC_CONTROL = b"!\xf9\x04\x09\x00\x00\x00\x00"  # disposal 2 (restore to background), transparency on
COMMENT = b"!\xfe\x05hello\x03abc\x00"  # two data sub-blocks
NETSCAPE = b"!\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00"

# id: (bytes, the canvas)
FILES = {
    "frame-inside-the-screen": (gif((10, 8), (2, 2, 4, 4)), (10, 8)),
    "frame-wider-than-the-screen": (gif((10, 8), (5, 0, 20, 3)), (25, 8)),
    "frame-below-the-screen": (gif((10, 8), (0, 7, 3, 9), global_table=False), (10, 16)),
    "after-extensions": (gif((4, 4), (0, 0, 300, 200), GRAPHIC_CONTROL + COMMENT + NETSCAPE), (300, 200)),
    "after-stray-bytes": (gif((4, 4), (1, 1, 9, 9), b"\x00\x07\x99"), (10, 10)),  # Pillow steps over them too
}


@pytest.mark.parametrize(("data", "canvas"), FILES.values(), ids=FILES)
def test_the_canvas_is_the_one_pillow_opens(data: bytes, canvas: tuple[int, int]) -> None:
    assert gif_canvas(data) == canvas
    with Image.open(io.BytesIO(data)) as image:
        assert image.size == canvas


def test_a_gif_pillow_wrote_is_its_own_size() -> None:
    data = encode(noise(37, 21), "GIF")
    assert gif_canvas(data) == (37, 21)


@pytest.mark.parametrize(
    ("data", "canvas"),
    [
        (b"\x89PNG\r\n\x1a\n" + bytes(32), None),  # not a GIF
        (b"GIF89a\x01\x00", None),  # cut inside the screen descriptor
        (gif((6, 5), (0, 0, 900, 900))[:-20], (6, 5)),  # cut inside the frame's descriptor: no frame
        (b"GIF87a" + struct.pack("<HHBBB", 6, 5, 0, 0, 0) + b";", (6, 5)),  # the trailer before any frame
        (b"GIF89a" + struct.pack("<HHBBB", 6, 5, 0, 0, 0) + b"!\xfe\xff", (6, 5)),  # a sub-block past the end
    ],
    ids=["png", "cut-in-the-screen", "cut-in-the-descriptor", "no-frame", "sub-block-past-the-end"],
)
def test_what_has_no_frame_keeps_its_screen(data: bytes, canvas: tuple[int, int] | None) -> None:
    assert gif_canvas(data) == canvas


def test_the_gif_make_fuzz_found_is_refused_before_pillow_opens_it(monkeypatch: pytest.MonkeyPatch) -> None:
    # Found by make fuzz: a 6 KB GIF whose first frame spans 95283x78109; Image.open allocated it (2.7 GB).
    def never(*_: object, **__: object) -> None:
        raise AssertionError("Image.open was called: the canvas should have been refused first")

    monkeypatch.setattr(Image, "open", never)
    with pytest.raises(ImageTooLarge) as refused:
        decode_image(FOUND.read_bytes(), DecodeLimits(max_bytes=10**6, max_pixels=50_000_000))
    assert refused.value.detail == ("the image is 95283x78109 = 7442459847 pixels, over the 50000000-pixel limit: "
                                    "send a smaller image")


def test_a_gif_within_the_limit_still_decodes() -> None:
    # GIVEN a 20x3 GIF Pillow wrote, its screen made 10x8 and its frame moved 5 to the right: a 25x8 canvas
    written = encode(noise(20, 3), "GIF")
    frame, moved = b"," + struct.pack("<HHHH", 0, 0, 20, 3), b"," + struct.pack("<HHHH", 5, 0, 20, 3)
    assert written.count(frame) == 1
    data = written[:6] + struct.pack("<HH", 10, 8) + written[10:].replace(frame, moved)
    assert decode_image(data, DecodeLimits(max_bytes=10**6, max_pixels=25 * 8)).size == (25, 8)
    with pytest.raises(ImageTooLarge, match="25x8 = 200 pixels, over the 199-pixel limit"):
        decode_image(data, DecodeLimits(max_bytes=10**6, max_pixels=199))


def test_a_frame_past_the_head_of_a_streamed_upload_is_still_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    # The HTTP path decodes from the spooled upload: 8 KB of comment before the frame is no way around the check.
    comment = b"!\xfe" + (b"\xff" + b"c" * 255) * 32 + b"\x00"  # one comment extension of 32 full sub-blocks
    data = gif((4, 4), (0, 0, 60000, 60000), comment)
    assert data.index(b",\x00\x00\x00\x00\x60\xea") > HEAD_BYTES

    def never(*_: object, **__: object) -> None:
        raise AssertionError("Image.open was called: the canvas should have been refused first")

    monkeypatch.setattr(Image, "open", never)
    with pytest.raises(ImageTooLarge, match="60000x60000 = 3600000000 pixels"):
        decode_image(io.BytesIO(data), DecodeLimits(max_bytes=10**6, max_pixels=50_000_000))
