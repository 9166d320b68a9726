"""The SIP ALG's rewrite of an outbound message, header by header, in both modes."""

from __future__ import annotations

from natlab.sip import message as sip
from natlab.sip import sdp
from natlab.sip.alg import (
    AlgResult,
    PinholeOpened,
    Rewritten,
    Untouched,
    rewrite,
    rewrite_inbound,
)
from natlab.sip.headers import NameAddr, SipUri, Via

PRIVATE = ("10.0.1.2", 5060)
PUBLIC = ("203.0.113.5", 40001)
BODY = (
    b"v=0\r\no=- 1 1 IN IP4 10.0.1.2\r\ns=-\r\nc=IN IP4 10.0.1.2\r\nt=0 0\r\n"
    b"m=audio 4000 RTP/AVP 0\r\n"
    b"a=candidate:1 1 UDP 2130706431 10.0.1.2 4000 typ host\r\n"
    b"a=candidate:2 1 UDP 1694498815 198.51.100.7 61000 typ srflx raddr 10.0.1.2 rport 4000\r\n"
)


def _invite(body: bytes = BODY) -> bytes:
    return (
        b"INVITE sip:bob@203.0.113.9 SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP 10.0.1.2:5060;branch=z9hG4bK1;rport\r\n"
        b"Via: SIP/2.0/UDP 10.0.1.2:5999;branch=z9hG4bKold\r\n"
        b"From: <sip:alice@10.0.1.2>;tag=1\r\nTo: <sip:bob@203.0.113.9>\r\n"
        b"Call-ID: c@10.0.1.2\r\nCSeq: 1 INVITE\r\n"
        b'Contact: "Alice" <sip:alice@10.0.1.2:5060;transport=udp>;expires=60\r\n'
        b"Content-Type: application/sdp\r\nContent-Length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
    )


