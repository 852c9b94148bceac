"""app.core.decoding.tiff: a compressed TIFF decoded a band of strips at a time, pixel for pixel as Pillow's
whole-file decode, its file read a band at a time; the layouts it does not band decode whole, as before."""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable

import numpy as np
import pytest
from PIL import Image, TiffImagePlugin

from app.core.decoding.imaging import CorruptImage, DecodeLimits, ImageRejected, decode_image
from app.core.decoding.tiff import BANDED_COMPRESSIONS, decode_in_bands, strip_layout
from tests.samples import SRGB_ICC

ROOMY = DecodeLimits(max_bytes=50_000_000, max_pixels=50_000_000)


def noise(mode: str, size: tuple[int, int] = (37, 29), seed: int = 7) -> Image.Image:
    """An image of random levels in ``mode``: every row differs, so a band out of place shows."""
    rng = np.random.default_rng(seed)
    if mode == "1":
        return Image.fromarray(rng.integers(0, 2, size[::-1], dtype=np.uint8) * 255).convert("1")
    if mode in ("I;16", "I;16B"):
        return Image.fromarray(rng.integers(0, 65536, size[::-1], dtype=np.uint16)).convert(mode)
    if mode == "F":
        return Image.fromarray(rng.standard_normal(size[::-1]).astype(np.float32))
    if mode == "P":
        image = Image.fromarray(rng.integers(0, 16, size[::-1], dtype=np.uint8), "P")
        image.putpalette(list(rng.integers(0, 256, 48, dtype=np.uint8)))
        return image
    bands = len(Image.new(mode, (1, 1)).getbands())
    return Image.frombytes(mode, size, rng.integers(0, 256, size[0] * size[1] * bands, dtype=np.uint8).tobytes())


def tiff(image: Image.Image, compression: str = "tiff_lzw", strip_size: int = 256, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "TIFF", compression=compression, strip_size=strip_size, **params)
    return buffer.getvalue()


def whole(data: bytes) -> Image.Image:
    """Pillow's own decode of the whole file: what every band must match."""
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        return image.copy()


def banded(data: bytes, band_rows: int = 5) -> Image.Image | None:
    with Image.open(io.BytesIO(data)) as image:
        assert isinstance(image, TiffImagePlugin.TiffImageFile)
        return decode_in_bands(image, band_rows)


SAME_PIXELS = {
    "RGB LZW": (lambda: tiff(noise("RGB")), 5),
    "RGB LZW, horizontal predictor": (lambda: tiff(noise("RGB"), tiffinfo={317: 2}), 5),
    "RGB LZW, a band of one strip": (lambda: tiff(noise("RGB")), 1),
    "RGB LZW, bands not a multiple of the strips": (lambda: tiff(noise("RGB"), strip_size=200), 7),
    "RGB Deflate": (lambda: tiff(noise("RGB"), "tiff_adobe_deflate"), 5),
    "RGB PackBits": (lambda: tiff(noise("RGB"), "packbits"), 5),
    "RGB Zstandard": (lambda: tiff(noise("RGB"), "zstd"), 5),  # the pinned Pillow wheel's libtiff has it
    "RGBA LZW": (lambda: tiff(noise("RGBA")), 5),
    "L LZW": (lambda: tiff(noise("L")), 5),
    "1-bit LZW": (lambda: tiff(noise("1"), strip_size=16), 5),
    "16-bit LZW": (lambda: tiff(noise("I;16")), 5),
    "float LZW": (lambda: tiff(noise("F")), 5),
    "palette LZW": (lambda: tiff(noise("P")), 5),
    "CMYK LZW": (lambda: tiff(noise("CMYK")), 5),
    "one row per strip": (lambda: tiff(noise("RGB"), strip_size=1), 3),
}


@pytest.mark.parametrize("make, band_rows", SAME_PIXELS.values(), ids=SAME_PIXELS.keys())
def test_bands_decode_pixel_for_pixel_as_the_whole_file(make: Callable[[], bytes], band_rows: int) -> None:
    data = make()
    expected, decoded = whole(data), banded(data, band_rows)
    assert decoded is not None
    assert (decoded.mode, decoded.size) == (expected.mode, expected.size)
    assert np.array_equal(np.asarray(decoded), np.asarray(expected))
    if expected.mode == "P":
        assert decoded.getpalette() == expected.getpalette()


