"""A REGISTER through the dataplane's rewriting ALG: the Contact's pinhole is an explicit
engine mapping of origin sip-alg that only the registrar gets through, living the
registration's expiry, renewed by the next REGISTER and deleted by Expires 0."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, TCP, UDP

from natlab.core.engine import Action, DropReason, StaticMap
from natlab.core.events import SipUntouched
from natlab.core.packets import Endpoint, Proto, parse
from natlab.router.sip_alg import ORIGIN, SipAlg
from natlab.sip import message as sip
from natlab.sip.alg import REGISTRATION_LIFETIME
from natlab.sip.headers import NameAddr, SipUri
from tests.unit.core.helpers import WAN, nat, tcp

PHONE = "10.0.0.2"
LINK = Endpoint(PHONE, 40000)  # the phone's TCP connection to the PBX
LISTEN = Endpoint(PHONE, 5060)  # the port its Contact names
PBX = Endpoint("198.51.100.1", 5060)
STRANGER = "198.51.100.2"


def _register(expires: int, transport: str = "tcp") -> bytes:
    return (
        "REGISTER sip:198.51.100.1 SIP/2.0\r\n"
        f"Via: SIP/2.0/{transport.upper()} {LINK};branch=z9hG4bK1;rport\r\n"
        "From: <sip:alice@198.51.100.1>;tag=1\r\nTo: <sip:alice@198.51.100.1>\r\n"
        f"Call-ID: r@{PHONE}\r\nCSeq: 1 REGISTER\r\n"
        f"Contact: <sip:alice@{LISTEN};transport={transport}>\r\n"
        f"Expires: {expires}\r\nContent-Length: 0\r\n\r\n"
    ).encode()


def _send(engine, alg: SipAlg, payload: bytes, now: float, transport: str = "tcp"):
    """The phone's REGISTER out through engine and ALG: (the Contact that left, events)."""
    ip = IP(src=LINK.address, dst=PBX.address)
    if transport == "tcp":
        syn = tcp(str(LINK), str(PBX), "S")  # a new connection each time, for the ALG too
        engine.outbound(syn, now)
        alg.outbound(syn, LINK, now)
        layer = TCP(sport=LINK.port, dport=PBX.port, flags="PA", seq=1001)
    else:
        layer = UDP(sport=LINK.port, dport=PBX.port)
    packet = parse(bytes(ip / layer / payload))
    assert engine.outbound(packet, now).action is Action.FORWARD_OUT
    events = alg.outbound(packet, LINK, now)
    message = sip.parse(bytes(IP(bytes(packet.data))[layer.__class__].payload))
    return SipUri.parse(NameAddr.parse(message.get("Contact") or "").uri), events


def test_the_contact_gets_a_pinhole_only_the_registrar_gets_through():
    engine = nat("port-restricted", ports="random", seed=3)
    contact, _ = _send(engine, SipAlg("rewrite", engine), _register(60), 1.0)
    pinhole = engine.explicit_mapping(Proto.TCP, LISTEN, 1.0)
    assert pinhole is not None
    assert (pinhole.origin, pinhole.lifetime, pinhole.permissions) == (ORIGIN, 60.0, (PBX.address,))
    assert (contact.host, contact.port) == pinhole.external == (WAN, 5060), "its own port if free"
    syn = tcp(f"{PBX.address}:41000", str(pinhole.external), "S")
    assert engine.inbound(syn, 2.0).action is Action.FORWARD_IN
    assert syn.dst == LISTEN
    stranger = tcp(f"{STRANGER}:41000", str(pinhole.external), "S")
    assert engine.inbound(stranger, 2.0).reason is DropReason.FILTERED_ADDRESS


def test_a_new_register_renews_it_and_expires_zero_deletes_it():
    engine = nat("port-restricted")
    alg = SipAlg("rewrite", engine)
    first, _ = _send(engine, alg, _register(60), 1.0)
    again, _ = _send(engine, alg, _register(60), 50.0)
    assert again == first
    assert engine.explicit_mapping(Proto.TCP, LISTEN, 100.0) is not None, "renewed at 50 s"
    assert engine.explicit_mapping(Proto.TCP, LISTEN, 110.0) is None, "then lived its 60 s"
    _send(engine, alg, _register(60), 120.0)
    last, _ = _send(engine, alg, _register(0), 130.0)
    assert (last.host, last.port) == (WAN, 5060), "the registrar finds the binding it removes"
    assert engine.explicit_mapping(Proto.TCP, LISTEN, 130.0) is None


def test_udp_from_another_port_gets_a_udp_pinhole_and_the_broken_alg_none():
    engine = nat("port-restricted")
    contact, _ = _send(engine, SipAlg("rewrite", engine), _register(30, "udp"), 1.0, "udp")
    assert engine.explicit_mapping(Proto.UDP, LISTEN, 1.0) is not None
    assert (contact.host, contact.port) == (WAN, 5060)
    broken = nat("port-restricted")
    contact, _ = _send(broken, SipAlg("broken", broken), _register(30, "udp"), 1.0, "udp")
    assert broken.explicit_mapping(Proto.UDP, LISTEN, 1.0) is None
    assert (contact.host, contact.port) == LISTEN


def test_a_port_forward_of_the_contact_is_named_and_no_pinhole_made():
    forward = StaticMap(Proto.TCP, (8060, 8060), PHONE, (5060, 5060))
    engine = nat("port-restricted", static_maps=(forward,))
    contact, _ = _send(engine, SipAlg("rewrite", engine), _register(60), 1.0)
    assert (contact.host, contact.port) == (WAN, 8060)
    assert engine.explicit_mapping(Proto.TCP, LISTEN, 1.0) is None


def test_no_port_left_leaves_the_contact_and_says_why():
    engine = nat("port-restricted", max_mappings_per_host=1)
    contact, events = _send(engine, SipAlg("rewrite", engine), _register(60), 1.0)
    assert (contact.host, contact.port) == LISTEN
    (untouched,) = [e for e in events if isinstance(e, SipUntouched)]
    assert "quota" in untouched.detail and "Contact stays" in untouched.detail


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(0, 7200), min_size=1, max_size=6))
def test_the_pinhole_lives_what_the_last_register_asked_within_the_bound(expiries):
    engine = nat("port-restricted")
    alg = SipAlg("rewrite", engine)
    now = 0.0
    for expires in expiries:
        now += 1.0
        _send(engine, alg, _register(expires), now)
    pinhole = engine.explicit_mapping(Proto.TCP, LISTEN, now)
    last = expiries[-1]
    if last == 0:
        assert pinhole is None
    else:
        assert pinhole is not None
        assert pinhole.expires_at == now + min(last, REGISTRATION_LIFETIME)
