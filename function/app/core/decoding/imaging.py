"""Decoding untrusted image bytes: limits first, an allow-list of formats, then RGB.

``decode_image(data_or_file, limits)`` checks, in order, each before any pixel is decoded:

1. the byte size (``ImageTooLarge``, 413);
2. the format, from the header, against ``ALLOWED_FORMATS`` (JPEG, PNG, WebP, GIF,
   BMP, TIFF, HEIF, AVIF; HEIF and AVIF by their ``ftyp`` brands, ``app.core.decoding.heif``).
   Only those Pillow plugins ever parse the bytes: the others (PSD, FLI, DDS, EPS, ...)
   are attack surface with no use here (``UnsupportedFormat``, 415);
3. the pixel count the header declares (``ImageTooLarge``, 413): for HEIF and AVIF the
   container's ``ispe``, read before any tile is decoded; for GIF the canvas grown to the
   first frame's extent, read before Pillow opens the file, which allocates it (``app.core.decoding.gif``);

``read_header`` runs these three checks alone and returns what they read (format, size; what
``app.core.resources.budget`` estimates a request's memory from). ``decode_image`` then decodes the
first frame (HEIF: the primary image), applies the orientation (EXIF;
HEIF and AVIF: their ``irot``/``imir``, once, ``app.core.decoding.heif``) and converts to RGB:

- transparency (alpha channels, palette or single-colour ``tRNS`` transparency) is
  composited over white, as a viewer on a white page shows the image;
- 16-bit and 32-bit greyscale is scaled to 8 bits by its range (16-bit: /257;
  float in 0..1: x255; values outside 0..65535: min-max), not clipped to white;
  10- and 12-bit HEIF and AVIF are scaled to 8 bits by their decoders;
- CMYK, YCbCr, 1-bit and palette images convert with Pillow's conversions.

A compressed TIFF of several bands of strips is decoded a band at a time (``app.core.decoding.tiff``):
libtiff would otherwise hold the whole file beside its pixels.

The decoded image's ``info`` holds one entry at most: ``icc_profile``, the input's RGB
ICC profile (``app.core.decoding.colour.rgb_profile``); the rest described the file, not these
pixels. Anything Pillow raises while decoding becomes ``CorruptImage`` (400), or
``ImageTooLarge`` for memory exhaustion. Every rejection carries ``status_code``, its
``reason`` (what is wrong with the file) and a ``remedy`` (what to send instead), which an
HTTP answer joins into its ``detail``.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageFile, TiffImagePlugin, UnidentifiedImageError

from app.core.decoding.colour import rgb_profile
from app.core.decoding.gif import gif_canvas
from app.core.decoding.heif import ftyp_brands, heif_format, meta_end, unreadable_item_strings, use_heif_decoder
from app.core.decoding.tiff import decode_in_bands

ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF", "HEIF", "AVIF")  # Pillow's plugin names
NOT_ISO_MEDIA = tuple(name for name in ALLOWED_FORMATS if name not in ("HEIF", "AVIF"))
ACCEPTED = "JPEG, PNG, WebP, GIF, BMP, TIFF, HEIC/HEIF or AVIF"
HEAD_BYTES = 4096  # enough for every signature, and for an ftyp box's list of brands
# The media types that name those formats, for callers that declare one (the upload flow's POST
# policy pins it). Only a label: the bytes are still sniffed and decoded by the allow-list above.
MEDIA_TYPES = ("image/jpeg", "image/png", "image/webp", "image/gif", "image/bmp", "image/tiff", "image/heic",
               "image/heif", "image/avif")
WHITE = (255, 255, 255)

# Our pixel limit is checked right after the header is read, where Pillow's own
# process-wide check runs; that one warns at 89 MP (a warning, not a refusal, and
# an error under pytest) and only refuses at 179 MP. DecompressionBombError is still
# mapped to 413 below should anything restore it.
Image.MAX_IMAGE_PIXELS = None

# Pillow's decoders raise far more than OSError on hostile input: struct.error
# (python-pillow/Pillow#6252), IndexError (#6430), SyntaxError, TypeError, KeyError,
# ValueError, EOFError, ZeroDivisionError; RecursionError (a RuntimeError) on looping
# TIFF IFDs. MemoryError (#4250) is handled separately as a size problem.
DECODE_ERRORS = (
    OSError, SyntaxError, TypeError, IndexError, KeyError, ValueError, struct.error,
    EOFError, ZeroDivisionError, OverflowError, RuntimeError, NotImplementedError, AttributeError,
)

# EXIF tag 0x0112 -> the transposition that displays the image upright (EXIF 2.32
# section 4.6.4; the same table as PIL.ImageOps.exif_transpose).
ORIENTATION_TAG = 0x0112
ORIENTATION_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
ORIENTATION_SWAPS = frozenset({5, 6, 7, 8})  # the transpositions that swap width and height

# File signatures, used only to word a rejection: (offset, magic, format).
# Sources: each Pillow plugin's _accept(), https://en.wikipedia.org/wiki/List_of_file_signatures
SIGNATURES = (
    (0, b"\xff\xd8\xff", "JPEG"), (0, b"\x89PNG\r\n\x1a\n", "PNG"), (0, b"GIF87a", "GIF"), (0, b"GIF89a", "GIF"),
    (8, b"WEBP", "WEBP"), (0, b"BM", "BMP"), (0, b"II*\x00", "TIFF"), (0, b"MM\x00*", "TIFF"),
    (0, b"II+\x00", "TIFF"), (0, b"MM\x00+", "TIFF"),
    (0, b"8BPS", "PSD"), (0, b"%PDF", "PDF"), (0, b"%!PS", "EPS"), (0, b"\xc5\xd0\xd3\xc6", "EPS"),
    (0, b"DDS ", "DDS"), (0, b"\x00\x00\x01\x00", "ICO"), (0, b"\x00\x00\x02\x00", "CUR"), (0, b"icns", "ICNS"),
    (0, b"\x00\x00\x00\x0cjP  \r\n\x87\n", "JPEG 2000"), (0, b"\xffO\xffQ", "JPEG 2000"),
    (0, b"\x00\x00\x00\x0cJXL \r\n\x87\n", "JPEG XL"), (0, b"\xff\x0a", "JPEG XL"),
    (4, b"\x11\xaf", "FLI"), (4, b"\x12\xaf", "FLC"), (0, b"qoif", "QOI"), (0, b"gimp xcf", "XCF"),
    (0, b"\x01\xda", "SGI"), (0, b"\x59\xa6\x6a\x95", "Sun raster"), (0, b"\xb1\x68\xde\x3a", "DCX"),
    (0, b"BLP1", "BLP"), (0, b"BLP2", "BLP"), (0, b"DanM", "MSP"), (0, b"LinS", "MSP"),
    (0, b"v/1\x01", "OpenEXR"), (0, b"#?RADIANCE", "Radiance HDR"), (0, b"#?RGBE", "Radiance HDR"),
    (0, b"SIMPLE  =", "FITS"), (0, b"#define", "XBM"), (0, b"/* XPM */", "XPM"), (0, b"\xd7\xcd\xc6\x9a", "WMF"),
    (0, b"Image type", "IM"), (0, b"\x1f\x8b", "gzip (SVGZ?)"),
) + tuple((0, b"P" + bytes([digit]) + space, "PNM") for digit in b"1234567" for space in (b" ", b"\n", b"\r", b"\t"))
PCX_MAGIC = 0x0A
TGA_FOOTER = b"TRUEVISION-XFILE.\x00"
MARKUP_STARTS = (b"<?xml", b"<svg", b"<!doctype svg")


@dataclass(frozen=True)
class DecodeLimits:
    """What one caller accepts: bytes of the encoded file, pixels of the decoded image."""

    max_bytes: int
    max_pixels: int



class ImageRejected(Exception):
    """An image this service will not process: ``reason`` says what is wrong with it, ``remedy`` (if any) what a
    client should send instead. ``status_code`` and ``detail`` (the two together) form the HTTP answer; the
    command line, which reads a local file, names the file with the reason alone (``app.cli.runner``)."""

    status_code = 400

    def __init__(self, reason: str, remedy: str = "") -> None:
        self.reason, self.remedy = reason, remedy
        self.detail = f"{reason}: {remedy}" if remedy else reason
        super().__init__(self.detail)


class CorruptImage(ImageRejected):
    status_code = 400


class ImageTooLarge(ImageRejected):
    status_code = 413


class UnsupportedFormat(ImageRejected):
    status_code = 415


@dataclass(frozen=True)
class Upload:
    """An untrusted file, in memory or in a (spooled) file: its size, its first and last bytes, and a stream.

    Decoding reads the stream, so a file the HTTP layer spooled to disk is never held whole in memory
    (an uncompressed 40 MP TIFF is 120 MB: ``docs/benchmarks.md``, "Memory per pixel").
    """

    size: int
    head: bytes  # signatures, ftyp brands, markup
    tail: bytes  # TGA's footer
    stream: BinaryIO

    @classmethod
    def of(cls, source: bytes | BinaryIO) -> Upload:
        if isinstance(source, bytes):
            return cls(len(source), source[:HEAD_BYTES], source[-len(TGA_FOOTER):], io.BytesIO(source))
        size = source.seek(0, io.SEEK_END)
        source.seek(max(size - len(TGA_FOOTER), 0))
        tail = source.read()
        source.seek(0)
        head = source.read(HEAD_BYTES)
        source.seek(0)
        return cls(size, head, tail, source)

    @property
    def sniffable(self) -> bytes:
        """The bytes ``sniff_format`` reads: the head and, past it, the tail."""
        return self.head if self.size <= len(self.head) else self.head + self.tail


@dataclass(frozen=True)
class Header:
    """What a file declares before any pixel is decoded: its format (Pillow's plugin), size and, for TIFF,
    its compression (Pillow's name: ``raw``, ``tiff_lzw``, ...)."""

    format: str
    width: int
    height: int
    compression: str | None = None

    @property
    def pixels(self) -> int:
        return self.width * self.height


def read_header(source: bytes | BinaryIO, limits: DecodeLimits) -> Header:
    """The checks 1-3 of ``decode_image`` and what they read, decoding no pixel; the stream is left to decode."""
    image = _open_checked(Upload.of(source), limits)
    compression = image.info.get("compression") if image.format == "TIFF" else None
    return Header(str(image.format), *image.size, compression=compression)


def decode_image(source: bytes | BinaryIO, limits: DecodeLimits) -> Image.Image:
    """Untrusted bytes or file -> upright RGB image, or an ``ImageRejected`` subclass (see the module docstring)."""
    return _decoded(_open_checked(Upload.of(source), limits))


@dataclass(frozen=True)
class Decoded:
    """The model's ``view`` of an image, its upright full ``size``, the ``orientation`` it was turned by, and the
    full-size upright RGB ``image`` when decoding the view gave it (None for a JPEG decoded at a reduced scale:
    ``decode_full`` decodes it again, at full scale, when an output draws into it)."""

    view: Image.Image
    size: tuple[int, int]
    image: Image.Image | None
    orientation: int = 1


def decode_for_model(source: bytes | BinaryIO, limits: DecodeLimits, view_size: tuple[int, int]) -> Decoded:
    """Untrusted bytes or file -> the model's view (``draft_for_model``), or an ``ImageRejected`` subclass.

    A JPEG whose DCT scaling reaches ``view_size`` is decoded at that scale (a 1080p photo in ~1/3 of the full
    decode's time, and the resize to the model's input ~15x cheaper); any other image is decoded in full and is
    its own view.
    """
    image = _open_checked(Upload.of(source), limits)
    size = image.size
    if not draft_for_model(image, view_size):
        decoded = _decoded(image)
        return Decoded(decoded, decoded.size, decoded)
    orientation = exif_orientation(image)  # a JPEG's EXIF is read with its header: once, for both decodes
    return Decoded(_decoded(image, orientation), upright_size(size, orientation), None, orientation)


def decode_full(source: bytes | BinaryIO, limits: DecodeLimits, decoded: Decoded) -> Image.Image:
    """``source`` decoded again at full scale for ``decoded``, a reduced view (``decoded.image`` is None), and
    turned as its view was (never a second EXIF read: a half-read EXIF can read differently the second time)."""
    full = _decoded(_open_checked(Upload.of(source), limits), decoded.orientation)  # Upload.of rewinds a file
    if full.size != decoded.size:
        raise CorruptImage(f"the image decoded at {full.size}, its header says {decoded.size}", "send a valid image")
    return full


def draft_for_model(image: Image.Image, view_size: tuple[int, int]) -> bool:
    """Asks a JPEG not yet decoded to decode at the smallest DCT scale (1/2, 1/4 or 1/8: ``Image.draft``) that
    still covers ``view_size`` in either orientation; True if it will. The train/serve contract's view of a
    JPEG: the service and offline scoring (``model.scoring``) both call this, so their masks stay equal; on the
    80 held-out photos it moved pooled IoU by +0.0002 (model/weights/MODEL_CARD.md)."""
    if image.format != "JPEG":
        return False
    side = max(view_size)
    before = image.size
    with _rejecting_decode_errors():
        image.draft(image.mode, (side, side))
    return image.size != before


def upright_size(size: tuple[int, int], orientation: int) -> tuple[int, int]:
    """The size ``upright`` gives an image of ``size``: EXIF orientations 5-8 swap width and height."""
    return (size[1], size[0]) if orientation in ORIENTATION_SWAPS else size


def _decoded(image: ImageFile.ImageFile, orientation: int | None = None) -> Image.Image:
    """An opened image decoded, converted to RGB and made upright (``orientation``, or its EXIF's read after
    decoding: a PNG may store it after the pixels), its RGB profile its only ``info``."""
    with _rejecting_decode_errors():
        pixels = _load(image)
        orientation = exif_orientation(image) if orientation is None else orientation
        profile = rgb_profile(image)
        decoded = upright(to_rgb(pixels), orientation)
    decoded.info = {"icc_profile": profile} if profile else {}
    return decoded


def _load(image: ImageFile.ImageFile) -> Image.Image:
    """``image``'s pixels: a compressed TIFF's a band of strips at a time where its layout allows
    (``app.core.decoding.tiff``: its file is never held whole), any other image's by Pillow's ``load``."""
    if isinstance(image, TiffImagePlugin.TiffImageFile):
        banded = decode_in_bands(image)
        if banded is not None:
            return banded
    image.load()
    return image


def _open_checked(upload: Upload, limits: DecodeLimits) -> ImageFile.ImageFile:
    """The image opened (its header read, no pixel decoded) once its bytes, format and pixel count pass."""
    _check_byte_size(upload.size, limits)
    canvas = _gif_canvas(upload)
    if canvas is not None:  # Pillow would allocate it while opening the file
        _check_pixel_count(canvas, limits)
    image = _open_allowed(upload)
    _check_pixel_count(image.size, limits)
    return image


def _check_byte_size(size: int, limits: DecodeLimits) -> None:
    if not size:
        raise CorruptImage("the file is empty", f"send a {ACCEPTED} image")
    if size > limits.max_bytes:
        raise ImageTooLarge(
            f"the file is {size} bytes, over the {limits.max_bytes}-byte limit",
            "send a smaller or more compressed image",
        )


def _open_allowed(upload: Upload) -> ImageFile.ImageFile:
    """Reads the header with the allowed plugins only; says why when none accepts it."""
    formats = _plugins_for(upload.head)
    if formats == ("HEIF",):
        if unreadable_item_strings(_through_meta(upload)):
            raise CorruptImage("the HEIF file's item information is corrupt", "send a valid image")
        use_heif_decoder()
    with _rejecting_decode_errors():
        try:
            if formats:
                return Image.open(upload.stream, formats=formats)  # type: ignore[return-value]
        except UnidentifiedImageError:
            pass
    found = sniff_format(upload.sniffable)
    if found is None:
        raise CorruptImage("the file is not a recognised image", f"send a {ACCEPTED} image")
    if found in ALLOWED_FORMATS:
        raise CorruptImage(f"the file looks like {found} but its header is corrupt", "send a valid image")
    raise UnsupportedFormat(f"{found} images are not accepted", f"send a {ACCEPTED} image")


def _gif_canvas(upload: Upload) -> tuple[int, int] | None:
    """A GIF's canvas (``app.core.decoding.gif``), None for other files. Its first frame may follow any amount of
    extension data, so a GIF is read whole here (within the byte limit, checked before), the stream rewound."""
    if gif_canvas(upload.head) is None:
        return None
    canvas = gif_canvas(upload.stream.read())
    upload.stream.seek(0)
    return canvas


def _through_meta(upload: Upload) -> bytes:
    """A HEIF file's bytes up to the end of its ``meta`` box (``app.core.decoding.heif.meta_end``), the stream
    rewound."""
    end = meta_end(upload.head)
    data = upload.stream.read(upload.size if end is None else min(end, upload.size))
    upload.stream.seek(0)
    return data


def _plugins_for(data: bytes) -> tuple[str, ...]:
    """The plugins that may parse ``data``: an ISO media file's one by its brands (none if not HEIF/AVIF), any other
    file's all but HEIF and AVIF (which only ever come in ISO media files, and HEIF's may not be registered yet)."""
    if not ftyp_brands(data):
        return NOT_ISO_MEDIA
    found = heif_format(data)
    return (found,) if found else ()


def sniff_format(data: bytes) -> str | None:
    """The format a file's signature names, or None; only to word a rejection, never to decode."""
    if data.endswith(TGA_FOOTER):  # first: a TGA's header can look like an ICO's or CUR's
        return "TGA"
    brands = ftyp_brands(data)
    if brands:  # ISO media: HEIF, AVIF, or a video or raw format (MP4 "isom", Canon CR3 "crx ", ...)
        return heif_format(data) or f"ISO media ({brands[0].strip()!r} brand)"
    for offset, magic, name in SIGNATURES:
        if data[offset : offset + len(magic)] == magic:
            return name
    if data[:1024].lstrip(b"\xef\xbb\xbf \t\r\n")[:16].lower().startswith(MARKUP_STARTS):
        return "SVG/XML"
    if len(data) > 2 and data[0] == PCX_MAGIC and data[1] <= 5 and data[2] == 1:
        return "PCX"
    return None


def _check_pixel_count(size: tuple[int, int], limits: DecodeLimits) -> None:
    width, height = size
    if width * height > limits.max_pixels:
        raise ImageTooLarge(
            f"the image is {width}x{height} = {width * height} pixels, over the {limits.max_pixels}-pixel limit",
            "send a smaller image",
        )


@contextmanager
def _rejecting_decode_errors() -> Iterator[None]:
    """Pillow's many exception types -> CorruptImage / ImageTooLarge."""
    try:
        yield
    except ImageRejected:
        raise
    except Image.DecompressionBombError as error:
        raise ImageTooLarge(f"the image is too large to decode: {error}") from error
    except MemoryError as error:
        needs = "the image needs more memory to decode than is available"
        raise ImageTooLarge(needs, "send a smaller image") from error
    except DECODE_ERRORS as error:
        raise CorruptImage(f"the image could not be decoded ({error})", "send a complete, valid image") from error


def exif_orientation(image: Image.Image) -> int:
    """EXIF orientation 1-8 (TIFF's own tag included); 1 when absent, invalid or unreadable."""
    try:
        value = image.getexif().get(ORIENTATION_TAG, 1)
    except DECODE_ERRORS:  # a broken EXIF block should not cost the user their picture
        return 1
    return value if isinstance(value, int) and value in ORIENTATION_TRANSPOSE else 1


def upright(image: Image.Image, orientation: int) -> Image.Image:
    """``image`` transposed as EXIF ``orientation`` says (no copy for orientation 1)."""
    method = ORIENTATION_TRANSPOSE.get(orientation)
    return image if method is None else image.transpose(method)


# --- colour modes --------------------------------------------------------------------------

ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})
HIGH_DEPTH_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I", "F"})
CONVERTIBLE_MODES = frozenset({"1", "L", "P", "RGB", "RGBX", "CMYK", "YCbCr"}) | ALPHA_MODES | HIGH_DEPTH_MODES


