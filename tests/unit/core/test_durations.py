"""The one duration parser: what `clock advance` and a scenario's `advance:` take and refuse."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from natlab.core.durations import MAX_ADVANCE, UNITS, check_advance, parse_duration


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (130, 130.0),
        ("130", 130.0),
        ("31s", 31.0),
        (" 2m ", 120.0),
        ("1h", 3600.0),
        ("80ms", 0.08),
        (0.5, 0.5),
        (".5s", 0.5),
        ("720h", MAX_ADVANCE),
        (0, 0.0),
    ],
)
def test_durations(value: object, seconds: float) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize(
    "value",
    ["2 minutes", "-3", -3, "m", "", True, None, "inf", "nan", math.inf, math.nan, "721h", "1d"],
)
def test_not_durations(value: object) -> None:
    with pytest.raises(ValueError, match="is not a duration from 0 to 30 days"):
        parse_duration(value)


@given(st.floats(allow_nan=True, allow_infinity=True), st.sampled_from(["", *UNITS]))
def test_every_duration_is_finite_and_in_range(number: float, unit: str) -> None:
    """Whatever is written, the answer is a clock move the daemons accept, or a ValueError."""
    for value in (number, f"{number}{unit}", f"{number:f}{unit}"):
        try:
            seconds = parse_duration(value)
        except ValueError:
            continue
        assert math.isfinite(seconds) and 0 <= seconds <= MAX_ADVANCE
        assert check_advance(seconds) == seconds


@given(st.integers(min_value=0, max_value=10**6), st.sampled_from(sorted(UNITS)))
def test_units_multiply(number: int, unit: str) -> None:
    seconds = number * UNITS[unit]
    if seconds <= MAX_ADVANCE:
        assert parse_duration(f"{number}{unit}") == seconds
    else:
        with pytest.raises(ValueError):
            parse_duration(f"{number}{unit}")
