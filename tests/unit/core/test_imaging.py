"""app.core.decoding.imaging: limits first, the format allow-list, orientation, colour modes, profiles, errors."""

from __future__ import annotations

import io
import struct
import tracemalloc
import zlib
from collections.abc import Callable

import numpy as np
import pi_heif
import pytest
from PIL import Image, ImageCms, ImageFile

from app.core.decoding.heif import use_heif_decoder
from app.core.decoding.imaging import (
    ACCEPTED,
    ALLOWED_FORMATS,
    CorruptImage,
    DecodeLimits,
    Header,
    ImageRejected,
    ImageTooLarge,
    UnsupportedFormat,
    Upload,
    decode_image,
    exif_orientation,
    read_header,
    scale_to_uint8,
    sniff_format,
    to_8bit,
    to_rgb,
    value_range,
)
from tests.samples import (
    DISPLAY_P3_ICC,
    avif,
    avif_10bit,
    bit_depth,
    box_types,
    declaring,
    grey_levels_16bit,
    heic,
    heic_10bit,
    oriented,
)

ROOMY = DecodeLimits(max_bytes=50_000_000, max_pixels=50_000_000)
WHITE, BLACK = (255, 255, 255), (0, 0, 0)


def encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def pixels(image: Image.Image) -> list[tuple[int, int, int]]:
    return [tuple(int(v) for v in p) for p in np.asarray(image).reshape(-1, 3)]


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_declaring(width: int, height: int) -> bytes:
    """A ~60-byte PNG whose header claims width x height pixels (8-bit RGB)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 16)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")


def jpeg_declaring(width: int, height: int) -> bytes:
    """A small JPEG whose SOF0 marker is patched to claim width x height pixels."""
    data = bytearray(encode(Image.new("RGB", (16, 16), (9, 9, 9)), "JPEG"))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


# --- 1. byte size, first ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "limit", "expected"),
    [
        (1001, 1000, ImageTooLarge),  # one byte over: refused before anything looks at it
        (10**6, 1000, ImageTooLarge),
        (0, 1000, CorruptImage),  # empty
    ],
)
def test_byte_limit_is_checked_first(size: int, limit: int, expected: type[ImageRejected]) -> None:
    # GIVEN bytes that are not even an image WHEN the byte count is over the limit THEN 413, not 400
    with pytest.raises(expected) as raised:
        decode_image(b"\x00" * size, DecodeLimits(max_bytes=limit, max_pixels=10**9))
    assert raised.value.status_code == {ImageTooLarge: 413, CorruptImage: 400}[expected]


def test_the_byte_limit_message_says_what_to_send() -> None:
    with pytest.raises(ImageTooLarge) as raised:
        decode_image(b"\x00" * 1001, DecodeLimits(max_bytes=1000, max_pixels=10**9))
    assert raised.value.detail == ("the file is 1001 bytes, over the 1000-byte limit: send a smaller or more "
                                   "compressed image")


def test_file_of_exactly_the_byte_limit_is_decoded() -> None:
    data = encode(Image.new("RGB", (8, 8), (1, 2, 3)), "PNG")
    image = decode_image(data, DecodeLimits(max_bytes=len(data), max_pixels=64))
    assert image.size == (8, 8)


# --- 2. pixel count, from the header, before decoding -------------------------------------------


def noise_image(width: int, height: int) -> Image.Image:
    return Image.fromarray(np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8))


# A 64x64 HEIC or AVIF whose ispe box claims 11000x11000 (121 MP). Undefended, Pillow's AVIF
# decoder takes ~2 s and 363 MB "decoding" it; libheif refuses it only after decoding the tile.
HEIC_BOMB = declaring(heic(noise_image(64, 64)), 11_000, 11_000)
AVIF_BOMB = declaring(avif(noise_image(64, 64)), 11_000, 11_000)


@pytest.mark.parametrize(
    "data",
    [png_declaring(100_000, 100_000), jpeg_declaring(65_000, 65_000), png_declaring(50_001, 1_000), HEIC_BOMB,
     AVIF_BOMB],
    ids=["png-10-gigapixels", "jpeg-4-gigapixels", "png-just-over", "heic-121-megapixels", "avif-121-megapixels"],
)
def test_declared_pixels_over_the_limit_are_refused_without_decoding(
    data: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a tiny file that declares a huge image, and a load() that must never run, in every plugin
    def load_forbidden(self: ImageFile.ImageFile) -> None:
        raise AssertionError("decoded pixels despite the limit")

    monkeypatch.setattr(ImageFile.ImageFile, "load", load_forbidden)
    use_heif_decoder()  # registered by the first HEIF file otherwise: its load() is patched too
    Image.init()
    for factory, _ in (Image.OPEN[plugin] for plugin in ALLOWED_FORMATS):
        if isinstance(factory, type):  # the HEIF and AVIF plugins have a load() of their own
            monkeypatch.setattr(factory, "load", load_forbidden)
    # WHEN decoded with a 50 MP limit THEN 413 (load_forbidden proves no pixel was decoded first)
    with pytest.raises(ImageTooLarge) as raised:
        decode_image(data, DecodeLimits(max_bytes=10**6, max_pixels=50_000_000))
    assert raised.value.status_code == 413
    assert "pixel limit" in raised.value.detail


@pytest.mark.parametrize(("max_pixels", "accepted"), [(12 * 10, True), (12 * 10 - 1, False)])
def test_pixel_limit_boundary(max_pixels: int, accepted: bool) -> None:
    data = encode(Image.new("RGB", (12, 10)), "PNG")
    limits = DecodeLimits(max_bytes=10**6, max_pixels=max_pixels)
    if accepted:
        assert decode_image(data, limits).size == (12, 10)
    else:
        with pytest.raises(ImageTooLarge):
            decode_image(data, limits)


# --- 3. the format allow-list ----------------------------------------------------------------


def psd() -> bytes:  # Adobe Photoshop: "8BPS", version 1, 6 reserved, 3 channels, 8x8, depth 8, RGB
    return b"8BPS" + struct.pack(">H6xHIIHH", 1, 3, 8, 8, 8, 3) + b"\x00" * 64


def fli(magic: int) -> bytes:  # Autodesk FLI/FLC: size, magic 0xAF11/0xAF12 at offset 4, frames, 8x8
    return struct.pack("<IHHHHHH", 128, magic, 1, 8, 8, 8, 0) + b"\x00" * 114


def ftyp_only(major: bytes, *compatible: bytes) -> bytes:  # ISO BMFF: box size, "ftyp", brands, no image
    return struct.pack(">I", 16 + 4 * len(compatible)) + b"ftyp" + major + bytes(4) + b"".join(compatible) + bytes(32)


def svg() -> bytes:
    return b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"></svg>'


def pillow_written(fmt: str, mode: str = "RGB") -> Callable[[], bytes]:
    return lambda: encode(Image.new(mode, (8, 8), 0), fmt)


DISALLOWED = {
    "PSD": psd,
    "FLI": lambda: fli(0xAF11),
    "FLC": lambda: fli(0xAF12),
    "DDS": pillow_written("DDS"),
    "EPS": pillow_written("EPS"),
    "SVG/XML": svg,
    "PDF": pillow_written("PDF"),
    "ICO": pillow_written("ICO"),
    "ICNS": pillow_written("ICNS"),
    "JPEG 2000": pillow_written("JPEG2000"),
    "ISO media ('isom' brand)": lambda: ftyp_only(b"isom", b"isom", b"mp41"),  # an MP4 video
    "ISO media ('crx' brand)": lambda: ftyp_only(b"crx ", b"crx ", b"isom"),  # a Canon CR3 raw photo
    "ISO media ('hevc' brand)": lambda: ftyp_only(b"hevc", b"hevc", b"iso8"),  # a HEVC sequence: not our brands
    "PNM": pillow_written("PPM"),
    "PCX": pillow_written("PCX"),
    "SGI": pillow_written("SGI"),
    "TGA": pillow_written("TGA"),
    "QOI": pillow_written("QOI"),
    "XBM": pillow_written("XBM", "1"),
    "IM": lambda: b"Image type: RGB image\r\nSize (x*y): 8*8\r\n\x1a" + b"\x00" * 192,  # Pillow deprecates writing IM
    "MSP": pillow_written("MSP", "1"),
}


@pytest.mark.parametrize(("name", "make"), DISALLOWED.items(), ids=DISALLOWED.keys())
def test_formats_outside_the_allow_list_get_415(name: str, make: Callable[[], bytes]) -> None:
    with pytest.raises(UnsupportedFormat) as raised:
        decode_image(make(), ROOMY)
    assert raised.value.status_code == 415
    assert raised.value.detail.startswith(f"{name} images are not accepted")


def test_other_pillow_plugins_never_parse_the_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN every non-allowed plugin replaced by one that accepts anything and fails the test if opened
    def tripwire(*args: object) -> None:
        raise AssertionError("a plugin outside the allow-list parsed the upload")

    Image.init()
    for plugin in set(Image.OPEN) - set(ALLOWED_FORMATS):
        monkeypatch.setitem(Image.OPEN, plugin, (tripwire, lambda prefix: True))
    # WHEN disallowed and unknown files are decoded THEN they are refused without the tripwire firing
    for make in (psd, pillow_written("PDF"), pillow_written("TGA")):
        with pytest.raises(UnsupportedFormat):
            decode_image(make(), ROOMY)
    with pytest.raises(CorruptImage):
        decode_image(b"hello, world" * 10, ROOMY)


def animated_gif() -> bytes:
    frames = [Image.new("P", (6, 4), colour) for colour in (1, 2)]
    for frame, rgb in zip(frames, ((200, 10, 10), (10, 200, 10)), strict=True):
        frame.putpalette([0, 0, 0, *rgb, *rgb] + [0] * 759)
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return buffer.getvalue()


def multipage_tiff() -> bytes:
    buffer = io.BytesIO()
    first, second = Image.new("RGB", (6, 4), (1, 2, 3)), Image.new("RGB", (6, 4), (9, 9, 9))
    first.save(buffer, "TIFF", save_all=True, append_images=[second])
    return buffer.getvalue()


ALLOWED_SAMPLES = {
    "JPEG": (lambda: encode(Image.new("RGB", (6, 4), (0, 0, 0)), "JPEG"), BLACK),
    "PNG": (lambda: encode(Image.new("RGB", (6, 4), (1, 2, 3)), "PNG"), (1, 2, 3)),
    "WEBP-lossless": (lambda: encode(Image.new("RGB", (6, 4), (1, 2, 3)), "WEBP", lossless=True), (1, 2, 3)),
    "GIF-first-frame": (animated_gif, (200, 10, 10)),
    "BMP": (lambda: encode(Image.new("RGB", (6, 4), (1, 2, 3)), "BMP"), (1, 2, 3)),
    "TIFF-first-page": (multipage_tiff, (1, 2, 3)),
    "HEIC": (lambda: heic(Image.new("RGB", (6, 4), (1, 2, 3))), (1, 2, 3)),
    "AVIF": (lambda: avif(Image.new("RGB", (6, 4), (1, 2, 3)), quality=100, subsampling="4:4:4"), None),
}


@pytest.mark.parametrize(("make", "colour"), ALLOWED_SAMPLES.values(), ids=ALLOWED_SAMPLES.keys())
def test_allowed_formats_decode_to_rgb(make: Callable[[], bytes], colour: tuple[int, int, int] | None) -> None:
    image = decode_image(make(), ROOMY)
    assert (image.mode, image.size) == ("RGB", (6, 4))
    if colour is None:  # AVIF at quality 100 is near-lossless: YCbCr rounding moves a level or two
        assert np.abs(np.asarray(image, np.int16) - np.array((1, 2, 3))).max() <= 2
    else:
        assert set(pixels(image)) == {colour}


# --- 4. corrupt input -------------------------------------------------------------------------


def truncated(fmt: str) -> bytes:
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    data = encode(Image.fromarray(noise), fmt)
    return data[: len(data) // 2]


def bad_ihdr_crc() -> bytes:
    data = bytearray(encode(Image.new("RGB", (8, 8)), "PNG"))
    data[29] ^= 0xFF  # the IHDR's CRC
    return bytes(data)


def truncated_heif(fmt: str, keep: int) -> bytes:
    """The first ``keep`` bytes of a 64x64 HEIC or AVIF (negative: all but the last ``-keep``)."""
    data = heic(noise_image(64, 64)) if fmt == "HEIF" else avif(noise_image(64, 64))
    return data[:keep]


CORRUPT = {
    "truncated-png": (lambda: truncated("PNG"), "could not be decoded"),
    "truncated-jpeg": (lambda: truncated("JPEG"), "could not be decoded"),
    "truncated-webp": (lambda: truncated("WEBP"), ""),
    # HEIF/AVIF: the container (ftyp, meta: ~400 bytes) first, the coded image (mdat) last
    "truncated-heic-image-data": (lambda: truncated_heif("HEIF", -100), "could not be decoded"),
    "truncated-heic-container": (lambda: truncated_heif("HEIF", 100), "looks like HEIF but its header is corrupt"),
    "truncated-avif-image-data": (lambda: truncated_heif("AVIF", -100), "could not be decoded"),
    "truncated-avif-container": (lambda: truncated_heif("AVIF", 100), "looks like AVIF but its header is corrupt"),
    "heic-ftyp-only": (lambda: ftyp_only(b"heic", b"mif1", b"heic"), "looks like HEIF but its header is corrupt"),
    "avif-ftyp-only": (lambda: ftyp_only(b"avif", b"avif", b"mif1"), "looks like AVIF but its header is corrupt"),
    "png-bad-header-crc": (bad_ihdr_crc, "looks like PNG but its header is corrupt"),
    "png-signature-only": (lambda: b"\x89PNG\r\n\x1a\n", "looks like PNG"),
    "jpeg-soi-only": (lambda: b"\xff\xd8\xff\xe0", "JPEG"),
    "text": (lambda: b"this is not an image\n" * 5, "not a recognised image"),
    "html": (lambda: b"<!doctype html><html><body>hi</body></html>", "not a recognised image"),
    "random": (lambda: np.random.default_rng(1).bytes(4096), "not a recognised image"),
}


@pytest.mark.parametrize(("make", "phrase"), CORRUPT.values(), ids=CORRUPT.keys())
def test_corrupt_or_non_images_get_400(make: Callable[[], bytes], phrase: str) -> None:
    with pytest.raises(CorruptImage) as raised:
        decode_image(make(), ROOMY)
    assert raised.value.status_code == 400
    assert phrase in raised.value.detail


@pytest.mark.parametrize(
    ("raised_by_pillow", "expected"),
    [
        (OSError("broken data stream"), CorruptImage),
        (SyntaxError("broken PNG file"), CorruptImage),
        (struct.error("unpack requires a buffer of 4 bytes"), CorruptImage),
        (IndexError("index out of range"), CorruptImage),
        (KeyError("bad tag"), CorruptImage),
        (TypeError("bad operand"), CorruptImage),
        (ValueError("bad value"), CorruptImage),
        (EOFError(), CorruptImage),
        (ZeroDivisionError(), CorruptImage),
        (RecursionError(), CorruptImage),
        (MemoryError(), ImageTooLarge),
        (Image.DecompressionBombError("too big"), ImageTooLarge),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, BaseException) else value.__name__,
)
def test_every_pillow_decode_error_becomes_a_rejection(
    raised_by_pillow: BaseException, expected: type[ImageRejected], monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing_load(self: ImageFile.ImageFile) -> None:
        raise raised_by_pillow

    monkeypatch.setattr(ImageFile.ImageFile, "load", failing_load)
    with pytest.raises(expected):
        decode_image(encode(Image.new("RGB", (4, 4)), "PNG"), ROOMY)


# --- 5. EXIF orientation ----------------------------------------------------------------------

# Upright, 3 wide and 2 tall, every pixel a different colour: any flip or turn shows.
UPRIGHT = [[(255, 0, 0), (0, 255, 0), (0, 0, 255)], [(255, 255, 0), (0, 255, 255), (255, 0, 255)]]

# How a camera stores an upright scene for each EXIF orientation (EXIF 2.32, tag 0x0112):
# the decoder must undo exactly this. 6 = "row 0 is the visual right side": stored turned
# 90 degrees counter-clockwise, displayed by turning it clockwise.
STORED_AS = {
    1: None,
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


def stored(orientation: int) -> Image.Image:
    upright = Image.fromarray(np.array(UPRIGHT, dtype=np.uint8))
    method = STORED_AS[orientation]
    return upright if method is None else upright.transpose(method)


def with_orientation(image: Image.Image, orientation: int, fmt: str, **params: object) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(image, fmt, exif=exif.tobytes(), **params)


LOSSLESS = {"PNG": {}, "WEBP": {"lossless": True}, "TIFF": {}}


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("fmt", LOSSLESS)
def test_exif_orientation_is_applied(orientation: int, fmt: str) -> None:
    # GIVEN the upright pattern stored as a camera stores it for this orientation, tag set
    data = with_orientation(stored(orientation), orientation, fmt, **LOSSLESS[fmt])
    # WHEN decoded THEN it is upright again, pixel for pixel
    image = decode_image(data, ROOMY)
    assert image.size == (3, 2)
    assert np.asarray(image).tolist() == [[list(p) for p in row] for row in UPRIGHT]


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_of_a_jpeg(orientation: int) -> None:
    # JPEG is lossy: 16-pixel blocks of the pattern, compared by their centres.
    small = stored(orientation)
    big = small.resize((small.width * 16, small.height * 16), Image.Resampling.NEAREST)
    image = decode_image(with_orientation(big, orientation, "JPEG"), ROOMY)
    assert image.size == (48, 32)
    centres = np.asarray(image)[8::16, 8::16].astype(int)
    assert np.abs(centres - np.array(UPRIGHT)).max() <= 12


@pytest.mark.parametrize("orientation", [0, 9, 65535])
def test_invalid_orientation_values_are_ignored(orientation: int) -> None:
    image = decode_image(with_orientation(stored(1), orientation, "PNG"), ROOMY)
    assert np.asarray(image).tolist() == [[list(p) for p in row] for row in UPRIGHT]


# --- 6. colour modes -> RGB -----------------------------------------------------------------


def grid(mode: str, values: list, fmt: str, **params: object) -> bytes:
    """A 1-row image of ``values`` (lists for multi-band modes) in ``mode``, encoded losslessly as ``fmt``."""
    image = Image.new(mode, (len(values), 1))
    image.putdata([tuple(value) if isinstance(value, list) else value for value in values])
    return encode(image, fmt, **params)


def palette_with_transparency() -> bytes:
    image = Image.new("P", (3, 1))
    image.putpalette([10, 20, 30, 200, 0, 0, 0, 0, 250] + [0] * 759)
    image.putdata([0, 1, 2])
    return encode(image, "PNG", transparency=0)


def with_transparent_level(mode: str, values: list, transparent: object) -> bytes:
    image = Image.new(mode, (len(values), 1))
    image.putdata(values)
    return encode(image, "PNG", transparency=transparent)


def half_over_white(value: int, alpha: int) -> int:
    return round((value * alpha + 255 * (255 - alpha)) / 255)


COLOUR_MODES = {
    "1": (lambda: grid("1", [0, 1], "PNG"), [BLACK, WHITE]),
    "L": (lambda: grid("L", [0, 100, 255], "PNG"), [BLACK, (100, 100, 100), WHITE]),
    "L+tRNS": (lambda: with_transparent_level("L", [0, 100, 7], 7), [BLACK, (100, 100, 100), WHITE]),
    "P": (lambda: grid("P", [0, 1], "GIF"), None),  # checked below: the palette's colours
    "P+transparency": (palette_with_transparency, [WHITE, (200, 0, 0), (0, 0, 250)]),
    "RGB+tRNS": (lambda: with_transparent_level("RGB", [(1, 2, 3), (9, 9, 9)], (9, 9, 9)), [(1, 2, 3), WHITE]),
    "LA": (lambda: grid("LA", [[100, 0], [100, 255]], "PNG"), [WHITE, (100, 100, 100)]),
    "RGBA": (lambda: grid("RGBA", [[1, 2, 3, 0], [1, 2, 3, 255], [0, 0, 0, 128]], "PNG"),
             [WHITE, (1, 2, 3), (half_over_white(0, 128),) * 3]),
    "RGBA-WebP": (lambda: grid("RGBA", [[1, 2, 3, 0], [1, 2, 3, 255]], "WEBP", lossless=True, exact=True),
                  [WHITE, (1, 2, 3)]),
    "CMYK": (lambda: grid("CMYK", [[0, 0, 0, 0], [255, 0, 0, 0], [0, 0, 0, 255]], "TIFF"),
             [WHITE, (0, 255, 255), BLACK]),
    "I;16": (lambda: grid("I;16", [0, 25700, 65535], "PNG"), [BLACK, (100, 100, 100), WHITE]),
    "I;16+tRNS": (lambda: with_transparent_level("I;16", [0, 65535, 25700], 25700), [BLACK, WHITE, WHITE]),
    "I;16B": (lambda: grid("I;16B", [0, 25700, 65535], "TIFF"), [BLACK, (100, 100, 100), WHITE]),
    "I-8bit-range": (lambda: grid("I", [0, 100, 255], "TIFF"), [BLACK, (100, 100, 100), WHITE]),
    "I-16bit-range": (lambda: grid("I", [0, 25700, 65535], "TIFF"), [BLACK, (100, 100, 100), WHITE]),
    "I-wide-range": (lambda: grid("I", [-1000, 0, 1000], "TIFF"), [BLACK, (128, 128, 128), WHITE]),
    "F-unit-range": (lambda: grid("F", [0.0, 0.5, 1.0], "TIFF"), [BLACK, (128, 128, 128), WHITE]),
    "F-8bit-range": (lambda: grid("F", [0.0, 100.0, 255.0], "TIFF"), [BLACK, (100, 100, 100), WHITE]),
    "F-wide-range": (lambda: grid("F", [-2.0, 0.0, 2.0, float("nan")], "TIFF"),
                     [BLACK, (128, 128, 128), WHITE, BLACK]),
    # A span wider than float32 holds, and infinities beside finite extremes: both overflowed float32 (a 500 under
    # warnings-as-errors), found by the Hypothesis property test_predict_answers_any_upload_with_200_or_a_4xx.
    "F-span-past-float32": (lambda: grid("F", [-3e38, 0.0, 3e38], "TIFF"), [BLACK, (128, 128, 128), WHITE]),
    "F-infinities": (lambda: grid("F", [-1e38, 0.0, float("inf"), float("-inf")], "TIFF"),
                     [BLACK, WHITE, WHITE, BLACK]),
}


@pytest.mark.parametrize(("make", "expected"), COLOUR_MODES.values(), ids=COLOUR_MODES.keys())
def test_every_colour_mode_becomes_sensible_rgb(make: Callable[[], bytes], expected: list | None) -> None:
    image = decode_image(make(), ROOMY)
    assert image.mode == "RGB"
    if expected is not None:
        assert pixels(image) == expected


def test_palette_image_takes_its_palette_colours() -> None:
    image = Image.new("P", (2, 1))
    image.putpalette([12, 34, 56, 200, 100, 0] + [0] * 762)
    image.putdata([0, 1])
    assert pixels(decode_image(encode(image, "PNG"), ROOMY)) == [(12, 34, 56), (200, 100, 0)]


def test_unsupported_colour_mode_gets_415() -> None:
    with pytest.raises(UnsupportedFormat, match="colour mode LAB"):
        decode_image(encode(Image.new("LAB", (4, 4)), "TIFF"), ROOMY)


# --- 7. sniffing (only words the rejection) ----------------------------------------------------


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"\xff\xd8\xff\xe0", "JPEG"),
        (b"\x89PNG\r\n\x1a\n", "PNG"),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "WEBP"),
        (b"GIF89a", "GIF"),
        (b"BM", "BMP"),
        (b"II*\x00", "TIFF"),
        (b"MM\x00*", "TIFF"),
        (b"8BPS", "PSD"),
        (b"%PDF-1.7", "PDF"),
        (b"   \n<svg xmlns=", "SVG/XML"),
        (b"\xef\xbb\xbf<?xml", "SVG/XML"),
        (b"P6\n8 8\n255\n", "PNM"),
        (b"PK\x03\x04", None),
        (b"", None),
        (ftyp_only(b"heic", b"mif1", b"heic"), "HEIF"),
        (ftyp_only(b"heix", b"mif1", b"heix"), "HEIF"),
        (ftyp_only(b"mif1", b"mif1", b"heic"), "HEIF"),
        (ftyp_only(b"msf1", b"msf1"), "HEIF"),
        (ftyp_only(b"avif", b"avif", b"mif1", b"miaf"), "AVIF"),
        (ftyp_only(b"avis", b"avis", b"msf1"), "AVIF"),
        (ftyp_only(b"mif1", b"mif1", b"avif"), "AVIF"),  # mif1 says "a HEIF image": the compatible avif decides
        (ftyp_only(b"isom", b"isom", b"mp41"), "ISO media ('isom' brand)"),
        (ftyp_only(b"crx ", b"isom"), "ISO media ('crx' brand)"),  # the major brand (Canon CR3), stripped
        (b"X<svg xmlns=", None),  # only a BOM and whitespace may come before the markup
        (bytes([0x0A, 5, 1]), "PCX"),  # manufacturer 10, version 0-5, run-length encoding 1
        (bytes([0x0A, 6, 1]), None),  # no such version
        (bytes([0x0A, 5]), None),  # too short to tell
        (b"\x00\x00\x00\x18ftyp", None),  # the box's header without a brand
    ],
)
def test_sniff_format(head: bytes, expected: str | None) -> None:
    assert sniff_format(head) == expected


# --- 8. HEIF and AVIF: orientation once, the primary image, bit depth -----------------------------

BLOCK = 16  # HEIC/AVIF samples: the pattern in 16-pixel blocks (AVIF is near-lossless), compared by centres


def blocks(image: Image.Image) -> Image.Image:
    return image.resize((image.width * BLOCK, image.height * BLOCK), Image.Resampling.NEAREST)


def centres(image: Image.Image) -> np.ndarray:
    return np.asarray(image)[BLOCK // 2 :: BLOCK, BLOCK // 2 :: BLOCK].astype(int)


def transforms_in(data: bytes) -> list[bytes]:
    return [kind for kind in box_types(data) if kind in (b"irot", b"imir")]


def exif_orientation_in(data: bytes) -> int | None:
    """The Orientation value of the EXIF inside the file, read from its bytes (either byte order)."""
    for order in "<>":
        for value in range(1, 9):
            if struct.pack(f"{order}HHIH", 0x0112, 3, 1, value) in data:
                return value
    return None


@pytest.mark.parametrize("fmt", ["HEIF", "AVIF"])
@pytest.mark.parametrize("orientation", range(1, 9))
def test_the_containers_rotation_and_mirror_are_applied_once(fmt: str, orientation: int) -> None:
    # GIVEN the pattern stored as a camera stores it, the transform in irot/imir only
    data = oriented(fmt, blocks(stored(orientation)), container=orientation)
    assert (transforms_in(data) != [], exif_orientation_in(data)) == (orientation != 1, None)
    # WHEN decoded THEN it is upright (with the EXIF saying the same too: below)
    image = decode_image(data, ROOMY)
    assert image.size == (3 * BLOCK, 2 * BLOCK)
    assert np.abs(centres(image) - np.array(UPRIGHT)).max() <= 4


# id: (container transform, EXIF orientation tag, how it is displayed). MIAF (ISO/IEC 23000-22:2024,
# 7.3.10.1): a transformation the EXIF expresses "shall be ignored"; the container's decides.
HEIF_ORIENTATIONS = {
    "exif-only": (1, 6, 1),
    "container-only": (6, None, 6),
    "both-agreeing": (6, 6, 6),
    "both-disagreeing": (6, 3, 6),
}


@pytest.mark.parametrize("fmt", ["HEIF", "AVIF"])
@pytest.mark.parametrize(("container", "exif", "shown_as"), HEIF_ORIENTATIONS.values(), ids=HEIF_ORIENTATIONS)
def test_an_exif_orientation_inside_heif_is_ignored(fmt: str, container: int, exif: int | None, shown_as: int) -> None:
    data = oriented(fmt, blocks(stored(6)), container=container, exif=exif)
    assert (transforms_in(data), exif_orientation_in(data)) == ([b"irot"] if container == 6 else [], exif)
    image = decode_image(data, ROOMY)
    # the pattern stored for orientation 6 (2 wide, 3 tall), turned only as the container says
    expected = np.array(UPRIGHT) if shown_as == 6 else np.asarray(stored(6)).astype(int)
    assert np.abs(centres(image) - expected).max() <= 4


def test_only_the_primary_image_is_decoded() -> None:
    # GIVEN a HEIF holding two images, the second one primary (pitm)
    import pillow_heif

    first, primary = Image.new("RGB", (40, 24), (200, 0, 0)), Image.new("RGB", (24, 40), (0, 0, 200))
    container = pillow_heif.from_pillow(first)
    container.add_from_pillow(primary)
    buffer = io.BytesIO()
    container.save(buffer, primary_index=1, quality=-1, chroma=444, matrix_coefficients=0)
    # WHEN decoded with a pixel limit only the primary fits THEN the primary image it is
    image = decode_image(buffer.getvalue(), DecodeLimits(max_bytes=10**6, max_pixels=24 * 40))
    assert (image.size, set(pixels(image))) == ((24, 40), {(0, 0, 200)})


def test_thumbnails_depth_and_auxiliary_images_are_never_opened() -> None:
    use_heif_decoder()  # what the first HEIF file does
    assert (pi_heif.options.THUMBNAILS, pi_heif.options.DEPTH_IMAGES, pi_heif.options.AUX_IMAGES) == (False,) * 3


# 16-bit grey levels, in 10 bits (their top 10 bits) -> 8 bits: scaled (x255/1023), never clipped
LEVELS_16BIT = [0, 16448, 32896, 49344, 65535]
LEVELS_8BIT = [0, 64, 128, 192, 255]


@pytest.mark.parametrize("make", [heic_10bit, avif_10bit], ids=["HEIC", "AVIF"])
def test_10bit_images_are_scaled_to_8bit(make: Callable[[np.ndarray], bytes]) -> None:
    data = make(grey_levels_16bit(LEVELS_16BIT, BLOCK))
    assert bit_depth(data) == 10
    image = decode_image(data, ROOMY)
    assert (image.mode, image.size) == ("RGB", (len(LEVELS_16BIT) * BLOCK, BLOCK))
    assert centres(image)[0].tolist() == [[level] * 3 for level in LEVELS_8BIT]


# --- 9. ICC profiles: kept when they describe the RGB pixels ------------------------------------

LAB_ICC = ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB")).tobytes()


def with_profile(fmt: str, mode: str, profile: bytes) -> bytes:
    image = Image.new(mode, (6, 4), 120)
    if fmt == "HEIF":
        return heic(image.convert("RGB"), icc_profile=profile)
    if fmt == "AVIF":
        return avif(image.convert("RGB"), icc_profile=profile)
    return encode(image, fmt, icc_profile=profile, **({"lossless": True} if fmt == "WEBP" else {}))


# id: (format, mode, profile in the file, profile kept)
PROFILES = {
    "png-display-p3": ("PNG", "RGB", DISPLAY_P3_ICC, DISPLAY_P3_ICC),
    "png-rgba-display-p3": ("PNG", "RGBA", DISPLAY_P3_ICC, DISPLAY_P3_ICC),
    "png-palette-display-p3": ("PNG", "P", DISPLAY_P3_ICC, DISPLAY_P3_ICC),
    "jpeg-display-p3": ("JPEG", "RGB", DISPLAY_P3_ICC, DISPLAY_P3_ICC),
    "webp-display-p3": ("WEBP", "RGB", DISPLAY_P3_ICC, DISPLAY_P3_ICC),
    "heic-display-p3": ("HEIF", "RGB", DISPLAY_P3_ICC, DISPLAY_P3_ICC),
    "avif-display-p3": ("AVIF", "RGB", DISPLAY_P3_ICC, DISPLAY_P3_ICC),
    "greyscale-with-an-rgb-profile": ("PNG", "L", DISPLAY_P3_ICC, None),  # it describes no grey pixels
    "lab-profile": ("TIFF", "RGB", LAB_ICC, None),
    "unreadable-profile": ("PNG", "RGB", b"not an ICC profile" * 8, None),
}


@pytest.mark.parametrize(("fmt", "mode", "profile", "kept"), PROFILES.values(), ids=PROFILES)
def test_the_inputs_rgb_profile_is_all_the_decoded_image_keeps(
    fmt: str, mode: str, profile: bytes, kept: bytes | None
) -> None:
    image = decode_image(with_profile(fmt, mode, profile), ROOMY)
    assert image.mode == "RGB"
    assert image.info == ({"icc_profile": kept} if kept else {})


def test_exif_and_other_file_info_are_not_kept() -> None:
    data = with_orientation(stored(6), 6, "PNG", dpi=(300, 300))
    assert decode_image(data, ROOMY).info == {}  # the EXIF said "turn me": done, no longer true


# --- 8. a file instead of bytes (POST /predict's spooled upload) ------------------------------


@pytest.mark.parametrize(("make", "colour"), ALLOWED_SAMPLES.values(), ids=ALLOWED_SAMPLES.keys())
def test_a_file_decodes_to_the_same_pixels_as_its_bytes(make: Callable[[], bytes], colour: object) -> None:
    data = make()
    spooled = io.BytesIO(b"already read" + data)
    spooled.seek(len(b"already read"))
    from_file = decode_image(io.BytesIO(data), ROOMY)
    assert np.array_equal(np.asarray(from_file), np.asarray(decode_image(data, ROOMY)))
    with pytest.raises(CorruptImage):  # a file is read from its start, wherever it was left: here, a prefix
        decode_image(spooled, ROOMY)


@pytest.mark.parametrize(("data", "limits", "expected", "detail"), [
    (png_declaring(20_000, 20_000), ROOMY, ImageTooLarge, "the image is 20000x20000"),
    (b"\x89PNG" + b"\x00" * 100, DecodeLimits(max_bytes=50, max_pixels=100), ImageTooLarge, "the file is 104 bytes"),
    (encode(noise_image(64, 64), "TGA"), ROOMY, UnsupportedFormat, "TGA images"),  # 12 KB: its footer is the tail
    (psd(), ROOMY, UnsupportedFormat, "PSD images"),
    (b"", ROOMY, CorruptImage, "the file is empty"),
], ids=["declared-pixels", "byte-size", "tga-footer", "psd", "empty"])
def test_a_file_is_refused_as_its_bytes_are(data: bytes, limits: DecodeLimits, expected: type[ImageRejected],
                                            detail: str) -> None:
    with pytest.raises(expected) as from_bytes:
        decode_image(data, limits)
    with pytest.raises(expected) as from_file:
        decode_image(io.BytesIO(data), limits)
    assert from_file.value.detail == from_bytes.value.detail
    assert from_file.value.detail.startswith(detail)


@pytest.mark.parametrize(("data", "limits", "reason", "remedy"), [
    (b"", ROOMY, "the file is empty", f"send a {ACCEPTED} image"),
    (b"hello " * 20, ROOMY, "the file is not a recognised image", f"send a {ACCEPTED} image"),
    (psd(), ROOMY, "PSD images are not accepted", f"send a {ACCEPTED} image"),
    (b"\x89PNG\r\n\x1a\n" + b"\x00" * 50, ROOMY, "the file looks like PNG but its header is corrupt",
     "send a valid image"),
    (b"\x89PNG" + b"\x00" * 100, DecodeLimits(max_bytes=50, max_pixels=100),
     "the file is 104 bytes, over the 50-byte limit", "send a smaller or more compressed image"),
    (png_declaring(20_000, 20_000), ROOMY, "the image is 20000x20000 = 400000000 pixels, over the 50000000-pixel "
     "limit", "send a smaller image"),
], ids=["empty", "text", "psd", "png-header", "byte-size", "declared-pixels"])
def test_a_rejection_keeps_what_is_wrong_apart_from_what_to_send(data: bytes, limits: DecodeLimits, reason: str,
                                                                 remedy: str) -> None:
    """The reason speaks of the file (the command line says it alone); HTTP's detail adds what to send instead."""
    with pytest.raises(ImageRejected) as raised:
        decode_image(data, limits)
    assert (raised.value.reason, raised.value.remedy) == (reason, remedy)
    assert raised.value.detail == str(raised.value) == f"{reason}: {remedy}"


