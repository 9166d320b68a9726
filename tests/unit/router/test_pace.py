"""A real-time router wakes for frames at most every WAKE_GRAIN (router/impaired.py's pace)."""

from __future__ import annotations

import pytest

from natlab.router import impaired
from natlab.router.impaired import WAKE_GRAIN, ImpairedLinks
from natlab.router.links import Delayed


class Paced(ImpairedLinks):
    def __init__(self) -> None:
        self.delayed = Delayed()


@pytest.fixture
def router(monkeypatch):
    """A router whose clock stands at 100.0 and which keeps, not sleeps, what it is asked."""
    paced = Paced()
    paced.slept = []
    monkeypatch.setattr(impaired.time, "monotonic", lambda: 100.0)
    monkeypatch.setattr(impaired.time, "sleep", paced.slept.append)
    yield paced
    paced.delayed.close()


def test_it_sleeps_out_the_rest_of_the_grain_after_waking_for_frames(router) -> None:
    router.pace(woke=100.0 - WAKE_GRAIN / 4)
    assert router.slept == [pytest.approx(WAKE_GRAIN * 3 / 4)]


def test_a_frame_due_sooner_cuts_the_sleep_short(router) -> None:
    router.delayed.add(100.0 + WAKE_GRAIN / 10, print, b"x")
    router.pace(woke=100.0)
    assert router.slept == [pytest.approx(WAKE_GRAIN / 10)]


def test_a_round_longer_than_the_grain_goes_straight_on(router) -> None:
    router.pace(woke=100.0 - 2 * WAKE_GRAIN)
    router.delayed.add(99.0, print, b"x")  # overdue: released at once, never slept for
    router.pace(woke=100.0)
    assert router.slept == []
