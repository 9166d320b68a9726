"""Carrier-grade NAT: port blocks handed to subscribers from a pool of public addresses.

A carrier's NAT (RFC 6888) serves many subscribers, each an inside address
(a home router's WAN on the shared space 100.64.0.0/10, RFC 6598). Instead
of choosing every external port on its own, it hands each subscriber whole
blocks of ports and logs only the blocks: who held which ports of which
public address, from when to when. That log is what a carrier answers
"who was 203.0.113.10:40123 at 14:02?" with.

The rules, as `PortBlocks` keeps them:

- paired pooling (RFC 4787 REQ-2, RFC 6888 REQ-2): a subscriber gets one
  public address with its first block (the pool address with the most free
  blocks, the first of the pool on a tie) and keeps it while it holds a
  block; every further block comes from that address;
- blocks: the behaviour's port range is cut into `port_block`-sized blocks
  on each public address (a remainder shorter than a block is never used,
  nor is a block holding a port the router keeps for itself). A subscriber
  holds at most `blocks_per_subscriber`; all its ports come from its blocks.
  A block serves UDP ports, TCP ports and ICMP identifiers alike, each its
  own number space;
- quota (RFC 6888 REQ-4): a subscriber holds at most `port_quota` external
  ports at once, UDP, TCP and ICMP together (by default no limit but its
  blocks);
- exhaustion: a port beyond the quota, a block beyond
  `blocks_per_subscriber`, or a block from an address with none left, is
  refused with a sentence naming the subscriber; the engine drops that new
  flow and nothing else: existing mappings are not touched;
- release: a block is given back the moment its last port is (its last
  mapping expired); a subscriber with no block left is forgotten, pairing
  and all.

Inside its blocks a subscriber's port is chosen as the behaviour says:
preserve keeps the internal port when a block of the subscriber holds it
and it is free, else the next free one after the last handed out, as
sequential does; random starts at a random port of the subscriber's
blocks. Parity (RTP even, RTCP odd) is kept when asked. Blocks are taken
lowest first, or at random with `ports: random`, always from the engine's
seeded generator. Pure: time is an argument, events go to `emit`.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from natlab.core.behaviour import PortAssignment
from natlab.core.events import Event, format_time
from natlab.core.packets import Proto

_ICMP = int(Proto.ICMP)


@dataclass(frozen=True)
class CgnatSettings:
    """A carrier-grade NAT's port-block knobs (its pool is the router's external addresses)."""

    port_block: int = 512
    blocks_per_subscriber: int = 4
    port_quota: int | None = None  # None: no limit but the subscriber's blocks

    def __post_init__(self) -> None:
        if self.port_block < 1:
            raise ValueError(f"port_block must be at least 1, got {self.port_block}")
        if self.blocks_per_subscriber < 1:
            raise ValueError(
                f"blocks_per_subscriber must be at least 1, got {self.blocks_per_subscriber}"
            )
        if self.port_quota is not None and self.port_quota < 1:
            raise ValueError(f"port_quota must be at least 1, got {self.port_quota}")

    def as_json(self) -> dict[str, Any]:
        """CgnatSettings(**s.as_json()) == s."""
        return {
            "port_block": self.port_block,
            "blocks_per_subscriber": self.blocks_per_subscriber,
            "port_quota": self.port_quota,
        }


@dataclass(frozen=True, slots=True)
class PortBlockAllocated(Event):
    """A subscriber was given a block of ports on its public address: a line of the CGN log."""

    kind: ClassVar[str] = "port-block-allocated"
    subscriber: str
    public: str
    first_port: int
    last_port: int

    def describe(self) -> str:
        return (
            f"subscriber {self.subscriber}: ports {self.first_port}-{self.last_port} "
            f"on {self.public} allocated"
        )


@dataclass(frozen=True, slots=True)
class PortBlockReleased(Event):
    """A subscriber's block went back to the pool (its last mapping expired, or a flush)."""

    kind: ClassVar[str] = "port-block-released"
    subscriber: str
    public: str
    first_port: int
    last_port: int
    allocated_at: float

    def describe(self) -> str:
        return (
            f"subscriber {self.subscriber}: ports {self.first_port}-{self.last_port} "
            f"on {self.public} released (held since {format_time(self.allocated_at)})"
        )


