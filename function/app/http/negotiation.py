"""Which image format a request gets when it does not say ``format=``: its ``Accept`` header decides.

Only a format the header names explicitly (``image/webp``, ``image/jpeg``,
``image/png``) is chosen, by the highest q-value (RFC 9110 section 12.5.1), the
first listed among equals; ``q=0`` rules a format out. Wildcards (``*/*``,
``image/*``) and no header at all give PNG: the seed's contract, unchanged for its
client. A format that cannot carry the output (JPEG for a cutout) is never chosen.
"""

from __future__ import annotations

from app.core.options import WITH_ALPHA, ImageFormat, Output

MEDIA_RANGES: dict[str, ImageFormat] = {"image/png": "png", "image/jpeg": "jpeg", "image/webp": "webp"}
DEFAULT_FORMAT: ImageFormat = "png"


def negotiate_format(accept: str | None, output: Output) -> ImageFormat:
    """The format for ``output`` that ``accept`` prefers; PNG unless it names another explicitly."""
    named = [(q, -position, image_format) for position, (image_format, q) in enumerate(named_formats(accept or ""))
             if q > 0 and (output != "cutout" or image_format in WITH_ALPHA)]
    return max(named)[2] if named else DEFAULT_FORMAT


def named_formats(accept: str) -> list[tuple[ImageFormat, float]]:
    """(format, q) for each media range of ours the header names, in its order; malformed q-values count as 0."""
    found = []
    for entry in accept.split(","):
        media_range, *parameters = (part.strip() for part in entry.split(";"))
        image_format = MEDIA_RANGES.get(media_range.lower())
        if image_format is not None:
            found.append((image_format, quality_value(parameters)))
    return found


def quality_value(parameters: list[str]) -> float:
    for parameter in parameters:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "q":
            try:
                return min(max(float(value), 0.0), 1.0)
            except ValueError:
                return 0.0
    return 1.0