# --- the header alone (what the memory budget reads) ---------------------------------------------

HEADER_CASES = {
    "jpeg": (lambda: encode(Image.new("RGB", (30, 20)), "JPEG"), Header("JPEG", 30, 20)),
    "png": (lambda: encode(Image.new("RGB", (30, 20)), "PNG"), Header("PNG", 30, 20)),
    "tiff-raw": (lambda: encode(Image.new("RGB", (30, 20)), "TIFF"), Header("TIFF", 30, 20, "raw")),
    "tiff-lzw": (lambda: encode(Image.new("RGB", (30, 20)), "TIFF", compression="tiff_lzw"),
                 Header("TIFF", 30, 20, "tiff_lzw")),
    "declared-not-decoded": (lambda: png_declaring(7000, 5000), Header("PNG", 7000, 5000)),  # its pixels are absent
    "heic": (lambda: heic(Image.new("RGB", (32, 24))), Header("HEIF", 32, 24)),
    "avif": (lambda: avif(Image.new("RGB", (32, 24))), Header("AVIF", 32, 24)),
    "bmp": (lambda: encode(Image.new("RGB", (30, 20)), "BMP"), Header("BMP", 30, 20)),  # Pillow says compression 0
}


@pytest.mark.parametrize(("make", "expected"), HEADER_CASES.values(), ids=HEADER_CASES.keys())
def test_read_header_declares_format_size_and_tiff_compression(make: Callable[[], bytes], expected: Header) -> None:
    assert read_header(make(), ROOMY) == expected


