"""A pure Binding responder: a decoded request in, the datagram to send out.

The caller reads the datagram, decodes it (StunDecodeError is its to count
or answer), checks FINGERPRINT if it wants to, and asks `respond` what to
send, from which local address, to where. Nothing here opens a socket.

What it answers (RFC 8489, RFC 5780 section 6, RFC 3489):

- Success: XOR-MAPPED-ADDRESS and MAPPED-ADDRESS (RFC 5780 wants both) of
  the request's source, RESPONSE-ORIGIN (the address it is sent from),
  OTHER-ADDRESS when the server has an alternate address, PADDING if the
  request had one, SOFTWARE and FINGERPRINT.
- A classic RFC 3489 request (no magic cookie) is answered in its own form:
  same 128-bit transaction id, MAPPED-ADDRESS, SOURCE-ADDRESS and
  CHANGED-ADDRESS instead of the RFC 5389/5780 attributes, and nothing RFC
  3489 does not define (no SOFTWARE, PADDING or FINGERPRINT). RFC 3489 has
  no attribute padding: every value is a multiple of 4 bytes, so the
  ERROR-CODE reason is padded with spaces and an odd UNKNOWN-ATTRIBUTES
  list repeats a code (its 11.2.9, 11.2.10). A classic client that takes
  attribute lengths literally reads every answer right.
- CHANGE-REQUEST picks the local address to send from. A server without an
  alternate IP *and* port must answer 420 (RFC 5780 6.1); so it does, for
  classic requests too, rather than pretend a change it cannot make.
- 420 with UNKNOWN-ATTRIBUTES for unknown comprehension-required
  attributes, and for RESPONSE-ADDRESS: reflecting answers to a third party
  is what RFC 5389 removed, and a lab must not send where it was not asked.
- 400 for PADDING together with RESPONSE-PORT (RFC 5780 6.1) and for
  requests of other methods. Indications and responses get no answer.
- MESSAGE-INTEGRITY is not checked: the responder has no credentials.

A server with several addresses (the public STUN server, or a router with a
second WAN address) describes them as a Grid; `answer` finds the alternate
address for the one a request arrived on. `read_request` is the decoding
step both the server process and the router daemon take on a datagram.
"""

from __future__ import annotations

from dataclasses import dataclass

from natlab.stun.attributes import (
    CHANGE_REQUEST,
    CHANGED_ADDRESS,
    ERROR_CODE,
    FINGERPRINT,
    MAPPED_ADDRESS,
    OTHER_ADDRESS,
    PADDING,
    RESPONSE_ADDRESS,
    RESPONSE_ORIGIN,
    RESPONSE_PORT,
    SOFTWARE,
    SOURCE_ADDRESS,
    UNKNOWN_ATTRIBUTES,
    XOR_MAPPED_ADDRESS,
    Address,
    Attribute,
    ErrorCode,
    IPAddress,
)
from natlab.stun.codec import Message, MessageClass, Method, decode, encode, verify_fingerprint
from natlab.stun.errors import StunDecodeError


@dataclass(frozen=True)
class Reply:
    """One datagram to send: bytes, the local address to send from, the destination."""

    data: bytes
    source: Address
    destination: Address