class Block:
    """One block of ports on a public address, held by one subscriber."""

    __slots__ = ("allocated_at", "first", "held", "index", "last", "public", "subscriber", "used")

    def __init__(
        self, subscriber: Subscriber, public: str, index: int, first: int, last: int, now: float
    ) -> None:
        self.subscriber = subscriber
        self.public = public
        self.index = index
        self.first = first
        self.last = last
        self.allocated_at = now
        self.held = 0
        # (protocol, parity bit) -> ports of that protocol and parity in use
        self.used: dict[tuple[int, int], set[int]] = {}

    def free(self, proto: int, parity: int | None) -> bool:
        """Whether a port of this protocol (and parity, if given) is free in the block."""
        bits = (0, 1) if parity is None else (parity,)
        return any(
            len(self.used.get((proto, bit), ())) < _count_of_parity(self.first, self.last, bit)
            for bit in bits
        )

    def take(self, proto: int, port: int) -> None:
        self.used.setdefault((proto, port & 1), set()).add(port)
        self.held += 1

    def taken(self, proto: int, port: int) -> bool:
        return port in self.used.get((proto, port & 1), ())

    def give_back(self, proto: int, port: int) -> None:
        self.used[(proto, port & 1)].remove(port)
        self.held -= 1


class Subscriber:
    """An inside address, the public address it is paired with, and the blocks it holds."""

    __slots__ = ("blocks", "cursor", "held", "inside", "public")

    def __init__(self, inside: str, public: str) -> None:
        self.inside = inside
        self.public = public
        self.blocks: list[Block] = []
        self.held = 0  # ports held, every protocol together
        self.cursor: dict[int, int] = {}  # protocol -> where the next search starts


def _count_of_parity(first: int, last: int, bit: int) -> int:
    return len(range(first + ((bit - first) & 1), last + 1, 2))


