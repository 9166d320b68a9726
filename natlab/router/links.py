"""Impaired links in the router daemon: each interface's shapers, and frames held for later.

The decisions are core/impair.py's; this is what the daemon keeps around
them: a `Link` per impaired interface (a `Shaper` per impaired direction
and what they did), and `Delayed`, the frames waiting for their time
(core/held.py: a FIFO line per way out) that the daemon's loop serves
between packets: no thread and no timer per frame, and a bound on the bytes
held, so a long delay at a high rate costs queue drops, never the daemon's
memory.

The soonest frame is due when an `Alarm` goes off: a timerfd in the
daemon's selector, set to the nanosecond. epoll's own timeout counts whole
milliseconds, which would deliver a frame up to a millisecond late; waking
early and polling would cost the CPU that iperf3 and the phones need.
Python 3.11's os has no timerfd_create, so it is called through ctypes.

While any of its links delays or rate-limits frames, the daemon runs at the
lowest real-time priority (`timely`): netem does this work in the kernel,
ahead of every process, and on a busy machine an ordinary process wakes
milliseconds late (measured here: p90 3.6 ms late at a load of 13 on two
cores, 0.12 ms with SCHED_FIFO 1). An unimpaired router stays an ordinary
process; where real-time scheduling is not allowed, it says so in its log
and carries on.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
from collections import Counter, deque
from collections.abc import Callable

from natlab.core.held import Held
from natlab.core.impair import DIRECTIONS, LinkImpairment, Shaper
from natlab.records import LinkState

DELAYED_MAX_BYTES = 64 << 20  # frames held for their delay, on all links together
# The alarm is set no sooner than this after the last one went off: a busy loop
# delivers what is due on its own rounds (RouterDaemon.run), and a frame every few
# microseconds would otherwise cost an alarm each.
ALARM_GRAIN = 0.0001
LATENESS_KEPT = 4096  # the last frames' lateness, for `natlab link show`
CLOCK_MONOTONIC = 1  # time.monotonic()'s clock on Linux
TFD_NONBLOCK, TFD_CLOEXEC, TFD_TIMER_ABSTIME = 0o4000, 0o2000000, 1

Deliver = Callable[[bytes], object]


class _Timespec(ctypes.Structure):
    _fields_ = [("seconds", ctypes.c_long), ("nanoseconds", ctypes.c_long)]


class _TimerSpec(ctypes.Structure):
    _fields_ = [("interval", _Timespec), ("value", _Timespec)]


class Alarm:
    """A timerfd: readable once the monotonic clock reaches the time it was set to."""

    def __init__(self) -> None:
        self._libc = ctypes.CDLL(None, use_errno=True)
        self.fd = self._libc.timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC)
        if self.fd < 0:
            error = ctypes.get_errno()
            raise OSError(error, f"timerfd_create: {os.strerror(error)}")
        self._spec = _TimerSpec()
        self.at: float | None = None  # when it goes off; None: not set

    def fileno(self) -> int:
        return self.fd

    def set(self, at: float) -> None:
        """Go off at monotonic time `at` (at once if that has passed)."""
        seconds = int(at)
        self._spec.value.seconds = seconds
        self._spec.value.nanoseconds = max(1, int((at - seconds) * 1e9))  # 0 would disarm it
        self._libc.timerfd_settime(self.fd, TFD_TIMER_ABSTIME, ctypes.byref(self._spec), None)
        self.at = at

    def acknowledge(self) -> None:
        """It went off: read its count, so that it is not readable again until set anew."""
        with contextlib.suppress(BlockingIOError):
            os.read(self.fd, 8)
        self.at = None

    def close(self) -> None:
        os.close(self.fd)


class Delayed:
    """Frames due later, each in the line of its way out (`deliver`), and the alarm
    for the soonest.

    `add` refuses what would pass the byte bound.
    """

    def __init__(self, limit: int = DELAYED_MAX_BYTES) -> None:
        self.held = Held()
        self.bytes = 0
        self.limit = limit
        self.alarm = Alarm()
        self.lateness: deque[float] = deque(maxlen=LATENESS_KEPT)  # seconds after their time

    def add(self, at: float, deliver: Deliver, frame: bytes) -> bool:
        if self.bytes + len(frame) > self.limit:
            return False
        self.held.add(at, deliver, frame)
        self.bytes += len(frame)
        alarm = self.alarm
        if alarm.at is None or at < alarm.at:
            alarm.set(at)
        return True

    def soonest(self) -> float | None:
        return self.held.soonest()

    def release(self, now: float, rang: bool, failed: Callable[[OSError, bytes], None]) -> None:
        """Deliver every frame due by `now`, in one pass that also counts its bytes and
        lateness (a pass a frame is what this costs); then set the alarm for the next one
        if it is not set already (`rang`: it went off, which is why the loop asks).
        `failed` hears of a frame its way out refused."""
        alarm = self.alarm
        if rang:
            alarm.acknowledge()
        released = 0
        late = self.lateness.append
        for at, _, deliver, frame in self.held.due(now):
            released += len(frame)
            late(now - at)
            try:
                deliver(frame)
            except OSError as error:
                failed(error, frame)
        self.bytes -= released
        if alarm.at is None:
            soonest = self.held.soonest()
            if soonest is not None:
                alarm.set(max(soonest, now + ALARM_GRAIN))

    def late(self) -> dict[str, float]:
        """How late the last frames went out, in ms: median and p99 (empty: none held yet)."""
        if not self.lateness:
            return {}
        ordered = sorted(self.lateness)
        return {
            "frames": len(ordered),
            "median_ms": round(ordered[len(ordered) // 2] * 1000, 3),
            "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000, 3),
        }

    def close(self) -> None:
        self.alarm.close()


def timely(on: bool) -> str | None:
    """Run this process at SCHED_FIFO priority 1 (on) or as an ordinary process (off);
    None, or why it could not."""
    policy, priority = (os.SCHED_FIFO, 1) if on else (os.SCHED_OTHER, 0)
    try:
        if os.sched_getscheduler(0) != policy:
            os.sched_setscheduler(0, policy, os.sched_param(priority))
    except OSError as error:
        return f"real-time scheduling for delayed frames: {error.strerror}"
    return None


def timed(impairment: LinkImpairment) -> bool:
    """Does it hold frames for later (a delay or a rate), so that their times matter?"""
    return any(
        settings.delay or settings.rate for settings in (impairment.inbound, impairment.outbound)
    )


class Link:
    """One router interface's impairment: a shaper per impaired direction (None: not)."""

    def __init__(self, router: str, port: str, impairment: LinkImpairment) -> None:
        self.port = port
        self.impairment = impairment
        # seeded by the user's seed and where the shaper sits, so each direction has its own
        self.shapers = {
            direction: Shaper(settings, f"{impairment.seed}/{router}/{port}/{direction}")
            if settings.active
            else None
            for direction in DIRECTIONS
            for settings in (impairment.direction(direction),)
        }
        self.counters: Counter[str] = Counter()  # in_lost, out_queue_dropped, out_duplicated ...
        # each direction's settings as a drop event tells them, made once: drops are frequent
        self.settings = {d: impairment.direction(d).describe() for d in DIRECTIONS}

    def state(self) -> LinkState:
        return LinkState(
            port=self.port,
            impair=self.impairment.to_json(),
            described=self.impairment.describe(),
            counters=dict(self.counters),
        )