def to_rgb(image: Image.Image) -> Image.Image:
    """Any supported mode -> RGB (the module docstring says how); the image itself when already RGB."""
    if image.mode not in CONVERTIBLE_MODES:
        raise UnsupportedFormat(f"colour mode {image.mode} is not supported", "send an RGB or greyscale image")
    if image.mode in HIGH_DEPTH_MODES:
        image = to_8bit(image)
    if image.mode in ALPHA_MODES or "transparency" in image.info:
        return flatten_alpha(image)
    return image if image.mode == "RGB" else image.convert("RGB")


def flatten_alpha(image: Image.Image) -> Image.Image:
    """Composites any transparency over white."""
    rgba = image.convert("RGBA")
    flat = Image.new("RGB", rgba.size, WHITE)
    flat.paste(rgba, mask=rgba)
    return flat


def to_8bit(image: Image.Image) -> Image.Image:
    """16/32-bit greyscale or float -> "L" ("LA" if a grey level is marked transparent)."""
    values = np.asarray(image)
    grey = Image.fromarray(scale_to_uint8(values, *value_range(values, image.mode)))
    transparent = image.info.get("transparency")
    if not isinstance(transparent, int | float) or isinstance(transparent, bool):
        return grey
    alpha = np.where(values == transparent, 0, 255).astype(np.uint8)
    return Image.merge("LA", (grey, Image.fromarray(alpha)))