class PortBlocks:
    """The port blocks of one carrier-grade NAT: who holds which, and the ports in them."""

    def __init__(
        self,
        settings: CgnatSettings,
        addresses: tuple[str, ...],
        port_range: tuple[int, int],
        *,
        mode: PortAssignment,
        parity: bool,
        rng: random.Random,
        reserved: Mapping[tuple[int, str], frozenset[int]],
        emit: Callable[[Event], None],
    ) -> None:
        low, high = port_range
        size = settings.port_block
        count = (high - low + 1) // size
        if count < 1:
            raise ValueError(
                f"port_block {size} is larger than the port range {low}-{high} "
                f"({high - low + 1} ports)"
            )
        if parity and size % 2:
            raise ValueError(
                f"parity needs an even port_block (each block then has both parities), got {size}"
            )
        self.settings = settings
        self._addresses = addresses
        self._low = low
        self._size = size
        self._mode = mode
        self._parity = parity
        self._random = rng
        self._emit = emit
        self._subscribers: dict[str, Subscriber] = {}
        self._blocks: dict[tuple[str, int], Block] = {}  # (public address, block index) -> held
        self._free: dict[str, list[int]] = {}  # public address -> free block indices (a heap)
        for address in addresses:
            kept = {p for (_, a), ports in reserved.items() if a == address for p in ports}
            self._free[address] = [
                index
                for index in range(count)
                if not any(low + index * size <= p < low + (index + 1) * size for p in kept)
            ]
        self.capacity = {address: len(free) for address, free in self._free.items()}

    # -- what the engine asks --------------------------------------------------------

    def allocate(
        self, proto: int, inside: str, internal_port: int, now: float
    ) -> tuple[str, int] | str:
        """(public address, port) for a new mapping of `inside`, or why there is none."""
        subscriber = self._subscribers.get(inside)
        quota = self.settings.port_quota
        if quota is not None and subscriber is not None and subscriber.held >= quota:
            return (
                f"subscriber {inside} holds its quota of {quota} port(s) "
                f"on {subscriber.public}: new flows are refused until one expires"
            )
        parity = internal_port & 1 if self._parity and proto != _ICMP else None
        if subscriber is not None:
            port = self._port_in(subscriber, proto, internal_port, parity)
            if port is not None:
                return subscriber.public, port
            if len(subscriber.blocks) >= self.settings.blocks_per_subscriber:
                what = "" if parity is None else f" with the parity of {internal_port}"
                return (
                    f"subscriber {inside} uses every {_proto(proto)} port{what} of its "
                    f"{len(subscriber.blocks)} block(s) on {subscriber.public} "
                    f"(blocks_per_subscriber {self.settings.blocks_per_subscriber})"
                )
            public = subscriber.public
        else:
            public = max(self._addresses, key=lambda address: len(self._free[address]))
        if not self._free[public]:
            if subscriber is None:
                return f"subscriber {inside}: no free port block left in the pool"
            return (
                f"subscriber {inside}: no free port block left on {public}, "
                "the public address it is paired with"
            )
        if subscriber is None:
            subscriber = self._subscribers[inside] = Subscriber(inside, public)
        self._new_block(subscriber, now)
        port = self._port_in(subscriber, proto, internal_port, parity)
        assert port is not None, "a new block has every port free"
        return public, port

    def release(self, proto: int, public: str, port: int, now: float) -> None:
        """Give back a port `allocate` handed out; its block too, if that was its last port."""
        block = self._blocks[(public, (port - self._low) // self._size)]
        block.give_back(proto, port)
        subscriber = block.subscriber
        subscriber.held -= 1
        if not block.held:
            self._release_block(block, now)

    def release_all(self, now: float) -> None:
        """Every block back to the pool (the engine's mappings were flushed)."""
        for block in list(self._blocks.values()):
            self._release_block(block, now)

    # -- what `nat show` shows ---------------------------------------------------------

    def subscribers(self) -> Iterator[Subscriber]:
        return iter(self._subscribers.values())

    def as_json(self) -> dict[str, Any]:
        """Settings, what the pool has left, and every subscriber with its blocks."""
        return {
            **self.settings.as_json(),
            "pool": [
                {"public": a, "blocks": self.capacity[a], "free_blocks": len(self._free[a])}
                for a in self._addresses
            ],
            "subscribers": [
                {
                    "subscriber": s.inside,
                    "public": s.public,
                    "ports_held": s.held,
                    "blocks": [
                        {"first_port": b.first, "last_port": b.last, "allocated_at": b.allocated_at}
                        for b in s.blocks
                    ],
                }
                for s in self._subscribers.values()
            ],
        }

    # -- blocks and ports ------------------------------------------------------------

    def _new_block(self, subscriber: Subscriber, now: float) -> Block:
        free = self._free[subscriber.public]
        if self._mode is PortAssignment.RANDOM:
            at = self._random.randrange(len(free))
            free[at], free[-1] = free[-1], free[at]
            index = free.pop()
            heapq.heapify(free)
        else:
            index = heapq.heappop(free)
        first = self._low + index * self._size
        block = Block(subscriber, subscriber.public, index, first, first + self._size - 1, now)
        self._blocks[(subscriber.public, index)] = block
        subscriber.blocks.append(block)
        self._emit(
            PortBlockAllocated(now, subscriber.inside, subscriber.public, block.first, block.last)
        )
        return block

    def _release_block(self, block: Block, now: float) -> None:
        subscriber = block.subscriber
        del self._blocks[(block.public, block.index)]
        subscriber.blocks.remove(block)
        subscriber.held -= block.held
        heapq.heappush(self._free[block.public], block.index)
        if not subscriber.blocks:
            del self._subscribers[subscriber.inside]
        self._emit(
            PortBlockReleased(
                now, subscriber.inside, block.public, block.first, block.last, block.allocated_at
            )
        )

    def _port_in(
        self, subscriber: Subscriber, proto: int, internal_port: int, parity: int | None
    ) -> int | None:
        """A free port of the subscriber's blocks, taken; None if its blocks have none."""
        blocks = subscriber.blocks
        if not blocks:
            return None
        if self._mode is PortAssignment.PRESERVE:
            for block in blocks:
                if block.first <= internal_port <= block.last:
                    if not block.taken(proto, internal_port):
                        return self._take(subscriber, block, proto, internal_port)
                    break
        if self._mode is PortAssignment.RANDOM:
            block = self._random.choice(blocks)
            start = self._random.randint(block.first, block.last)
        else:
            start = subscriber.cursor.get(proto, blocks[0].first)
        for block, ports in _rotation(blocks, start, parity):
            if block.free(proto, parity):
                for port in ports:
                    if not block.taken(proto, port):
                        return self._take(subscriber, block, proto, port)
        return None

    def _take(self, subscriber: Subscriber, block: Block, proto: int, port: int) -> int:
        block.take(proto, port)
        subscriber.held += 1
        subscriber.cursor[proto] = port + 1
        return port


def _rotation(blocks: list[Block], start: int, parity: int | None) -> Iterator[tuple[Block, range]]:
    """Every port of the blocks once, from `start` upwards, wrapping: (block, its ports) pairs.

    `start` may lie outside every block (a cursor past a block's end): the
    search then begins with the first block after it, or the first block.
    """
    step = 1 if parity is None else 2
    ordered = sorted(blocks, key=lambda b: b.first)
    at = next((i for i, b in enumerate(ordered) if start <= b.last), 0)
    head = ordered[at]
    begin = max(start, head.first) if start <= head.last else head.first
    yield head, _ports(begin, head.last, parity, step)
    for block in ordered[at + 1 :] + ordered[:at]:
        yield block, _ports(block.first, block.last, parity, step)
    if begin > head.first:
        yield head, _ports(head.first, begin - 1, parity, step)


def _ports(first: int, last: int, parity: int | None, step: int) -> range:
    if parity is not None:
        first += (parity - first) & 1
    return range(first, last + 1, step)


def _proto(proto: int) -> str:
    return "icmp identifier" if proto == _ICMP else f"{Proto(proto)}"