def big_endian_deflate_tiff(pixels: np.ndarray, rows_per_strip: int, strip_table: Callable | None = None,
                            extra: tuple[tuple[int, int, int, int], ...] = ()) -> bytes:
    """A big-endian 16-bit grey TIFF built by hand: each strip deflated on its own (compression 8)."""
    height, width = pixels.shape
    strips = [zlib.compress(pixels[top:top + rows_per_strip].astype(">u2").tobytes())
              for top in range(0, height, rows_per_strip)]
    offsets, start = [], 8
    for strip in strips:
        offsets.append(start)
        start += len(strip)
    counts = [len(strip) for strip in strips]
    if strip_table is not None:
        offsets, counts = strip_table(offsets, counts)
    tables = struct.pack(f">{len(offsets)}L", *offsets) + struct.pack(f">{len(counts)}L", *counts)
    entries = [(256, 3, 1, width), (257, 3, 1, height), (258, 3, 1, 16), (259, 3, 1, 8), (262, 3, 1, 1),
               (273, 4, len(offsets), start), (277, 3, 1, 1), (278, 3, 1, rows_per_strip),
               (279, 4, len(counts), start + 4 * len(offsets)), *extra]
    ifd_at = start + len(tables)
    ifd = struct.pack(">H", len(entries)) + b"".join(  # a SHORT is left-justified in its 4 bytes
        struct.pack(">HHLHH" if kind == 3 else ">HHLL", tag, kind, count, value, *((0,) if kind == 3 else ()))
        for tag, kind, count, value in entries) + b"\0\0\0\0"
    return b"MM\x00\x2a" + struct.pack(">L", ifd_at) + b"".join(strips) + tables + ifd


def test_a_big_endian_file_keeps_its_byte_order_in_its_bands() -> None:
    pixels = np.arange(40 * 23, dtype=np.uint16).reshape(23, 40) * 71
    data = big_endian_deflate_tiff(pixels, rows_per_strip=3)
    decoded = banded(data, band_rows=6)
    assert decoded is not None and decoded.mode == "I;16B"
    assert np.array_equal(np.asarray(decoded), pixels)
    assert np.array_equal(np.asarray(decoded), np.asarray(whole(data)))


NOT_BANDED = {
    "uncompressed": lambda: tiff(noise("RGB"), "raw"),
    "one strip": lambda: tiff(noise("RGB"), strip_size=1 << 20),
    "JPEG-compressed YCbCr": lambda: tiff(noise("RGB"), "jpeg"),
    "a strip past the end of the file": lambda: big_endian_deflate_tiff(
        np.zeros((20, 8), np.uint16), 4, lambda offsets, counts: (offsets, [*counts[:-1], counts[-1] + 10_000])),
    "fewer strips than the rows need": lambda: big_endian_deflate_tiff(
        np.zeros((20, 8), np.uint16), 4, lambda offsets, counts: (offsets[:-1], counts[:-1])),
    # every strip pointing at all the strips' bytes: read once per strip if banded (libtiff maps them once)
    "strips together larger than the file": lambda: big_endian_deflate_tiff(
        np.zeros((20, 8), np.uint16), 4,
        lambda offsets, counts: ([offsets[0]] * len(offsets), [sum(counts)] * len(counts))),
    # libtiff reads a file with tile tags as tiled, whatever its strip tags say
    "tile tags beside the strips": lambda: big_endian_deflate_tiff(
        np.zeros((20, 8), np.uint16), 4, extra=((322, 3, 1, 16), (323, 3, 1, 16))),
    # a Predictor of 2 values: libtiff ignores it, Pillow reads the first
    "a one-value tag declaring two": lambda: with_entry_count(tiff(noise("RGB"), tiffinfo={317: 2}), 317, 2, 2),
}


@pytest.mark.parametrize("make", NOT_BANDED.values(), ids=NOT_BANDED.keys())
def test_layouts_not_banded_are_left_to_the_whole_file_decode(make: Callable[[], bytes]) -> None:
    with Image.open(io.BytesIO(make())) as image:
        assert strip_layout(image) is None or decode_in_bands(image, 1) is None


def with_entry_count(data: bytes, tag: int, count: int, value_offset: int) -> bytes:
    """A little-endian TIFF with ``tag``'s first-IFD entry now declaring ``count`` values at ``value_offset``."""
    data, (ifd,) = bytearray(data), struct.unpack("<L", data[4:8])
    for entry in range(ifd + 2, ifd + 2 + 12 * struct.unpack("<H", data[ifd:ifd + 2])[0], 12):
        if struct.unpack("<H", data[entry:entry + 2])[0] == tag:
            data[entry + 4:entry + 12] = struct.pack("<LL", count, value_offset)
    return bytes(data)


def test_a_pixel_tag_declaring_another_count_decodes_as_libtiff_reads_the_whole_file() -> None:
    # GIVEN a large LZW file whose Predictor (2, horizontal differencing) declares 2 values: libtiff ignores the
    # tag, so the whole decode reads the differences as they are; Pillow reads a Predictor of 2
    data = with_entry_count(tiff(large(), tiffinfo={317: 2}, strip_size=16 << 10), 317, 2, 2)
    # THEN decode_image gives the whole decode's pixels (banded with Pillow's reading, it gave others)
    assert np.array_equal(np.asarray(decode_image(data, ROOMY)), np.asarray(whole(data).convert("RGB")))


