"""Durations as people write them (130, 130s, 2m, 1h, 80ms), and how far a lab clock may move.

One parser for `natlab clock advance` and a scenario's `advance:` step, on
the same bounds as the router daemon's `advance` request, so all three take
and refuse the same things: a finite number of seconds from 0 to 30 days.
A link impairment's delay and jitter (core/impair.py) are read by it too.
"""

from __future__ import annotations

import math
import re

MAX_ADVANCE = 30 * 86400.0  # a month covers every timeout a NAT has (TCP: about two hours)
UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
FORMS = "write seconds (130) or 130s, 2m, 1h, 80ms, up to 30 days"
_TEXT = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|[smh]?)\s*$")


def check_advance(seconds: object) -> float:
    """How far to move a clock: a finite number of seconds from 0 to 30 days, else ValueError."""
    if (
        isinstance(seconds, bool)
        or not isinstance(seconds, int | float)
        or not math.isfinite(seconds)
        or not 0 <= seconds <= MAX_ADVANCE
    ):
        raise ValueError(
            f"the clock advances by 0 to {MAX_ADVANCE:.0f} seconds (30 days), not {seconds!r}"
        )
    return float(seconds)


def parse_duration(value: object) -> float:
    """130, 130.5, '130', '130s', '2m', '1h', '80ms' -> seconds within check_advance's bounds.

    A number is seconds; text is a number and an optional unit (ms, s, m, h).
    Anything else, or out of bounds, is a ValueError saying what to write.
    """
    seconds: object = value
    if isinstance(value, str):
        found = _TEXT.match(value)
        seconds = float(found[1]) * UNITS[found[2] or "s"] if found else None
    try:
        return check_advance(seconds)
    except ValueError:
        raise ValueError(f"'{value}' is not a duration from 0 to 30 days") from None