def value_range(values: np.ndarray, mode: str) -> tuple[float, float]:
    """The range that maps to 0..255: the type's nominal one where the data fits it, else min..max."""
    if mode.startswith("I;16"):
        return 0.0, 65535.0
    finite = values[np.isfinite(values)] if mode == "F" else values
    if finite.size == 0:
        return 0.0, 1.0
    low, high = float(finite.min()), float(finite.max())
    nominal = ((0.0, 1.0),) if mode == "F" else ()
    for candidate in (*nominal, (0.0, 255.0), (0.0, 65535.0)):
        if candidate[0] <= low and high <= candidate[1]:
            return candidate
    return low, high


def scale_to_uint8(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """Linear map of low..high onto 0..255, rounded; NaN becomes 0, values outside are clipped."""
    span = high - low
    # float32 holds values up to 3.4e38 but not every difference of two: a wider span is computed in float64.
    # Infinities take the range's ends first (clipping would give them those anyway), so nothing overflows.
    dtype = np.float64 if span > float(np.finfo(np.float32).max) else np.float32
    scale = dtype(255.0 / span) if span > 0 else dtype(0.0)
    finite = np.nan_to_num(values.astype(dtype), nan=low, posinf=high, neginf=low)
    return np.rint(np.clip((finite - dtype(low)) * scale, 0.0, 255.0)).astype(np.uint8)
