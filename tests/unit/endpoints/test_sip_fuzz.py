"""Bad SIP never crashes the PBX or a phone: their message handlers fed hypothesis' bytes.

Each example starts from a real request (an INVITE with SDP, a REGISTER, a
BYE) and breaks it the ways the field does: cut short, oversized, a wrong
Content-Length, duplicated or folded headers, a CR or LF injected into a
value, bytes that are not UTF-8, or plain noise. The PBX must go on and
answer only with SIP it can parse itself (or a CRLF pong); a phone must go on.
"""

from __future__ import annotations

import asyncio
from ipaddress import IPv4Address
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from natlab.endpoints import sip_dialogs as dialogs
from natlab.endpoints.pbx import Pbx, PbxConfig
from natlab.endpoints.phone import Link, Phone, PhoneConfig
from natlab.endpoints.sdp_offer import CONTENT_TYPE, MediaOffer
from natlab.endpoints.sip_transport import PONG, StreamFramer, parse_datagram
from natlab.sip import message as sip
from natlab.sip.message import SipMessage

LOOPBACK = "127.0.0.1"


def seeds() -> list[bytes]:
    def request(method: str, body: bytes = b"") -> bytes:
        return dialogs.request(
            method,
            "sip:phone-b@203.0.113.1",
            via_value=dialogs.via("udp", "10.1.0.2", 5060),
            from_value="<sip:phone-a@203.0.113.1>;tag=a",
            to_value="<sip:phone-b@203.0.113.1>" + (";tag=b" if method == "BYE" else ""),
            call_id="c1",
            cseq=1,
            headers=(("Contact", "<sip:phone-a@10.1.0.2:5060>"),),
            body=body,
            content_type=CONTENT_TYPE if body else None,
        ).to_bytes()

    offer = MediaOffer("ufrag", "p" * 22, ("1 1 udp 2130706431 10.1.0.2 4000 typ host",))
    return [request("INVITE", offer.to_sdp()), request("REGISTER"), request("BYE")]


SEEDS = seeds()


@st.composite
def broken_sip(draw: st.DrawFn) -> bytes:
    data = draw(st.sampled_from(SEEDS))
    how = draw(
        st.sampled_from(
            ["cut", "length", "duplicate", "fold", "inject", "not-utf8", "noise", "oversize"]
        )
    )
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    where = draw(st.integers(1, len(lines) - 1))
    if how == "cut":
        return data[: draw(st.integers(0, len(data)))]
    if how == "length":
        return data.replace(b"Content-Length: ", b"Content-Length: 1", 1)
    if how == "duplicate":
        lines.insert(where, lines[where])
    elif how == "fold":
        lines[where] = lines[where].replace(b": ", b":\r\n  ", 1)
    elif how == "inject":
        lines[where] += draw(st.sampled_from([b"\rX-Injected: 1", b"\nVia: x", b"\x00"]))
    elif how == "not-utf8":
        lines[where] += draw(st.binary(min_size=1, max_size=4).filter(_not_utf8))
    elif how == "noise":
        return draw(st.binary(max_size=300))
    else:
        body += b"x" * draw(st.integers(sip.MAX_MESSAGE_BYTES - len(data), sip.MAX_MESSAGE_BYTES))
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def _not_utf8(data: bytes) -> bool:
    try:
        data.decode()
    except UnicodeDecodeError:
        return True
    return False


class Recorder:
    """A flow to the peer: keeps what the PBX sends."""

    def __init__(self, transport: str) -> None:
        self.transport = transport
        self.address = ("203.0.113.9", 40000)
        self.sent: list[bytes] = []

    def send(self, data: bytes) -> None:
        self.sent.append(data)

    def close(self) -> None:
        pass


def pbx(tmp_path: Path) -> Pbx:
    return Pbx(PbxConfig("pbx", IPv4Address(LOOPBACK), tmp_path / "pbx.sock"))


FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.lists(broken_sip(), min_size=1, max_size=4), st.sampled_from(["udp", "tcp"]))
def test_the_pbx_takes_any_broken_sip_and_answers_only_sip(
    tmp_path_factory, messages: list[bytes], transport: str
) -> None:
    server = pbx(tmp_path_factory.mktemp("pbx"))
    flow = Recorder(transport)

    async def feed() -> None:
        framer = StreamFramer(server=True)
        for data in messages:
            arrivals = [parse_datagram(data)] if transport == "udp" else framer.feed(data)
            for arrival in arrivals:
                await server.handle(arrival, flow)
            if framer.broken:
                framer = StreamFramer(server=True)  # the PBX closes such a connection

    asyncio.run(feed())
    for data in flow.sent:
        assert data == PONG or isinstance(sip.parse(data), SipMessage)
    assert server.counters["malformed"] >= server.counters["malformed_answered"]


@FUZZ
@given(st.lists(broken_sip(), min_size=1, max_size=4))
def test_a_phone_takes_any_broken_sip_from_the_pbx(tmp_path_factory, messages: list[bytes]) -> None:
    directory = tmp_path_factory.mktemp("phone")
    phone = Phone(PhoneConfig("phone-b", IPv4Address(LOOPBACK), directory / "phone.sock"))
    sent: list[SipMessage] = []
    phone.registrar.send = sent.append  # type: ignore[method-assign]
    phone.registrar.link = link = Link()  # registered over UDP, as far as it knows
    link.transport, link.local = "udp", (LOOPBACK, 5060)
    phone.registrar.target = (LOOPBACK, 5060)

    async def feed() -> None:
        framer = StreamFramer(server=False)
        for data in messages:
            for arrival in [*framer.feed(data), parse_datagram(data)]:
                phone.registrar.take(arrival)
        await asyncio.sleep(0)
        for task in list(phone._tasks):
            task.cancel()
        await asyncio.gather(*phone._tasks, return_exceptions=True)

    asyncio.run(feed())
    for message in sent:
        assert isinstance(sip.parse(message.to_bytes()), SipMessage)
