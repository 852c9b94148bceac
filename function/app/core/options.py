"""What a caller may ask of the pipeline, validated in one place: ``RenderOptions`` and its value types.

Every way in (query string, upload metadata, command line, settings) builds its
options through these types, so a range or a colour syntax is defined once:
``Threshold`` is also the model contract's rule for a model's own threshold, and
a colour is parsed when it is read (a setting at start-up, an option per request),
never again downstream. Invalid values raise pydantic's ``ValidationError``, which
the HTTP layer answers with 422 and the command line with exit status 2.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, model_validator

Color = tuple[int, int, int]
Output = Literal["overlay", "mask", "cutout", "json"]
ImageFormat = Literal["png", "jpeg", "webp"]

# "#ff3b30", "ff3b30" (a raw "#" in a URL starts the fragment, so clients often drop it) or "255,59,48".
# ASCII only: Python's \d and \s would also take "٣,٣,٣" and no-break spaces, which the API's
# schema (COLOR_PATTERN, the same syntax for OpenAPI clients) cannot say; found by make api-fuzz.
ASCII_SPACE = " \t\n\r\f\v"
SPACE = f"[{ASCII_SPACE}]"
CHANNEL = "(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|0?[1-9][0-9]|0{0,2}[0-9])"  # 0-255, up to 3 digits
TRIPLE = f"{CHANNEL}{SPACE}*,{SPACE}*{CHANNEL}{SPACE}*,{SPACE}*{CHANNEL}"
HEX_COLOR = re.compile(r"#?([0-9a-fA-F]{2})([0-9a-fA-F]{2})([0-9a-fA-F]{2})")
TRIPLE_COLOR = re.compile(TRIPLE)
# What parse_color accepts, whole, as one regular expression (JSON Schema's and pydantic's dialects alike).
COLOR_PATTERN = f"^{SPACE}*(#?[0-9a-fA-F]{{6}}|{TRIPLE}){SPACE}*$"
DEFAULT_COLOR: Color = (255, 59, 48)  # "#ff3b30"
DEFAULT_ALPHA = 0.5
WITH_ALPHA: frozenset[ImageFormat] = frozenset({"png", "webp"})  # formats that can carry a cutout's transparency


def parse_color(value: str) -> Color:
    """``"#rrggbb"``, ``"rrggbb"`` or ``"r,g,b"`` (0-255 each) -> (r, g, b); ValueError otherwise."""
    text = value.strip(ASCII_SPACE)
    if match := HEX_COLOR.fullmatch(text):
        r, g, b = (int(group, 16) for group in match.groups())
        return (r, g, b)
    if match := TRIPLE_COLOR.fullmatch(text):
        r, g, b = (int(group) for group in match.groups())
        return (r, g, b)
    raise ValueError(f"colour {value!r} is not '#rrggbb', 'rrggbb' or 'r,g,b' with channels 0-255")


def format_color(color: Color) -> str:
    """(r, g, b) -> ``"#rrggbb"``, the form settings and documentation use."""
    return "#{:02x}{:02x}{:02x}".format(*color)


def _color_from_any(value: Any) -> Any:
    """A string is parsed; a sequence of three channels is checked; anything else fails validation."""
    if isinstance(value, str):
        return parse_color(value)
    if isinstance(value, Sequence) and len(value) == 3 and all(isinstance(c, int) and 0 <= c <= 255 for c in value):
        return tuple(value)
    raise ValueError(f"colour {value!r} is not '#rrggbb', 'rrggbb', 'r,g,b' or three channels of 0-255")


def _number_not_bool(value: Any) -> Any:
    """pydantic reads JSON's true/false as 1/0 for a number; the API's schema says "number" (make api-fuzz)."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a number")
    return value


ColorValue = Annotated[Color, BeforeValidator(_color_from_any), PlainSerializer(format_color, return_type=str)]
# The validator after the range: before it, pydantic writes the range into the JSON schema as "ge"/"gt" keys
# that no JSON Schema reader knows, instead of "minimum"/"exclusiveMinimum".
Threshold = Annotated[float, Field(gt=0.0, lt=1.0), BeforeValidator(_number_not_bool)]  # a probability in (0, 1)
Alpha = Annotated[float, Field(ge=0.0, le=1.0), BeforeValidator(_number_not_bool)]
Quality = Annotated[int, Field(ge=1, le=100), BeforeValidator(_number_not_bool)]


class RenderOptions(BaseModel):
    """What to make and how to encode it; threshold None = the model's own, quality None = the format's default
    (``app.core.output.encoding.QUALITY_STEPS``: lowered in steps where a size limit asks for it).

    ``output``: ``overlay`` (the colour blended over the foreground), ``mask`` (0/255),
    ``cutout`` (the image where the mask is set, transparent elsewhere) or ``json``
    (numbers and the mask as COCO RLE; ``format`` does not apply).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    output: Output = "overlay"
    format: ImageFormat = "png"
    quality: Quality | None = None
    color: ColorValue = DEFAULT_COLOR
    alpha: Alpha = DEFAULT_ALPHA
    threshold: Threshold | None = None

    @model_validator(mode="after")
    def _format_carries_the_output(self) -> RenderOptions:
        if self.output == "cutout" and self.format not in WITH_ALPHA:
            raise ValueError(f"{self.format.upper()} has no alpha channel, so it cannot carry a cutout: "
                             "ask for format=png or format=webp")
        return self


    def with_overrides(self, overrides: Mapping[str, Any]) -> RenderOptions:
        """A validated copy with each option given (not None) replaced; ``ValidationError`` if one is invalid."""
        given = {name: value for name, value in overrides.items() if value is not None}
        return type(self).model_validate({**dict(self), **given})