class Router:
    """Hands out public media ports and remembers what it was asked for."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, int]] = []

    def map_media(self, private: tuple[str, int]) -> tuple[str, int]:
        self.asked.append(private)
        return PUBLIC[0], 50000 + len(self.asked)


def _run(mode: str, payload: bytes | None = None) -> tuple[AlgResult, Router]:
    router = Router()
    result = rewrite(
        _invite() if payload is None else payload,
        mode=mode,  # type: ignore[arg-type]
        private=PRIVATE,
        public=PUBLIC,
        map_media=router.map_media,
    )
    return result, router


def test_rewrite_mode_rewrites_via_contact_and_sdp_and_opens_a_pinhole():
    result, router = _run("rewrite")
    message = sip.parse(result.payload)
    top, second = (Via.parse(value) for value in message.values("Via"))
    assert (top.host, top.port, top.branch, top.rport) == ("203.0.113.5", 40001, "z9hG4bK1", "")
    assert (second.host, second.port) == ("10.0.1.2", 5999), "only the sender's own Via"
    contact = NameAddr.parse(message.get("Contact") or "")
    assert str(SipUri.parse(contact.uri)) == "sip:alice@203.0.113.5:40001;transport=udp"
    assert (contact.display, contact.params) == ('"Alice"', (("expires", "60"),))
    assert NameAddr.parse(message.get("From") or "").uri == "sip:alice@10.0.1.2", "From untouched"
    description = sdp.parse(message.body)
    (audio,) = description.media
    assert sdp.connection_address(description) == "203.0.113.5"
    assert audio.port == 50001
    host, srflx = (sdp.Candidate.parse(v) for v in sdp.attribute_values(audio, "candidate"))
    assert (host.address, host.port) == ("203.0.113.5", 50001)
    assert (srflx.address, srflx.port) == ("198.51.100.7", 61000), "public candidates untouched"
    assert router.asked == [("10.0.1.2", 4000), ("10.0.1.2", 4001)], "RTP and RTCP, once each"
    assert PinholeOpened(("10.0.1.2", 4000), ("203.0.113.5", 50001)) in result.events
    assert PinholeOpened(("10.0.1.2", 4001), ("203.0.113.5", 50002)) in result.events
    assert sdp.attribute_values(audio, "rtcp") == [], "RTCP is RTP + 1 on both sides: unsaid"
    fields = [event.field for event in result.events if isinstance(event, Rewritten)]
    assert fields == [
        "Via",
        "Contact",
        "SDP c=",
        "SDP m=audio",
        "SDP a=candidate",
        "Content-Length",
    ]
    assert int(message.get("Content-Length") or "") == len(message.body)


def test_a_contact_naming_another_port_of_the_sender_stays_as_it_is():
    """A phone over TCP names its listening port, not its connection's: that port has no
    mapping to name, so the Contact stays private (as Linux's nf_nat_sip leaves it) and a
    NAT-aware registrar sees the phone is behind NAT and routes by the connection."""
    listening = _invite().replace(b"alice@10.0.1.2:5060;", b"alice@10.0.1.2:5061;")
    result, _ = _run("rewrite", listening)
    message = sip.parse(result.payload)
    contact = NameAddr.parse(message.get("Contact") or "")
    assert str(SipUri.parse(contact.uri)) == "sip:alice@10.0.1.2:5061;transport=udp"
    assert "Contact" not in {e.field for e in result.events if isinstance(e, Rewritten)}
    assert Via.parse(message.values("Via")[0]).host == "203.0.113.5"  # the sender's own


def test_rewrite_events_say_old_and_new():
    result, _ = _run("rewrite")
    via = next(e for e in result.events if isinstance(e, Rewritten) and e.field == "Via")
    assert via.old == "SIP/2.0/UDP 10.0.1.2:5060;branch=z9hG4bK1;rport"
    assert via.new == "SIP/2.0/UDP 203.0.113.5:40001;branch=z9hG4bK1;rport"
    c_line = next(e for e in result.events if isinstance(e, Rewritten) and e.field == "SDP c=")
    assert (c_line.old, c_line.new) == ("IN IP4 10.0.1.2", "IN IP4 203.0.113.5")


def test_broken_mode_rewrites_the_sdp_address_but_not_the_port_and_opens_no_pinhole():
    result, router = _run("broken")
    message = sip.parse(result.payload)
    assert Via.parse(message.values("Via")[0]).host == "203.0.113.5", "signalling still works"
    description = sdp.parse(message.body)
    (audio,) = description.media
    assert sdp.connection_address(description) == "203.0.113.5"
    assert audio.port == 4000, "the private port, which the router never mapped"
    host = sdp.Candidate.parse(sdp.attribute_values(audio, "candidate")[0])
    assert (host.address, host.port) == ("203.0.113.5", 4000)
    assert router.asked == []
    assert not any(isinstance(event, PinholeOpened) for event in result.events)
    assert not any(
        isinstance(event, Rewritten) and event.field.startswith("SDP m=") for event in result.events
    )


def test_a_message_without_the_private_address_passes_byte_for_byte():
    payload = _invite().replace(b"10.0.1.2", b"10.0.9.9")
    result, router = _run("rewrite", payload)
    assert result.payload == payload
    assert result.events == (Untouched("no 10.0.1.2 to rewrite"),)
    assert router.asked == []


def test_non_sip_and_bad_sip_pass_untouched_with_the_reason():
    for payload, reason in [
        (b"\x80\x00\x12\x34rtp", "no empty line"),
        (_invite().replace(b"Content-Length: ", b"Content-Length: 1"), "Content-Length"),
        (_invite(b"v=0\r\nbogus\r\n"), "SDP natlab cannot parse"),
    ]:
        result, router = _run("rewrite", payload)
        assert result.payload == payload
        (event,) = result.events
        assert isinstance(event, Untouched) and reason in event.reason
        assert router.asked == []


def test_a_response_with_an_sdp_answer_is_rewritten_too():
    payload = (
        _invite()
        .replace(b"INVITE sip:bob@203.0.113.9 SIP/2.0", b"SIP/2.0 200 OK")
        .replace(b"To: <sip:bob@203.0.113.9>", b"To: <sip:bob@203.0.113.9>;tag=9")
    )
    result, router = _run("rewrite", payload)
    assert sip.parse(result.payload).start == sip.StatusLine(200, "OK")
    assert router.asked == [("10.0.1.2", 4000), ("10.0.1.2", 4001)]


def test_rtcp_gets_its_own_pinhole_and_a_rtcp_when_not_rtp_plus_one():
    router = Router()
    ports = iter([50010, 50020])
    result = rewrite(
        _invite(),
        mode="rewrite",
        private=PRIVATE,
        public=PUBLIC,
        map_media=lambda address: (router.asked.append(address), (PUBLIC[0], next(ports)))[1],
    )
    (audio,) = sdp.parse(sip.parse(result.payload).body).media
    assert audio.port == 50010
    assert sdp.attribute_values(audio, "rtcp") == ["50020"]
    assert Rewritten("SDP a=rtcp", "(none)", "rtcp:50020") in result.events
    assert PinholeOpened(("10.0.1.2", 4001), (PUBLIC[0], 50020)) in result.events


def test_a_given_a_rtcp_port_is_mapped_and_rewritten():
    body = BODY + b"a=rtcp:4009 IN IP4 10.0.1.2\r\n"
    result, router = _run("rewrite", _invite(body))
    (audio,) = sdp.parse(sip.parse(result.payload).body).media
    assert router.asked == [("10.0.1.2", 4000), ("10.0.1.2", 4009)]
    assert sdp.attribute_values(audio, "rtcp") == ["50002 IN IP4 203.0.113.5"]


def test_a_bad_a_rtcp_port_leaves_the_message_untouched():
    payload = _invite(BODY + b"a=rtcp:99999\r\n")
    result, router = _run("rewrite", payload)
    assert result.payload == payload
    assert isinstance(result.events[0], Untouched) and "a=rtcp" in result.events[0].reason
    assert router.asked == [], "no pinhole for a message that passes unchanged"


INBOUND_INVITE = (
    b"INVITE sip:alice@203.0.113.5:40001;transport=udp SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 198.51.100.9:5060;branch=z9hG4bK9\r\n"
    b"From: <sip:bob@198.51.100.9>;tag=2\r\nTo: <sip:alice@203.0.113.5>\r\n"
    b"Call-ID: in@198.51.100.9\r\nCSeq: 7 INVITE\r\nContent-Length: 0\r\n\r\n"
)


def test_an_inbound_request_gets_the_private_request_uri_back():
    result = rewrite_inbound(INBOUND_INVITE, public=PUBLIC, private=PRIVATE)
    message = sip.parse(result.payload)
    assert message.start == sip.RequestLine("INVITE", "sip:alice@10.0.1.2:5060;transport=udp")
    assert result.events == (
        Rewritten(
            "Request-URI",
            "sip:alice@203.0.113.5:40001;transport=udp",
            "sip:alice@10.0.1.2:5060;transport=udp",
        ),
    )
    assert message.get("To") == "<sip:alice@203.0.113.5>", "only the Request-URI"


def test_an_inbound_response_gets_the_private_top_via_back():
    response = (
        b"SIP/2.0 180 Ringing\r\n"
        b"Via: SIP/2.0/UDP 203.0.113.5:40001;branch=z9hG4bK1;rport=40001, "
        b"SIP/2.0/UDP 203.0.113.5:40001;branch=z9hG4bK0\r\n"
        b"From: <sip:alice@10.0.1.2>;tag=1\r\nTo: <sip:bob@203.0.113.9>;tag=9\r\n"
        b"Call-ID: c@10.0.1.2\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
    )
    result = rewrite_inbound(response, public=PUBLIC, private=PRIVATE)
    top, second = sip.parse(result.payload).values("Via")
    assert top == "SIP/2.0/UDP 10.0.1.2:5060;branch=z9hG4bK1;rport=40001"
    assert second.startswith("SIP/2.0/UDP 203.0.113.5:40001"), "only the top Via"


def test_inbound_for_another_endpoint_or_bad_sip_passes_byte_for_byte():
    other = INBOUND_INVITE.replace(b"40001", b"40002")
    assert rewrite_inbound(other, public=PUBLIC, private=PRIVATE).payload == other
    result = rewrite_inbound(b"\xff\r\n\r\n", public=PUBLIC, private=PRIVATE)
    assert result.payload == b"\xff\r\n\r\n"
    assert isinstance(result.events[0], Untouched)


def test_a_bad_a_rtcp_in_a_later_section_opens_no_pinhole_for_the_first():
    body = BODY + b"m=video 4100 RTP/AVP 96\r\na=rtcp:0\r\n"
    result, router = _run("rewrite", _invite(body))
    assert isinstance(result.events[0], Untouched)
    assert router.asked == []
