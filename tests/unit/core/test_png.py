"""app.core.output.png.encode_png: valid PNG files that decode pixel-exact, for every mode and awkward size."""

from __future__ import annotations

import io
import struct
import time
import zlib
from collections.abc import Iterable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from app.core.output import png
from app.core.output.png import PNG_SIGNATURE, adler32_combine, encode_png, encode_png_levels, stripe_rows
from app.core.resources import bands

CHANNELS = {"L": 1, "RGB": 3, "RGBA": 4}


def _random_image(mode: str, width: int, height: int, seed: int = 0) -> Image.Image:
    """Noise: the worst case for the filter arithmetic (every byte differs from its neighbours)."""
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, CHANNELS[mode]), dtype=np.uint8)
    return Image.fromarray(pixels[:, :, 0] if mode == "L" else pixels, mode)


def _chunks(data: bytes) -> list[tuple[bytes, bytes, int]]:
    """(type, data, stored CRC) for every chunk after the signature."""
    chunks, offset = [], len(PNG_SIGNATURE)
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        tag, body = data[offset + 4 : offset + 8], data[offset + 8 : offset + 8 + length]
        (crc,) = struct.unpack(">I", data[offset + 8 + length : offset + 12 + length])
        chunks.append((tag, body, crc))
        offset += 12 + length
    return chunks


SIZES = [
    (1, 1),
    (1, 37),  # one column
    (37, 1),  # one row
    (4097, 3),  # wider than any 4096-byte buffer
]
SMALL_STRIPE_BYTES = 1024  # stripes of a few rows, so small images cross their boundaries


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA"])
@pytest.mark.parametrize(("stripes", "extra_rows"), [
    (1, 1),  # one row past a stripe: the Up filter crosses the stripe boundary
    (2, 0),  # exactly two stripes
    (5, 3),  # more stripes than workers, the last one short
])
def test_round_trip_across_stripes_is_pixel_exact(mode: str, stripes: int, extra_rows: int,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(png, "STRIPE_BYTES", SMALL_STRIPE_BYTES)
    height = stripes * stripe_rows(33, len(mode)) + extra_rows
    image = _random_image(mode, 33, height)

    decoded = Image.open(io.BytesIO(encode_png(image)))

    assert (decoded.mode, decoded.size) == (mode, (33, height))
    np.testing.assert_array_equal(np.asarray(decoded), np.asarray(image))


@pytest.mark.parametrize(("stripes", "extra_rows"), [(0, 1), (1, 1), (2, 0), (5, 3)])
def test_grey_levels_from_an_array_round_trip_across_stripes(stripes: int, extra_rows: int,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(png, "STRIPE_BYTES", SMALL_STRIPE_BYTES)
    height = stripes * stripe_rows(33, 1) + extra_rows
    levels = np.random.default_rng(height).integers(0, 256, (height, 33), dtype=np.uint8)

    body = encode_png_levels(levels)

    assert bytes(body) == bytes(encode_png(Image.fromarray(levels)))  # the "L" image's very file
    decoded = Image.open(io.BytesIO(body))
    assert (decoded.mode, decoded.size) == ("L", (33, height))
    np.testing.assert_array_equal(np.asarray(decoded), levels)


@pytest.mark.parametrize("levels", [np.zeros((4, 5, 3), np.uint8), np.zeros((4, 5), bool), np.zeros(7, np.uint8),
                                    np.zeros((4, 5), np.uint16)], ids=["RGB", "bool", "1-D", "16-bit"])
def test_only_a_2d_array_of_bytes_is_grey_levels(levels: np.ndarray) -> None:
    with pytest.raises(ValueError, match="2-D uint8"):
        encode_png_levels(levels)


@pytest.mark.parametrize(("width", "channels", "rows"), [
    (1920, 1, 545),  # a 1080p mask: two bands
    (1920, 3, 182),  # a 1080p overlay: six
    (4000, 3, 87),
    (400_000, 3, 1),  # a row over the stripe's bytes is a band of its own
])
def test_a_stripe_is_a_mebibyte_of_filtered_rows(width: int, channels: int, rows: int) -> None:
    assert stripe_rows(width, channels) == rows


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA"])
@pytest.mark.parametrize(("width", "height"), SIZES)
def test_round_trip_is_pixel_exact(mode: str, width: int, height: int) -> None:
    image = _random_image(mode, width, height)

    decoded = Image.open(io.BytesIO(encode_png(image)))
    decoded.load()

    assert (decoded.format, decoded.mode, decoded.size) == ("PNG", mode, (width, height))
    np.testing.assert_array_equal(np.asarray(decoded), np.asarray(image))


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA"])
def test_structure_signature_chunk_order_and_crcs(mode: str) -> None:
    data = encode_png(_random_image(mode, 19, 5))

    chunks = _chunks(data)

    assert data.startswith(PNG_SIGNATURE)
    assert [tag for tag, _, _ in chunks] == [b"IHDR", b"IDAT", b"IEND"]
    assert all(zlib.crc32(tag + body) == crc for tag, body, crc in chunks)
    width, height, depth, color_type, *_ = struct.unpack(">IIBBBBB", chunks[0][1])
    assert (width, height, depth, color_type) == (19, 5, 8, {"L": 0, "RGB": 2, "RGBA": 6}[mode])


def test_every_row_uses_the_up_filter() -> None:
    data = encode_png(_random_image("RGB", 4, 3))

    raw = zlib.decompress(_chunks(data)[1][1])

    assert [raw[row * (4 * 3 + 1)] for row in range(3)] == [2, 2, 2]


@pytest.mark.parametrize(
    ("image", "compare_as"),
    [
        (Image.new("P", (9, 4), 3), "RGBA"),  # Pillow drops unused palette entries, so compare colours
        (Image.new("LA", (9, 4), (10, 200)), "LA"),
        (Image.new("1", (9, 4), 1), "1"),
        (Image.new("I;16", (9, 4), 40000), "I;16"),
    ],
    ids=["P", "LA", "1", "I;16"],
)
def test_other_modes_fall_back_to_pillow_losslessly(image: Image.Image, compare_as: str) -> None:
    decoded = Image.open(io.BytesIO(encode_png(image)))

    assert decoded.mode == image.mode
    np.testing.assert_array_equal(np.asarray(decoded.convert(compare_as)), np.asarray(image.convert(compare_as)))


def test_empty_image_is_refused_with_a_reason() -> None:
    with pytest.raises(ValueError, match="at least 1x1"):
        encode_png(Image.new("RGB", (0, 0)))


# --- ICC profiles: an iCCP chunk (PNG spec 11.3.3.3) ------------------------------------------

PROFILE = b"an ICC profile's bytes, opaque to the encoder " * 20


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "P"])
def test_a_profile_is_written_before_the_image_data_and_read_back(mode: str) -> None:
    image = _random_image("RGB", 9, 5).convert(mode)
    data = encode_png(image, icc_profile=PROFILE)
    tags = [tag for tag, _, _ in _chunks(data)]
    assert tags[0] == b"IHDR" and tags.count(b"iCCP") == 1 and tags.index(b"iCCP") < tags.index(b"IDAT")
    decoded = Image.open(io.BytesIO(data))
    assert decoded.info["icc_profile"] == PROFILE
    assert np.array_equal(np.asarray(decoded), np.asarray(image))


