"""External port (and ICMP identifier) assignment for one NAT (RFC 4787 4.2).

Ports are allocated per (protocol, external address) inside the behaviour's
port range, never from the reserved ones (static maps, the router's own
UDP services), and never twice at once: an external port serves a single
mapping key. The strategies:

- preserve: the internal port if it is free; otherwise the next free port
  upwards (wrapping inside the range);
- sequential: the next free port after the last one handed out;
- random: a random start from the engine's own `random.Random(seed)`, then
  the next free port, so a run with the same seed and the same packets
  repeats exactly.

The engine keeps one allocator for UDP and TCP ports (the behaviour's range
and parity) and one for ICMP echo identifiers (the whole 16-bit space, no
parity: an identifier is not a port, and `ping` picks small ones).

With parity on, the external port has the internal port's parity (RTP on
even ports, RTCP on odd). Counts of ports in use per parity make "nothing
left" a constant-time answer, so a flood of new flows on an exhausted NAT
costs no scans.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping

from natlab.core.behaviour import PortAssignment


class PortAllocator:
    """Hands out and takes back external ports; knows nothing of mappings.

    `rng` is the engine's seeded generator, used only by the random mode.
    """

    def __init__(
        self,
        mode: PortAssignment,
        port_range: tuple[int, int],
        *,
        parity: bool,
        rng: random.Random,
        reserved: Mapping[tuple[int, str], frozenset[int]],
    ) -> None:
        self._mode = mode
        self._parity = parity
        self._low, self._high = port_range
        self._random = rng
        self._reserved = reserved
        self._used: dict[tuple[int, str], set[int]] = {}
        self._used_by_parity: dict[tuple[int, str, int], int] = {}
        self._capacity: dict[tuple[int, str, int], int] = {}
        self._cursor: dict[tuple[int, str], int] = {}
        # preserve: where the search from a taken internal port may resume; any
        # release in the pool forgets them, so "next free" stays exact
        self._resume: dict[tuple[int, str], dict[tuple[int, int | None], int]] = {}

    def allocate(self, proto: int, address: str, internal_port: int) -> int | None:
        """A free external port for a new mapping from `internal_port`; None if none is left."""
        pool = (proto, address)
        parity = internal_port & 1 if self._parity else None
        if self._free(pool, parity) <= 0:
            return None
        used = self._used.setdefault(pool, set())
        reserved = self._reserved.get(pool, frozenset())
        start = self._start(pool, internal_port)
        if self._mode is PortAssignment.PRESERVE:
            resume = self._resume.setdefault(pool, {})
            origin = (start, parity)
            start = resume.get(origin, start)
        port = next(
            p for p in self._candidates(start, parity) if p not in used and p not in reserved
        )
        used.add(port)
        key = (proto, address, port & 1)
        self._used_by_parity[key] = self._used_by_parity.get(key, 0) + 1
        following = port + 1 if port < self._high else self._low
        if self._mode is PortAssignment.SEQUENTIAL:
            self._cursor[pool] = following
        elif self._mode is PortAssignment.PRESERVE:
            resume[origin] = following
        return port

    def claim(self, proto: int, address: str, port: int) -> bool:
        """Take exactly `port` (a port control request asked for it), if in range and free."""
        pool = (proto, address)
        if not self._low <= port <= self._high or port in self._reserved.get(pool, ()):
            return False
        used = self._used.setdefault(pool, set())
        if port in used:
            return False
        used.add(port)
        key = (proto, address, port & 1)
        self._used_by_parity[key] = self._used_by_parity.get(key, 0) + 1
        return True

    def release(self, proto: int, address: str, port: int) -> None:
        """Give back a port that `allocate` handed out."""
        self._used[(proto, address)].remove(port)
        self._used_by_parity[(proto, address, port & 1)] -= 1
        self._resume.pop((proto, address), None)

    def _start(self, pool: tuple[int, str], internal_port: int) -> int:
        if self._mode is PortAssignment.PRESERVE:
            return internal_port if self._low <= internal_port <= self._high else self._low
        if self._mode is PortAssignment.SEQUENTIAL:
            return self._cursor.get(pool, self._low)
        return self._random.randint(self._low, self._high)

    def _candidates(self, start: int, parity: int | None) -> Iterator[int]:
        """Every port of the range once, from `start` upwards, wrapping; one parity if asked."""
        low, high = self._low, self._high
        if parity is None:
            yield from range(start, high + 1)
            yield from range(low, start)
            return
        first = start + ((parity - start) & 1)
        yield from range(first, high + 1, 2)
        yield from range(low + ((parity - low) & 1), first, 2)

    def _free(self, pool: tuple[int, str], parity: int | None) -> int:
        bits = (0, 1) if parity is None else (parity,)
        return sum(
            self._capacity_of((*pool, bit)) - self._used_by_parity.get((*pool, bit), 0)
            for bit in bits
        )

    def _capacity_of(self, key: tuple[int, str, int]) -> int:
        """How many ports of one parity the range offers, less the reserved ones."""
        capacity = self._capacity.get(key)
        if capacity is None:
            proto, address, bit = key
            low = self._low + ((bit - self._low) & 1)
            reserved = self._reserved.get((proto, address), frozenset())
            in_range = len(range(low, self._high + 1, 2))
            capacity = in_range - sum(
                1 for p in reserved if self._low <= p <= self._high and p & 1 == bit
            )
            self._capacity[key] = capacity
        return capacity