def test_read_header_leaves_the_file_for_the_decoder() -> None:
    spooled = io.BytesIO(encode(Image.new("RGB", (30, 20), (1, 2, 3)), "PNG"))
    assert read_header(spooled, ROOMY).pixels == 600
    assert pixels(decode_image(spooled, ROOMY))[:1] == [(1, 2, 3)]


@pytest.mark.parametrize(("data", "limits", "expected", "detail"), [
    (png_declaring(20_000, 20_000), ROOMY, ImageTooLarge, "the image is 20000x20000"),
    (b"\x89PNG" + b"\x00" * 100, DecodeLimits(max_bytes=50, max_pixels=100), ImageTooLarge, "the file is 104 bytes"),
    (psd(), ROOMY, UnsupportedFormat, "PSD images"),
    (b"\x89PNG\r\n\x1a\n" + b"\x00" * 50, ROOMY, CorruptImage, "the file looks like PNG"),
], ids=["declared-pixels", "byte-size", "psd", "corrupt-header"])
def test_read_header_refuses_as_decode_image_does(data: bytes, limits: DecodeLimits, expected: type[ImageRejected],
                                                 detail: str) -> None:
    with pytest.raises(expected) as header:
        read_header(data, limits)
    with pytest.raises(expected) as decode:
        decode_image(data, limits)
    assert header.value.detail == decode.value.detail
    assert header.value.detail.startswith(detail)
