"""Things held until their time: a FIFO line for each source, a heap only for the out of order.

The router daemon holds delayed frames here (router/links.py), hundreds of
thousands a second on a busy link. A shaper (core/impair.py) gives its frames
times in the order they came, a frame waiting for the one before it, except
a reordered frame on a rate-limited link; so each line (one shaper's way
out) is a deque, O(1) in and out, and only a thing due before the last of
its line goes to the heap. `due` hands out what is due in time order within
each line (equal times: in the order added), and in time order throughout
whenever the heap held some of it; across lines without, line by line.
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from collections.abc import Hashable
from typing import Any

Entry = tuple[float, int, Any, Any]  # (due at, order added, line, thing)


class Held:
    """Things added with a time and a line; taken out once the time has come."""

    def __init__(self) -> None:
        self.lines: dict[Hashable, deque[Entry]] = {}  # never an empty one
        self.heap: list[Entry] = []
        self.order = itertools.count()  # entries never compare past it: unique

    def __len__(self) -> int:
        return len(self.heap) + sum(len(line) for line in self.lines.values())

    def add(self, at: float, line: Hashable, thing: Any) -> None:
        entry = (at, next(self.order), line, thing)
        queue = self.lines.get(line)
        if queue is None:
            self.lines[line] = deque((entry,))
        elif at >= queue[-1][0]:
            queue.append(entry)
        else:
            heapq.heappush(self.heap, entry)

    def soonest(self) -> float | None:
        """When the next thing is due; None: nothing held."""
        soonest = self.heap[0][0] if self.heap else None
        for queue in self.lines.values():
            at = queue[0][0]
            if soonest is None or at < soonest:
                soonest = at
        return soonest

    def due(self, now: float) -> list[Entry]:
        """Take out everything due by `now`."""
        batch: list[Entry] = []
        emptied = []
        for line, queue in self.lines.items():
            while queue and queue[0][0] <= now:
                batch.append(queue.popleft())
            if not queue:
                emptied.append(line)
        for line in emptied:
            del self.lines[line]
        heap = self.heap
        if heap and heap[0][0] <= now:
            while heap and heap[0][0] <= now:
                batch.append(heapq.heappop(heap))
            batch.sort()
        return batch
