"""Impaired links in the router daemon: each interface's shapers, and frames held for later.

The decisions are core/impair.py's; this is what the daemon keeps around
them: a `Link` per impaired interface (a `Shaper` per impaired direction
and what they did), and `Delayed`, the frames waiting for their time in one
heap that the daemon's loop serves between packets: no thread and no timer
per frame, and a bound on the bytes held, so a long delay at a high rate
costs queue drops, never the daemon's memory.
"""

from __future__ import annotations

import heapq
import itertools
from collections import Counter
from collections.abc import Callable, Iterator

from natlab.core.impair import DIRECTIONS, LinkImpairment, Shaper
from natlab.records import LinkState

DELAYED_MAX_BYTES = 64 << 20  # frames held for their delay, on all links together
# epoll waits whole milliseconds, rounded up: the loop wakes this much early and
# polls until a frame is due, so that a delay is kept to well under a millisecond.
POLL_GRAIN = 0.001

Deliver = Callable[[bytes], object]


class Delayed:
    """Frames due later, soonest first; `add` refuses what would pass the byte bound."""

    def __init__(self, limit: int = DELAYED_MAX_BYTES) -> None:
        self.heap: list[tuple[float, int, Deliver, bytes]] = []
        self.order = itertools.count()  # equal times leave in the order they were added
        self.bytes = 0
        self.limit = limit

    def add(self, at: float, deliver: Deliver, frame: bytes) -> bool:
        if self.bytes + len(frame) > self.limit:
            return False
        heapq.heappush(self.heap, (at, next(self.order), deliver, frame))
        self.bytes += len(frame)
        return True

    def wait(self, longest: float, now: float) -> float:
        """How long the loop may sleep: `longest`, or until just before the next frame."""
        if not self.heap:
            return longest
        return max(0.0, min(longest, self.heap[0][0] - now - POLL_GRAIN))

    def due(self, now: float) -> Iterator[tuple[Deliver, bytes]]:
        heap = self.heap
        while heap and heap[0][0] <= now:
            _, _, deliver, frame = heapq.heappop(heap)
            self.bytes -= len(frame)
            yield deliver, frame


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
        self.counters: Counter[str] = Counter()  # in_lost, out_delayed, ...

    def state(self) -> LinkState:
        return LinkState(
            port=self.port,
            impair=self.impairment.to_json(),
            described=self.impairment.describe(),
            counters=dict(self.counters),
        )