NAN = float("nan")
INF = float("inf")


@pytest.mark.parametrize(
    ("values", "mode", "expected"),
    [
        ([0, 100, 255], "I;16", (0.0, 65535.0)),  # 16-bit: always its nominal range, however dark
        ([0, 1], "I", (0.0, 255.0)),  # 32-bit ints: the smallest nominal range that holds them, never 0..1
        ([0, 300], "I", (0.0, 65535.0)),
        ([-5, 5], "I", (-5.0, 5.0)),  # below 0: min..max
        ([0.0, 0.5, 1.0], "F", (0.0, 1.0)),
        ([0.0, 2.0], "F", (0.0, 255.0)),
        ([-2.0, NAN, 2.0], "F", (-2.0, 2.0)),  # NaN ignored
        ([NAN, NAN], "F", (0.0, 1.0)),  # nothing finite
    ],
)
def test_value_range(values: list[float], mode: str, expected: tuple[float, float]) -> None:
    assert value_range(np.array(values), mode) == expected


@pytest.mark.parametrize(
    ("values", "low", "high", "expected"),
    [
        ([0, 100, 200, 255], 0.0, 255.0, [0, 100, 200, 255]),
        ([0, 32767, 51529, 65535], 0.0, 65535.0, [0, 127, 201, 255]),  # 51529 / 257 = 200.502: rounded up
        ([-1000.0, -2.0, 2.0, 1000.0], -2.0, 2.0, [0, 0, 255, 255]),  # outside: clipped, never wrapped
        ([-2.0, 0.0, NAN], -2.0, 2.0, [0, 128, 0]),  # NaN -> low
        ([5.0, 7.0, 9.0], 7.0, 7.0, [0, 0, 0]),  # no span: all 0
        # -inf beside a huge constant (no span): taken as low, not as -3.4e38, which minus 1e32 overflows float32
        ([-INF, 1e32, INF], 1e32, 1e32, [0, 0, 0]),
    ],
)
def test_scale_to_uint8(values: list[float], low: float, high: float, expected: list[int]) -> None:
    with np.errstate(all="raise"):  # "nothing overflows": an overflow or a NaN from one fails here
        assert scale_to_uint8(np.array(values), low, high).tolist() == expected


