"""The router daemon's part for impaired links: frames through the shapers, held, released.

A mixin of RouterDaemon (daemon.py), kept apart so that the daemon's own
module stays about the dataplane: it uses the daemon's ports, buffer, flow
caches, packet path, counters and events. What a shaper decides is
core/impair.py's; what is held, and when it goes, router/links.py's.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from functools import partial
from ipaddress import IPv4Address
from typing import TYPE_CHECKING, Any

from natlab.core.events import DropReason, proto_name
from natlab.core.impair import Drop, LinkImpairment, Shaper
from natlab.records import DROP, LinksAnswer
from natlab.router.links import Delayed, Link, timed, timely
from natlab.router.ports import Port

WAKE_GRAIN = 0.0001  # seconds: a paced daemon wakes for frames at most this often (pace)

if TYPE_CHECKING:
    from natlab.core.flows import FlowCache


class ImpairedLinks:
    """Set a port's impairment; shape, hold and release its frames; answer `link` requests."""

    # the daemon's, used here
    name: str
    ports: list[Port]
    wan: Port
    buffer: bytearray
    view: memoryview
    flows: dict[Port, FlowCache]
    counters: Counter[str]
    delayed: Delayed
    links: dict[Port, Link]
    paced: bool
    ingress: dict[Port, Callable[[memoryview], None] | None]

    if TYPE_CHECKING:  # the daemon's methods (stubs here would hide a missing one)

        def now(self) -> float: ...
        def log(self, text: str) -> None: ...
        def event(self, kind: str, **fields: Any) -> None: ...
        def packet(self, port: Port, data: memoryview) -> None: ...
        def send_cached(self, port: Port, next_hop: str) -> None: ...
        def send_failed(self, error: OSError, destination: str) -> None: ...

    def impair(self, port: Port, impairment: LinkImpairment) -> None:
        """Set (or clear) a port's impairment; frames already held keep their time."""
        link = self.links[port] = Link(self.name, port.name, impairment)
        self.delayed.lateness.clear()  # link show tells how late frames went since the last set
        outbound, inbound = link.shapers["out"], link.shapers["in"]
        port.transmit = (
            port.sock.send
            if outbound is None
            else self.shaping(port, outbound, "out", port.sock.send)
        )
        self.ingress[port] = (
            None
            if inbound is None
            else self.shaping(port, inbound, "in", partial(self.arrive, port))
        )
        wanted = any(timed(link.impairment) for link in self.links.values())
        trouble = timely(wanted)
        if trouble:
            self.log(trouble)
        self.paced = wanted and not trouble

    def pace(self, woke: float) -> None:
        """At real-time priority, wake for frames at most every WAKE_GRAIN (`woke`: when
        the loop last woke for some), sleeping through that grain unless a held frame is
        due sooner.

        A real-time process takes the CPU from whatever runs the moment a frame
        comes in: a sender a little slower than the daemon would hand over the CPU
        for every frame or two, spend it on context switches and starve itself
        (iperf3 flat out: 70 000 frames/s sent where 200 000 were without).
        Frames that arrive meanwhile wait in the socket and go in the next batch,
        at most WAKE_GRAIN late; a busy loop (more than a grain per round) never
        sleeps here.
        """
        now = time.monotonic()
        until = woke + WAKE_GRAIN
        soonest = self.delayed.soonest()
        if soonest is not None and soonest < until:
            until = soonest
        if until > now:
            time.sleep(until - now)

    def shaping(
        self, port: Port, shaper: Shaper, direction: str, deliver: Callable[[bytes], object]
    ) -> Callable[[bytes | bytearray | memoryview], None]:
        """What one direction of an impaired link does to each IPv4 frame: drop it with an
        event, or deliver it when due. A closure over everything that is the same for every
        frame of the link, which pays no lookups for it (it runs for every frame)."""
        decide, monotonic, hold = shaper.decide, time.monotonic, self.delayed.add
        counters = self.links[port].counters

        def shape(frame: bytes | bytearray | memoryview) -> None:
            now = monotonic()
            fate = decide(now, len(frame))
            if fate.__class__ is Drop:
                self.impaired_drop(port, direction, fate, frame)  # type: ignore[arg-type]
                return
            data = bytes(frame)
            if len(fate) > 1:  # type: ignore[arg-type]
                counters[direction + "_duplicated"] += 1
            for at in fate:  # type: ignore[union-attr]
                if at <= now:
                    deliver(data)
                elif not hold(at, deliver, data):
                    self.impaired_drop(port, direction, Drop.QUEUE, data, "too many frames held")

        return shape

    def impaired_drop(
        self,
        port: Port,
        direction: str,
        why: Drop,
        frame: bytes | bytearray | memoryview,
        cause: str = "",
    ) -> None:
        reason = DropReason(why.value)
        self.counters[reason.counter] += 1
        link = self.links[port]
        link.counters[direction + ("_lost" if why is Drop.LOSS else "_queue_dropped")] += 1
        settings = link.settings[direction]
        addresses = {}
        if len(frame) >= 34:
            addresses = {
                "proto": proto_name(frame[23]),
                "src": str(IPv4Address(bytes(frame[26:30]))),
                "dst": str(IPv4Address(bytes(frame[30:34]))),
            }
        self.event(
            DROP,
            reason=reason,
            port=port.name,
            detail=f"impairment: {'loss' if why is Drop.LOSS else 'queue'} on {port.name} "
            f"{direction} ({cause or settings})",
            **addresses,
        )

    def arrive(self, port: Port, frame: bytes) -> None:
        """A frame an inbound impairment held, now on its way as if it had just come in."""
        size = len(frame)
        self.buffer[:size] = frame
        egress = self.flows[port].forward(self.buffer, 14, size - 14, self.now())
        if egress is None:
            self.packet(port, self.view[14:size])
        else:
            self.send_cached(*egress)

    def release(self, rang: bool) -> None:
        """Deliver every held frame whose time has come (`rang`: the alarm said so)."""
        self.delayed.release(time.monotonic(), rang, self.release_failed)

    def release_failed(self, error: OSError, frame: bytes) -> None:
        self.send_failed(error, str(IPv4Address(frame[30:34])))

    def port_named(self, name: str) -> Port:
        """A port by its name, or by its role: wan, or lan when there is one LAN."""
        if name == "wan":
            return self.wan
        if name == "lan" and len(self.ports) == 2:
            return self.ports[1]
        for port in self.ports:
            if port.name == name:
                return port
        raise ValueError(
            f"no interface {name!r}; interfaces: {', '.join(p.name for p in self.ports)}"
        )

    def links_answer(self) -> LinksAnswer:
        return LinksAnswer(
            router=self.name,
            links=[
                (self.links.get(port) or Link(self.name, port.name, LinkImpairment())).state()
                for port in self.ports
            ],
            late=self.delayed.late(),
        )