def respond(
    request: Message,
    source: Address,
    local: Address,
    *,
    other: Address | None = None,
    software: str | None = "natlab",
    mtu: int = 1500,
) -> Reply | None:
    """Answer `request`, which came from `source` to our `local` address.

    `other` is the server's alternate address relative to `local`: the other
    IP and the other port (RFC 5780's Ca:Cp); None if the server has one
    address. `mtu` sizes PADDING, which RFC 5780 sets to the outgoing MTU.
    """
    if request.message_class is not MessageClass.REQUEST:
        return None

    classic = request.classic
    if classic:
        software = None  # RFC 3489 has no SOFTWARE

    def error(code: int, reason: str, unknown: tuple[int, ...] = ()) -> Reply:
        if classic:  # RFC 3489 wants values a multiple of 4 bytes: no padding follows
            reason += " " * (-len(reason.encode()) % 4)
            unknown += unknown[-1:] * (len(unknown) % 2)
        attributes = (ERROR_CODE(ErrorCode(code, reason)),)
        if unknown:
            attributes += (UNKNOWN_ATTRIBUTES(unknown),)
        response = _response(request, MessageClass.ERROR, attributes, software)
        return Reply(encode(response, fingerprint=not classic), local, source)

    if request.method != Method.BINDING:
        return error(400, "Bad Request: only Binding is supported")
    change = request.get(CHANGE_REQUEST)
    refused = list(request.unknown_comprehension_required)
    if request.get(RESPONSE_ADDRESS) is not None:
        refused.append(RESPONSE_ADDRESS.code)
    if change is not None and other is None:
        refused.append(CHANGE_REQUEST.code)
    if refused:
        return error(420, "Unknown Attribute", tuple(refused))
    response_port = request.get(RESPONSE_PORT)
    if request.get(PADDING) is not None and response_port is not None:
        return error(400, "Bad Request: PADDING with RESPONSE-PORT")

    sent_from = local
    if change is not None and other is not None:
        sent_from = Address(
            other.ip if change.change_ip else local.ip,
            other.port if change.change_port else local.port,
        )
    if classic:
        attributes = [MAPPED_ADDRESS(source), SOURCE_ADDRESS(sent_from)]
        if other is not None:
            attributes.append(CHANGED_ADDRESS(other))
    else:
        attributes = [
            XOR_MAPPED_ADDRESS(source),
            MAPPED_ADDRESS(source),
            RESPONSE_ORIGIN(sent_from),
        ]
        if other is not None:
            attributes.append(OTHER_ADDRESS(other))
        if request.get(PADDING) is not None:
            attributes.append(PADDING(bytes(mtu + -mtu % 4)))
    response = _response(request, MessageClass.SUCCESS, tuple(attributes), software)
    destination = source if response_port is None else Address(source.ip, response_port)
    return Reply(encode(response, fingerprint=not classic), sent_from, destination)


def _response(
    request: Message,
    message_class: MessageClass,
    attributes: tuple[Attribute, ...],
    software: str | None,
) -> Message:
    if software is not None:
        attributes = (*attributes, SOFTWARE(software))
    return Message(request.method, message_class, request.transaction_id, attributes)


@dataclass(frozen=True)
class Grid:
    """A server's addresses and ports: RFC 5780's 2x2, or less.

    Only a full 2x2 has an alternate address (the other IP *and* the other
    port) to offer; with fewer the responder answers CHANGE-REQUEST with 420.
    """

    addresses: tuple[IPAddress, ...]
    ports: tuple[int, ...]

    def __post_init__(self) -> None:
        for what, values in (("addresses", self.addresses), ("ports", self.ports)):
            if not 1 <= len(set(values)) == len(values) <= 2:
                raise ValueError(f"a grid has one or two distinct {what}, got {values}")
        if len({ip.version for ip in self.addresses}) > 1:
            raise ValueError("a grid's addresses are of one family: a reply cannot change it")

    @property
    def endpoints(self) -> tuple[Address, ...]:
        """Every (address, port) the server listens on."""
        return tuple(Address(ip, port) for ip in self.addresses for port in self.ports)

    def other(self, local: Address) -> Address | None:
        """The alternate address for `local`, one of the grid's endpoints."""
        if local not in self.endpoints:
            raise ValueError(f"{local} is not one of the grid's endpoints")
        if len(self.addresses) < 2 or len(self.ports) < 2:
            return None
        ip = self.addresses[1 - self.addresses.index(local.ip)]
        return Address(ip, self.ports[1 - self.ports.index(local.port)])


def answer(
    request: Message,
    source: Address,
    local: Address,
    grid: Grid,
    *,
    software: str | None = "natlab",
) -> Reply | None:
    """`respond` for a server laid out as `grid`; Reply.source is the endpoint to send from.

    For the router's built-in responder `source` is the request's source as
    the NAT translated it, so the answer carries the mapping a peer would see.
    """
    return respond(request, source, local, other=grid.other(local), software=software)


def read_request(data: bytes) -> Message:
    """Decode a datagram, refusing one whose FINGERPRINT is present but wrong.

    A wrong FINGERPRINT means the datagram is not STUN at all (RFC 8489
    7.3), so it is a StunDecodeError like any other garbage, to be counted
    and dropped.
    """
    message = decode(data)
    if message.get(FINGERPRINT) is not None and not verify_fingerprint(data):
        raise StunDecodeError("FINGERPRINT does not match the message")
    return message