FLOAT32_MAX = float(np.finfo(np.float32).max)


@pytest.mark.parametrize("high", [1.0, FLOAT32_MAX], ids=["unit-range", "widest-float32-span"])
def test_scale_to_uint8_computes_in_float32_whenever_the_span_fits_it(high: float) -> None:
    # A float TIFF's pixels are scaled in float32 (half float64's temporaries: 40 MP is 160 MB less), up to and
    # including a span of float32's largest value; numpy reports its arrays to tracemalloc.
    values = np.zeros(1_000_000, dtype=np.float32)
    values[-1] = high
    tracemalloc.start()
    try:
        scaled = scale_to_uint8(values, 0.0, high)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert (scaled[0], scaled[-1]) == (0, 255)
    assert peak < 4 * values.nbytes  # float32: about 3.3x the input at its peak; float64 would need 6x


@pytest.mark.parametrize("size", [0, 5, 17, 18, 19, 4096, 4097, 5000])
def test_an_upload_holds_the_first_4096_and_last_18_bytes_of_bytes_and_streams_alike(size: int) -> None:
    # the head (signatures, ftyp brands) and TGA's 18-byte footer; never the whole of a file it streams
    data = bytes(range(256)) * 20
    data = data[:size]
    expected = (size, data[:4096], data[max(size - 18, 0):])
    for source in (data, io.BytesIO(data)):
        upload = Upload.of(source)
        assert (upload.size, upload.head, upload.tail, upload.stream.tell()) == (*expected, 0)


