"""The rewriting ALG's signalling pinhole for a REGISTER's Contact (Linux's nf_conntrack_sip
with sip_direct_signalling=1): which Contacts get one, for which transport and how long."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from natlab.sip import message as sip
from natlab.sip.alg import REGISTRATION_LIFETIME, Rewritten, rewrite
from natlab.sip.headers import NameAddr, SipUri, Via

PHONE = "10.0.1.2"
SENDER = (PHONE, 40000)  # a TCP connection's ephemeral port
PUBLIC = ("203.0.113.5", 41000)  # that connection's mapping
PINHOLE = ("203.0.113.5", 5060)


def _register(contact: str, expires: str | None = "60", method: str = "REGISTER") -> bytes:
    return (
        f"{method} sip:203.0.113.9 SIP/2.0\r\n"
        f"Via: SIP/2.0/TCP {PHONE}:40000;branch=z9hG4bK1;rport\r\n"
        "From: <sip:alice@203.0.113.9>;tag=1\r\nTo: <sip:alice@203.0.113.9>\r\n"
        f"Call-ID: r@{PHONE}\r\nCSeq: 1 {method}\r\nContact: {contact}\r\n"
        + ("" if expires is None else f"Expires: {expires}\r\n")
        + "Content-Length: 0\r\n\r\n"
    ).encode()


class Router:
    """Opens (or refuses) registration pinholes and remembers what it was asked."""

    def __init__(self, answer: tuple[str, int] | None = PINHOLE) -> None:
        self.answer = answer
        self.asked: list[tuple[str, tuple[str, int], float]] = []

    def map_contact(
        self, transport: str, private: tuple[str, int], lifetime: float
    ) -> tuple[str, int] | None:
        self.asked.append((transport, private, lifetime))
        return self.answer


def _run(payload: bytes, mode: str = "rewrite", router: Router | None = None):
    router = router or Router()
    result = rewrite(
        payload,
        mode=mode,  # type: ignore[arg-type]
        private=SENDER,
        public=PUBLIC,
        map_media=lambda address: address,
        map_contact=router.map_contact,
    )
    return sip.parse(result.payload), result, router


def _contact_uri(message: sip.SipMessage) -> str:
    return str(SipUri.parse(NameAddr.parse(message.get("Contact") or "").uri))


def test_a_tcp_contact_on_the_listening_port_gets_a_pinhole_and_names_it():
    message, result, router = _run(_register(f"<sip:alice@{PHONE}:5060;transport=tcp>"))
    assert router.asked == [("tcp", (PHONE, 5060), 60.0)]
    assert _contact_uri(message) == "sip:alice@203.0.113.5:5060;transport=tcp"
    assert Via.parse(message.values("Via")[0]).port == 41000, "the sender's own, as before"
    (contact,) = [e for e in result.events if isinstance(e, Rewritten) and e.field == "Contact"]
    assert contact.old == f"<sip:alice@{PHONE}:5060;transport=tcp>"


def test_udp_from_another_port_and_no_transport_is_udp():
    message, _, router = _run(_register(f"<sip:alice@{PHONE}>"))
    assert router.asked == [("udp", (PHONE, 5060), 60.0)]
    assert _contact_uri(message) == "sip:alice@203.0.113.5:5060"


def test_the_contact_s_expires_wins_over_the_header_and_none_asked_is_the_bound():
    _, _, router = _run(_register(f"<sip:alice@{PHONE}:5060>;expires=30", expires="90"))
    _, _, default = _run(_register(f"<sip:alice@{PHONE}:5060>", expires=None))
    _, _, huge = _run(_register(f"<sip:alice@{PHONE}:5060>", expires="99999"))
    _, _, bad = _run(_register(f"<sip:alice@{PHONE}:5060>", expires="soon"))
    assert [r.asked[0][2] for r in (router, default, huge, bad)] == [
        30.0,
        REGISTRATION_LIFETIME,
        REGISTRATION_LIFETIME,
        REGISTRATION_LIFETIME,
    ]


def test_expires_zero_asks_to_close_and_names_the_pinhole_it_had():
    message, _, router = _run(_register(f"<sip:alice@{PHONE}:5060;transport=tcp>", expires="0"))
    assert router.asked == [("tcp", (PHONE, 5060), 0.0)]
    assert _contact_uri(message) == "sip:alice@203.0.113.5:5060;transport=tcp"


def test_no_pinhole_leaves_the_contact():
    message, result, _ = _run(_register(f"<sip:alice@{PHONE}:5060>"), router=Router(None))
    assert _contact_uri(message) == f"sip:alice@{PHONE}:5060"
    assert "Contact" not in {e.field for e in result.events if isinstance(e, Rewritten)}


def test_what_gets_no_pinhole():
    cases = {
        "an INVITE": _register(f"<sip:alice@{PHONE}:5060>", method="INVITE"),
        "TLS": _register(f"<sip:alice@{PHONE}:5061;transport=tls>"),
        "another host": _register("<sip:alice@10.0.1.3:5060>"),
        "the sender's own endpoint": _register(f"<sip:alice@{PHONE}:40000>"),
        "a star": _register("*", expires="0"),
    }
    for what, payload in cases.items():
        _, _, router = _run(payload)
        assert router.asked == [], what
    _, _, broken = _run(_register(f"<sip:alice@{PHONE}:5060>"), mode="broken")
    assert broken.asked == [], "the broken ALG keeps its ways"


def test_only_the_first_contact_gets_one():
    contacts = f"<sip:alice@{PHONE}:5060>, <sip:alice@{PHONE}:5070>"
    message, _, router = _run(_register(contacts))
    assert router.asked == [("udp", (PHONE, 5060), 60.0)]
    second = NameAddr.parse(message.values("Contact")[1]).uri
    assert second == f"sip:alice@{PHONE}:5070"


@settings(max_examples=300, deadline=None)
@given(
    port=st.integers(1, 65535),
    transport=st.sampled_from(["", ";transport=tcp", ";transport=UDP", ";transport=tls"]),
    param=st.one_of(st.none(), st.text("0123456789x", max_size=12)),
    header=st.one_of(st.none(), st.text("0123456789 ", max_size=12)),
    answer=st.one_of(st.none(), st.tuples(st.just("203.0.113.5"), st.integers(1, 65535))),
)
def test_any_register_asks_at_most_once_within_the_bound_and_names_the_answer(
    port, transport, param, header, answer
):
    contact = f"<sip:alice@{PHONE}:{port}{transport}>" + (
        "" if param is None else f";expires={param}"
    )
    message, _, router = _run(_register(contact, expires=header), router=Router(answer))
    wanted = port != SENDER[1] and not transport.endswith("tls")
    assert len(router.asked) == int(wanted)
    uri = _contact_uri(message)
    if wanted:
        (kind, private, lifetime) = router.asked[0]
        assert kind == ("tcp" if "tcp" in transport else "udp")
        assert private == (PHONE, port)
        assert 0 <= lifetime <= REGISTRATION_LIFETIME
        if param is not None and param.isdigit() and len(param) <= 10:
            assert lifetime == min(int(param), REGISTRATION_LIFETIME)
    if wanted and answer is not None:
        assert uri == f"sip:alice@{answer[0]}:{answer[1]}{transport}"
    elif port == SENDER[1]:
        assert uri == f"sip:alice@{PUBLIC[0]}:{PUBLIC[1]}{transport}"
    else:
        assert uri == f"sip:alice@{PHONE}:{port}{transport}"
