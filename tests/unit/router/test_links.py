"""The router daemon's held frames (router/links.py): in time order, bounded, and an alarm."""

from __future__ import annotations

import select
import time

import pytest

from natlab.core.impair import parse_settings
from natlab.router.links import Alarm, Delayed, Link, timed


def test_frames_come_out_in_time_order_and_only_when_due() -> None:
    delayed = Delayed()
    out: list[bytes] = []
    for at, frame in ((5.0, b"c"), (1.0, b"a"), (3.0, b"b"), (3.0, b"b2")):
        assert delayed.add(at, out.append, frame)
    delayed.release(3.0, rang=False, failed=refused)
    assert out == [b"a", b"b", b"b2"]  # equal times: in the order they were added
    assert delayed.bytes == 1
    assert delayed.soonest() == 5.0
    delayed.release(10.0, rang=False, failed=refused)
    assert out[3:] == [b"c"]
    assert delayed.soonest() is None
    assert delayed.bytes == 0
    delayed.close()


def refused(error: OSError, frame: bytes) -> None:
    raise AssertionError(f"{frame!r} refused: {error}")


def test_a_frame_its_way_out_refuses_is_told_and_the_others_still_go() -> None:
    delayed = Delayed()
    out: list[bytes] = []
    failed: list[tuple[str, bytes]] = []

    def full(frame: bytes) -> None:
        raise OSError(105, "No buffer space available")

    delayed.add(1.0, full, b"a")
    delayed.add(2.0, out.append, b"b")
    delayed.release(
        3.0, rang=False, failed=lambda error, frame: failed.append((error.strerror, frame))
    )
    assert failed == [("No buffer space available", b"a")]
    assert out == [b"b"]
    assert delayed.bytes == 0
    delayed.close()


def test_the_bytes_held_are_bounded() -> None:
    delayed = Delayed(limit=100)
    assert delayed.add(1.0, print, b"x" * 60)
    assert not delayed.add(1.0, print, b"x" * 41)  # refused: the caller drops it (queue)
    assert delayed.add(1.0, print, b"x" * 40)
    delayed.close()


def test_the_alarm_goes_off_at_its_time_and_stays_quiet_once_acknowledged() -> None:
    alarm = Alarm()
    alarm.set(time.monotonic() + 3600)
    assert select.select([alarm], [], [], 0)[0] == []
    alarm.set(time.monotonic() - 1)  # passed already: at once
    assert select.select([alarm], [], [], 1.0)[0] == [alarm]
    alarm.acknowledge()
    assert alarm.at is None
    assert select.select([alarm], [], [], 0)[0] == []
    alarm.close()


def test_a_link_shapes_only_the_directions_it_impairs() -> None:
    link = Link("r", "internet", parse_settings(["out.loss=1%", "seed=4"]))
    assert link.shapers["in"] is None
    assert link.shapers["out"] is not None
    assert link.settings == {"in": "", "out": "loss=1%"}  # as its drop events tell them
    state = link.state()
    assert (state.port, state.described) == ("internet", "out.loss=1% seed=4")
    assert Link("r", "lan", parse_settings(["none"])).state().described == "none"


def test_only_delays_and_rates_need_timely_delivery() -> None:
    assert timed(parse_settings(["in.delay=5ms"]))
    assert timed(parse_settings(["rate=1mbit"]))
    assert not timed(parse_settings(["loss=5%", "duplicate=1%"]))


def test_link_show_prints_one_line_an_interface() -> None:
    from natlab.render import link_line

    state = Link("r", "internet", parse_settings(["loss=2%", "delay=80ms"])).state()
    state.counters.update({"out_lost": 3, "in_lost": 1200})
    assert link_line("r", state.to_json()) == (
        "router r internet: loss=2% delay=80ms seed=0  [dim](in_lost 1,200, out_lost 3)[/]"
    )


def test_the_lateness_of_held_frames_is_kept() -> None:
    delayed = Delayed()
    assert delayed.late() == {}
    out: list[bytes] = []
    for index in range(100):
        delayed.add(1.0 + index, out.append, b"x")
    delayed.release(
        1.0 + 99 + 0.002, rang=False, failed=refused
    )  # the last 2 ms late, the first 101 s
    assert len(out) == 100
    late = delayed.late()
    assert late["frames"] == 100
    assert late["median_ms"] == pytest.approx(50_002, abs=1)
    assert late["p99_ms"] == pytest.approx(99_002, abs=1)
    delayed.close()
