"""RFC 5780 NAT behaviour discovery: mapping, filtering, hairpinning, binding lifetime.

    python -m natlab.endpoints.discovery --server ADDR[:PORT] [--json]
                                         [--lifetime SECONDS [--resolution SECONDS] [--lab-clock]]

The decisions are pure functions of the answers (mapping_of, filtering_of,
classic_name, search_lifetime); `discover` runs the tests in order over a
Prober, which UdpProber implements with sockets and a unit test implements
with a model NAT. The order matters:

1. Test I, a plain Binding request to the server's primary address Sa:Sp,
   gives the mapped address and the server's other address Ca:Cp.
2. The filtering tests come next, on the same socket (RFC 5780 4.4): ask
   for an answer from Ca:Cp (change IP and port), then from Sa:Cp (change
   port). They must come before the mapping tests, which send to Ca:Sp and
   Ca:Cp and so open exactly the holes that would let those answers in.
3. The mapping tests (RFC 5780 4.3): ask Ca:Sp, then Ca:Cp, and compare the
   mapped addresses with test I's.
4. Hairpinning (RFC 5780 4.5) from a second socket, and optionally the
   binding lifetime (RFC 5780 4.6) from fresh pairs of sockets.

A hairpinned packet still passes the NAT's filter. The test socket first
sends toward the second socket's mapping to open it, which is enough with
endpoint-independent mapping or filtering; behind address-dependent
mapping *and* filtering, a NAT that hairpins may still be reported as not.

A mapped address equal to the local one means no NAT: the mapping is
endpoint-independent and the classic name is "open internet" (or
"firewall" if something filters).

The lifetime test idles for up to minutes per step on a real clock. With
--lab-clock it does not sleep: it prints "advance SECONDS" on stdout and
waits for a line on stdin, and whoever runs it (natlab.scenario.probe)
advances the lab's clock that far, which ages the NAT's mappings at once.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from natlab.core.behaviour import Behaviour, Filtering, Mapping
from natlab.endpoints.stun_client import (
    LAB_TIMING,
    Answer,
    StunClient,
    Timing,
    binding_request,
    exchange,
    resolve,
    route_source,
)
from natlab.errors import NatlabError
from natlab.stun import CHANGE_REQUEST, RESPONSE_PORT, Address, ChangeRequest, encode

CHANGE_IP_AND_PORT = ChangeRequest(change_ip=True, change_port=True)
CHANGE_PORT = ChangeRequest(change_port=True)


# --- decisions: pure -------------------------------------------------------


def mapping_of(first: Address, second: Address, third: Address | None) -> Mapping:
    """RFC 5780 4.3 from the mapped addresses of tests I, II (to Ca:Sp) and III (to Ca:Cp).

    `third` is needed only when the first two differ.
    """
    if second == first:
        return Mapping.ENDPOINT_INDEPENDENT
    if third is None:
        raise ValueError("tests I and II differ: test III decides")
    if third == second:
        return Mapping.ADDRESS_DEPENDENT
    return Mapping.ADDRESS_AND_PORT_DEPENDENT


def filtering_of(
    server: Address, other: Address, change_both: Answer | None, change_port: Answer | None
) -> Filtering | None:
    """RFC 5780 4.4 from the answers to test II (change IP and port) and III (change port).

    An answer from where the change should not have sent it means the
    server ignored CHANGE-REQUEST, and then nothing can be concluded (None).
    `change_port` is needed only when test II got no answer.
    """
    if change_both is not None:
        return Filtering.ENDPOINT_INDEPENDENT if change_both.source == other else None
    if change_port is None:
        return Filtering.ADDRESS_AND_PORT_DEPENDENT
    if change_port.source == Address(server.ip, other.port):
        return Filtering.ADDRESS_DEPENDENT
    return None


def classic_name(
    local: Address, mapped: Address, mapping: Mapping | None, filtering: Filtering | None
) -> str | None:
    """The classic name for what was seen; None when an axis is unknown or fits no preset."""
    if mapping is None or filtering is None:
        return None
    if mapped == local:
        return "open internet" if filtering is Filtering.ENDPOINT_INDEPENDENT else "firewall"
    return Behaviour(mapping=mapping, filtering=filtering).preset_name()


@dataclass(frozen=True)
class Lifetime:
    """Bounds on how long an idle UDP binding lives, in seconds."""

    survives: float  # the longest wait after which it still let an answer in (0: none tried)
    expires: float | None  # the shortest wait after which it did not; None: it outlived all

    def as_json(self) -> dict[str, float | None]:
        return {"survives": self.survives, "expires": self.expires}


def search_lifetime(alive: Callable[[float], bool], longest: float, resolution: float) -> Lifetime:
    """Bisect on `alive(wait)` between 0 and `longest` down to `resolution` seconds."""
    if alive(longest):
        return Lifetime(longest, None)
    survives, expires = 0.0, longest
    while expires - survives > resolution:
        wait = (survives + expires) / 2
        if alive(wait):
            survives = wait
        else:
            expires = wait
    return Lifetime(survives, expires)


@dataclass(frozen=True)
class Report:
    """What discovery saw; an axis is None when the server or the network did not tell."""

    server: Address
    local: Address
    mapped: Address
    other: Address | None
    mapping: Mapping | None
    filtering: Filtering | None
    hairpin: bool | None
    lifetime: Lifetime | None
    name: str | None
    notes: tuple[str, ...] = field(default=())

    def as_json(self) -> dict[str, object]:
        def text(value: object) -> str | None:
            return None if value is None else str(value)

        return {
            "server": str(self.server),
            "local": str(self.local),
            "mapped": str(self.mapped),
            "other": text(self.other),
            "mapping": text(self.mapping),
            "filtering": text(self.filtering),
            "hairpin": self.hairpin,
            "lifetime": None if self.lifetime is None else self.lifetime.as_json(),
            "name": self.name,
            "notes": list(self.notes),
        }


# --- the sequence, over any Prober ------------------------------------------


class Prober(Protocol):
    """The network side of discovery; UdpProber is the real one."""

    @property
    def local(self) -> Address:
        """The local address the tests are sent from."""
        ...

    def binding(self, server: Address, change: ChangeRequest | None = None) -> Answer | None:
        """A Binding transaction from the test socket; None if no answer came."""
        ...

    def hairpin(self, server: Address, mapped: Address) -> bool:
        """Whether a packet sent to `mapped` from another local socket comes back in."""
        ...

    def alive_after(self, server: Address, wait: float) -> bool:
        """Whether a fresh binding still lets an answer in after `wait` idle seconds."""
        ...


@dataclass(frozen=True)
class LifetimeSearch:
    """How far and how finely to look for the binding lifetime."""

    longest: float = 300.0
    resolution: float = 5.0


def discover(
    prober: Prober,
    server: Address,
    *,
    hairpin: bool = True,
    lifetime: LifetimeSearch | None = None,
) -> Report:
    """Run the RFC 5780 tests against `server` in the order the module docstring explains."""
    first = prober.binding(server)
    if first is None:
        raise NatlabError(
            f"no answer from STUN server {server}",
            fix="check that the server runs and that this node has a route to it",
        )
    local, mapped, other = prober.local, first.mapped, first.other
    notes: list[str] = []
    mapping = filtering = None
    if other is None:
        notes.append(f"{server} names no OTHER-ADDRESS: mapping and filtering need RFC 5780")
    else:
        filtering = _filtering(prober, server, other, notes)
        mapping = _mapping(prober, server, other, local, mapped, notes)
    return Report(
        server=server,
        local=local,
        mapped=mapped,
        other=other,
        mapping=mapping,
        filtering=filtering,
        hairpin=prober.hairpin(server, mapped) if hairpin else None,
        lifetime=(
            None
            if lifetime is None
            else search_lifetime(
                lambda wait: prober.alive_after(server, wait),
                lifetime.longest,
                lifetime.resolution,
            )
        ),
        name=classic_name(local, mapped, mapping, filtering),
        notes=tuple(notes),
    )


def _filtering(
    prober: Prober, server: Address, other: Address, notes: list[str]
) -> Filtering | None:
    change_both = prober.binding(server, CHANGE_IP_AND_PORT)
    change_port = None if change_both is not None else prober.binding(server, CHANGE_PORT)
    filtering = filtering_of(server, other, change_both, change_port)
    if filtering is None:
        notes.append(f"{server} answered a CHANGE-REQUEST from the wrong address")
    return filtering


def _mapping(
    prober: Prober,
    server: Address,
    other: Address,
    local: Address,
    mapped: Address,
    notes: list[str],
) -> Mapping | None:
    if mapped == local:
        return Mapping.ENDPOINT_INDEPENDENT  # no NAT: nothing maps
    second = prober.binding(Address(other.ip, server.port))
    if second is None:
        notes.append(f"no answer from {Address(other.ip, server.port)}: mapping unknown")
        return None
    third = None
    if second.mapped != mapped:
        third = prober.binding(other)
        if third is None:
            notes.append(f"no answer from {other}: mapping unknown")
            return None
    return mapping_of(mapped, second.mapped, None if third is None else third.mapped)


# --- the network side: UDP sockets -----------------------------------------


class UdpProber:
    """Discovery's sockets: the test socket, plus short-lived ones for hairpin and lifetime."""

    def __init__(
        self,
        client: StunClient,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.client = client
        self.sleep = sleep  # the lab may pass its own clock's

    @classmethod
    def towards(
        cls,
        server: Address,
        timing: Timing = LAB_TIMING,
        sleep: Callable[[float], None] = time.sleep,
    ) -> UdpProber:
        """A prober whose test socket has the local IP this node routes to `server` from."""
        return cls(StunClient.open(route_source(server), timing), sleep)

    def __enter__(self) -> UdpProber:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.client.close()

    @property
    def local(self) -> Address:
        return self.client.local

    def binding(self, server: Address, change: ChangeRequest | None = None) -> Answer | None:
        attributes = () if change is None else (CHANGE_REQUEST(change),)
        return self.client.binding(server, *attributes)

    def _another(self) -> StunClient:
        return StunClient.open(Address(self.local.ip, 0), self.client.timing)

    def hairpin(self, server: Address, mapped: Address) -> bool:
        # The second socket learns its own mapping first; the test socket sends there
        # (a hole for filtering NATs), then the second sends to the test socket's
        # mapping. Either arriving through the NAT is hairpinning.
        with self._another() as second:
            seen = second.binding(server)
            if seen is None:
                return False
            punch, probe = binding_request(), binding_request()
            sends = [
                (self.client.sock, encode(punch), seen.mapped),
                (second.sock, encode(probe), mapped),
            ]
            expected = {
                self.client.sock: probe.transaction_id,
                second.sock: punch.transaction_id,
            }
            return (
                exchange(
                    self.client.timing,
                    sends,
                    list(expected),
                    lambda sock, message, _source: (
                        True if message.transaction_id == expected[sock] else None
                    ),
                )
                is not None
            )

    def alive_after(self, server: Address, wait: float) -> bool:
        # RFC 5780 4.6: binding X stays idle for `wait`; then Y asks the server to
        # answer to X's mapped port (RESPONSE-PORT), from the address X talked to.
        with self._another() as x, self._another() as y:
            first = x.binding(server)
            if first is None:
                return False
            self.sleep(wait)
            request = binding_request(RESPONSE_PORT(first.mapped.port))
            return (
                exchange(
                    self.client.timing,
                    [(y.sock, encode(request), server)],
                    [x.sock],
                    lambda _sock, message, _source: (
                        True if message.transaction_id == request.transaction_id else None
                    ),
                )
                is not None
            )


ADVANCE = "advance"  # --lab-clock: "advance SECONDS" asks the caller to move the lab's clock


def advance_lab_clock(seconds: float) -> None:
    """Sleep on the lab's clock: ask the caller to advance it, and wait until it says it did."""
    print(f"{ADVANCE} {seconds!r}", flush=True)
    if not sys.stdin.readline():
        raise NatlabError(
            "nobody answered 'advance' on stdin",
            fix="--lab-clock is for natlab probe, which advances the lab's clock; drop it",
        )


def probe(
    server: str,
    *,
    timing: Timing = LAB_TIMING,
    hairpin: bool = True,
    lifetime: LifetimeSearch | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Report:
    """Discover against `server` ("ADDR[:PORT]" or a name) from this node."""
    address = resolve([server])[0]
    with UdpProber.towards(address, timing, sleep) as prober:
        return discover(prober, address, hairpin=hairpin, lifetime=lifetime)


def render(report: Report) -> str:
    """The report as lines for a person."""
    rows = report.as_json()
    rows["lifetime"] = None if report.lifetime is None else str(report.lifetime.as_json())
    lines = [f"{key:>9}: {value}" for key, value in rows.items() if key != "notes"]
    return "\n".join(lines + [f"     note: {note}" for note in report.notes])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m natlab.endpoints.discovery",
        description="RFC 5780 NAT behaviour discovery against one STUN server.",
    )
    parser.add_argument("--server", required=True, help="ADDR[:PORT] or NAME[:PORT]")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--no-hairpin", action="store_true", help="skip the hairpinning test")
    parser.add_argument(
        "--lifetime",
        type=float,
        metavar="SECONDS",
        help="also bisect the idle binding lifetime up to SECONDS (slow on a real clock)",
    )
    parser.add_argument(
        "--resolution",
        type=float,
        metavar="SECONDS",
        help="stop bisecting the lifetime at this precision (default: SECONDS/32)",
    )
    parser.add_argument(
        "--lab-clock",
        action="store_true",
        help="wait by asking for the lab clock to advance (stdout/stdin), never sleep",
    )
    parser.add_argument("--tries", type=int, default=LAB_TIMING.tries)
    parser.add_argument("--interval", type=float, default=LAB_TIMING.interval, metavar="SECONDS")
    args = parser.parse_args(argv)
    lifetime = None
    if args.lifetime is not None:
        resolution = args.resolution or max(args.lifetime / 32, 0.1)
        lifetime = LifetimeSearch(args.lifetime, resolution)
    try:
        report = probe(
            args.server,
            timing=Timing(args.tries, args.interval),
            hairpin=not args.no_hairpin,
            lifetime=lifetime,
            sleep=advance_lab_clock if args.lab_clock else time.sleep,
        )
    except NatlabError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    except OSError as error:  # e.g. no route to the server from this node
        print(f"error: {args.server}: {error.strerror}", file=sys.stderr)
        return 1
    print(json.dumps(report.as_json()) if args.json else render(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
