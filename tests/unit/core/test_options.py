"""app.core.options: colours parsed once, ranges defined once, request options over the server's defaults."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from app.core.options import DEFAULT_COLOR, RenderOptions, format_color, parse_color
from app.core.settings import Settings


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("#ff3b30", (255, 59, 48)),
        ("ff3b30", (255, 59, 48)),
        ("#FF3B30", (255, 59, 48)),
        ("  #000000 ", (0, 0, 0)),
        ("255,59,48", (255, 59, 48)),
        ("0, 0, 255", (0, 0, 255)),
        ("255,255,255", (255, 255, 255)),
        ("\t007 ,\n0,000\r", (7, 0, 0)),
    ],
)
def test_parse_color_accepts(text: str, expected: tuple[int, int, int]) -> None:
    assert parse_color(text) == expected


@pytest.mark.parametrize(
    "text",
    ["", "red", "#fff", "#ff3b3", "#ff3b300", "#gg0000", "256,0,0", "1,2", "1,2,3,4", "-1,0,0", "1.5,2,3", "#ff 3b30",
     "\u0663,\u0663,\u0663", "\xa0ff3b30", "1,2,3\u2003"],  # digits and spaces of other scripts (make api-fuzz)
)
def test_parse_color_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="is not '#rrggbb', 'rrggbb' or 'r,g,b'"):
        parse_color(text)


@pytest.mark.parametrize("color", [(0, 0, 0), (255, 59, 48), (1, 2, 255)])
def test_format_color_round_trips(color: tuple[int, int, int]) -> None:
    assert parse_color(format_color(color)) == color


def test_defaults() -> None:
    assert RenderOptions() == RenderOptions(output="overlay", color=DEFAULT_COLOR, alpha=0.5, threshold=None)


def test_from_settings_takes_the_overlay_settings_parsed_once() -> None:
    options = Settings(OVERLAY_COLOR="0,200,255", OVERLAY_ALPHA=0.3).render_defaults()
    assert (options.color, options.alpha, options.threshold, options.output) == ((0, 200, 255), 0.3, None, "overlay")


# id: (overrides, the fields they change)
OVERRIDES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "none-given": ({"alpha": None, "color": None, "threshold": None}, {}),
    "hex-colour": ({"color": "00ff00"}, {"color": (0, 255, 0)}),
    "hash-colour": ({"color": "#0000ff"}, {"color": (0, 0, 255)}),
    "triple-colour": ({"color": "1,2,3"}, {"color": (1, 2, 3)}),
    "alpha-bounds": ({"alpha": 0.0}, {"alpha": 0.0}),
    "alpha-one": ({"alpha": 1}, {"alpha": 1.0}),
    "threshold": ({"threshold": 0.25}, {"threshold": 0.25}),
    "mask": ({"output": "mask"}, {"output": "mask"}),
}


@pytest.mark.parametrize(("overrides", "changed"), OVERRIDES.values(), ids=OVERRIDES.keys())
def test_with_overrides_replaces_only_what_is_given(overrides: dict[str, Any], changed: dict[str, Any]) -> None:
    base = RenderOptions(color=(9, 9, 9), alpha=0.4, threshold=0.6)
    assert base.with_overrides(overrides) == RenderOptions(**{**dict(base), **changed})


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"threshold": 0.0}, "threshold"), ({"threshold": 1.0}, "threshold"), ({"threshold": -0.5}, "threshold"),
        ({"alpha": -0.01}, "alpha"), ({"alpha": 1.01}, "alpha"), ({"color": "red"}, "color"),
        ({"color": "256,0,0"}, "color"), ({"color": [1, 2]}, "color"), ({"output": "cutout-ish"}, "output"),
        ({"color": [256, 0, 0]}, "color"), ({"color": [0, -1, 0]}, "color"), ({"color": [0, 0, 2.5]}, "color"),
        ({"unknown": 1}, "unknown"),
    ],
)
def test_invalid_options_name_the_field(overrides: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as raised:
        RenderOptions().with_overrides(overrides)
    assert [error["loc"][0] for error in raised.value.errors()] == [field]


def test_options_are_immutable() -> None:
    with pytest.raises(ValidationError):
        RenderOptions().alpha = 0.9  # type: ignore[misc]


def test_a_colour_that_is_no_colour_says_what_a_colour_is() -> None:
    with pytest.raises(ValidationError) as raised:
        RenderOptions().with_overrides({"color": [1, 2]})
    [error] = raised.value.errors()
    assert error["msg"] == "Value error, colour [1, 2] is not '#rrggbb', 'rrggbb', 'r,g,b' or three channels of 0-255"


@pytest.mark.parametrize(("field", "value"), [("threshold", True), ("alpha", False), ("quality", True)])
def test_a_boolean_is_not_a_number_and_the_message_says_so(field: str, value: bool) -> None:
    # pydantic alone would read true as 1 and false as 0; the API's schema says "number" (make api-fuzz)
    with pytest.raises(ValidationError) as raised:
        RenderOptions().with_overrides({field: value})
    [error] = raised.value.errors()
    assert (error["loc"], error["msg"]) == ((field,), f"Value error, {value!r} is not a number")