@pytest.mark.parametrize(
    ("transparency", "mode", "pixels"),
    [
        (None, "L", [[0, 255]]),
        (65535, "LA", [[[0, 255], [255, 0]]]),  # the grey level marked transparent: alpha 0 there
        (b"\xff\xff", "L", [[0, 255]]),  # not a grey level: ignored
        (True, "L", [[0, 255]]),  # a bool is no level either (True == 1)
    ],
)
def test_to_8bit_keeps_a_transparent_grey_level_as_alpha(transparency: object, mode: str, pixels: list) -> None:
    image = Image.fromarray(np.array([[0, 65535]], dtype=np.uint16))
    if transparency is not None:
        image.info["transparency"] = transparency
    converted = to_8bit(image)
    assert (converted.mode, np.asarray(converted).tolist()) == (mode, pixels)


@pytest.mark.parametrize(("tag", "expected"), [(None, 1), (6, 6), (8, 8), (9, 1), (0, 1)])
def test_exif_orientation_is_1_unless_a_valid_one_is_tagged(tag: int | None, expected: int) -> None:
    image = Image.new("RGB", (2, 2))
    if tag is not None:
        image.getexif()[0x0112] = tag
    assert exif_orientation(image) == expected


def test_an_unreadable_exif_block_means_upright() -> None:
    image = Image.new("RGB", (2, 2))

    def broken() -> Image.Exif:
        raise SyntaxError("not a TIFF file")  # what Pillow raises for a mangled EXIF header

    image.getexif = broken  # type: ignore[method-assign]
    assert exif_orientation(image) == 1


def test_an_rgb_image_is_returned_itself_not_copied() -> None:  # 36 MB at 12 MP: the pipeline draws into it
    image = Image.new("RGB", (2, 2))
    assert to_rgb(image) is image