def test_an_image_of_one_band_is_decoded_whole() -> None:
    with Image.open(io.BytesIO(tiff(noise("RGB")))) as image:
        assert strip_layout(image) is not None
        assert decode_in_bands(image, image.height) is None


class ReadsRecorded(io.RawIOBase):
    """A seekable stream with neither descriptor nor ``getvalue`` (Pillow's libtiff path reads such a stream
    whole, in one read); records the largest single read."""

    def __init__(self, data: bytes) -> None:
        super().__init__()
        self._data = io.BytesIO(data)
        self.largest_read = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._data.seek(offset, whence)

    def tell(self) -> int:
        return self._data.tell()

    def read(self, size: int | None = -1) -> bytes:
        chunk = self._data.read(size)
        self.largest_read = max(self.largest_read, len(chunk))
        return chunk


def large() -> Image.Image:
    """An RGB image of more than two bands' pixels (``app.core.resources.bands.BAND_PIXELS``), every row its own."""
    y, x = np.mgrid[0:800, 0:1100]
    return Image.fromarray(np.stack([x % 251, y % 241, (x * y) % 239], axis=-1).astype(np.uint8))


def test_decode_image_never_reads_a_compressed_tiff_whole() -> None:
    data = tiff(large(), strip_size=16 << 10)
    stream = ReadsRecorded(data)
    decoded = decode_image(stream, ROOMY)
    assert np.array_equal(np.asarray(decoded), np.asarray(whole(data).convert("RGB")))
    assert stream.largest_read < len(data) / 4


def test_decode_image_keeps_orientation_and_profile_of_a_banded_tiff() -> None:
    image = large()
    data = tiff(image, strip_size=16 << 10, tiffinfo={0x0112: 6}, icc_profile=SRGB_ICC)
    decoded = decode_image(io.BytesIO(data), ROOMY)
    assert decoded.size == (800, 1100)
    assert np.array_equal(np.asarray(decoded), np.asarray(image.transpose(Image.Transpose.ROTATE_270)))
    assert decoded.info == {"icc_profile": SRGB_ICC}


def test_a_corrupt_strip_in_a_band_is_a_corrupt_image() -> None:
    data = bytearray(tiff(large(), "tiff_adobe_deflate", strip_size=16 << 10))
    with Image.open(io.BytesIO(bytes(data))) as image:
        layout = strip_layout(image)
    assert layout is not None
    middle = len(layout.offsets) // 2
    data[layout.offsets[middle]:layout.offsets[middle] + 8] = b"\xff" * 8  # not a zlib header
    with pytest.raises(CorruptImage):
        decode_image(bytes(data), ROOMY)


def test_only_codecs_whose_strips_stand_alone_are_banded() -> None:
    assert BANDED_COMPRESSIONS <= set(TiffImagePlugin.COMPRESSION_INFO.values())
    assert not BANDED_COMPRESSIONS & {"jpeg", "tiff_jpeg", "raw"}


def decoded_or_refused(data: bytes) -> np.ndarray | None:
    try:
        return np.asarray(decode_image(data, ROOMY))
    except ImageRejected:
        return None


@pytest.mark.filterwarnings("ignore::UserWarning:PIL")  # Pillow warns of damaged tags, then reads on, as served
def test_damaged_files_decode_banded_as_whole_or_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN multi-strip TIFFs of several codecs and modes, each with 1-6 random bytes changed (seeded)
    sources = [tiff(noise(mode, (30, 40)), compression, strip_size=200)
               for compression in ("tiff_lzw", "tiff_adobe_deflate", "packbits") for mode in ("RGB", "L", "P", "I;16")]
    rng = np.random.default_rng(2)
    for case in range(400):
        data = bytearray(sources[case % len(sources)])
        for offset in rng.integers(0, len(data), rng.integers(1, 7)):
            data[offset] = rng.integers(0, 256)
        # WHEN decoded whole, then in bands of one row
        monkeypatch.setattr("app.core.decoding.imaging.decode_in_bands", lambda image: None)
        whole_pixels = decoded_or_refused(bytes(data))
        monkeypatch.setattr("app.core.decoding.imaging.decode_in_bands", lambda image: decode_in_bands(image, 1))
        banded_pixels = decoded_or_refused(bytes(data))  # anything but a refusal (ImageRejected) fails the test
        # THEN what decodes whole decodes banded to the same pixels (a band copies fewer tags, so it may decode
        # a file whose damage is in another tag, never refuse one the whole decode reads)
        if whole_pixels is not None:
            assert banded_pixels is not None and np.array_equal(banded_pixels, whole_pixels), case