def test_the_iccp_chunk_is_name_null_method_zero_then_zlib() -> None:
    [(body, crc)] = [(body, crc) for tag, body, crc in _chunks(encode_png(_random_image("RGB", 3, 2), PROFILE))
                     if tag == b"iCCP"]
    name, _, rest = body.partition(b"\x00")
    assert (name, rest[:1], zlib.decompress(rest[1:])) == (b"ICC profile", b"\x00", PROFILE)
    assert crc == zlib.crc32(b"iCCP" + body)


@pytest.mark.parametrize("profile", [None, b""])
def test_no_profile_no_iccp_chunk(profile: bytes | None) -> None:
    image = _random_image("RGB", 3, 2)
    image.info["icc_profile"] = PROFILE  # what the image's info says is not the encoder's business
    assert [tag for tag, _, _ in _chunks(encode_png(image, icc_profile=profile))] == [b"IHDR", b"IDAT", b"IEND"]


@settings(max_examples=200)
@given(first=st.binary(max_size=300), second=st.binary(max_size=70_000))
def test_the_bands_checksums_combine_into_the_whole_streams(first: bytes, second: bytes) -> None:
    """The PNG's bands are deflated apart; the zlib stream's Adler-32 is combined from theirs (65521 wraps)."""
    combined = adler32_combine(zlib.adler32(first), zlib.adler32(second), len(second))
    assert combined == zlib.adler32(first + second)


def test_a_many_band_png_is_one_valid_zlib_stream_that_libpng_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    """More bands than workers, each a raw deflate ended by a sync flush: zlib inflates the joined IDAT whole."""
    monkeypatch.setattr(png, "STRIPE_BYTES", SMALL_STRIPE_BYTES)
    height = stripe_rows(97, 3) * 5 + 3
    image = Image.fromarray(np.random.default_rng(3).integers(0, 256, (height, 97, 3), dtype=np.uint8))
    body = bytes(encode_png(image))
    idat = body[body.index(b"IDAT") + 4 : body.index(b"IEND") - 8]
    raw = zlib.decompress(idat)  # raises on a bad stream or checksum
    assert len(raw) == image.height * (1 + 3 * image.width)
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(body))), np.asarray(image))


def test_a_png_that_fails_while_written_stops_its_bands(monkeypatch: pytest.MonkeyPatch) -> None:
    """The file being written raises after the first piece (e.g. out of memory): no further band is deflated."""
    monkeypatch.setattr(bands, "process_cpus", lambda: 2)
    monkeypatch.setattr(png, "STRIPE_BYTES", SMALL_STRIPE_BYTES)
    deflated: list[int] = []
    real_band, real_append = png._deflate_band, png._append_chunk

    def counted_band(rows_of: png.RowsOf, height: int, top: int, bottom: int) -> tuple[bytes, int, int]:
        deflated.append(top)
        time.sleep(0.001)
        return real_band(rows_of, height, top, bottom)

    def failing_append(out: bytearray, tag: bytes, pieces: Iterable[bytes]) -> None:
        if tag == b"IDAT":
            next(iter(pieces))
            raise MemoryError("the file could not grow")
        real_append(out, tag, pieces)

    monkeypatch.setattr(png, "_deflate_band", counted_band)
    monkeypatch.setattr(png, "_append_chunk", failing_append)
    with pytest.raises(MemoryError):
        encode_png(_random_image("L", 33, 400 * stripe_rows(33, 1)))
    count = len(deflated)
    time.sleep(0.05)
    assert len(deflated) == count < 100  # of 400 bands: none deflated after the failure
