"""A NAT-aware PBX's question: is this phone behind NAT? And the `relay: nat` policy it drives."""

from __future__ import annotations

from dataclasses import replace
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any, cast

import pytest
from hypothesis import given
from hypothesis import strategies as st

from natlab.endpoints import sip_dialogs as dialogs
from natlab.endpoints.nat_detection import NatEvidence, behind_nat
from natlab.endpoints.pbx import Flow, Pbx, PbxConfig, Registration, parse_policy
from natlab.endpoints.sdp_offer import MediaOffer
from natlab.sip import alg
from natlab.sip import message as sip
from natlab.sip.headers import SipUri
from natlab.sip.message import SipMessage
from tests.unit.endpoints.test_sip_pbx import LOOPBACK, SipPeer, control, run, running_pbx

PRIVATE = st.builds(
    lambda b, c, d: f"192.168.{b}.{c}" if d % 2 else f"10.{b}.{c}.{d}",
    st.integers(0, 255),
    st.integers(1, 254),
    st.integers(1, 254),
)
PUBLIC = st.builds(lambda d: f"203.0.113.{d}", st.integers(1, 254))
PORTS = st.integers(1, 65535)


def invite(contact: str, via: str, media: str | None, port: int = 5060) -> SipMessage:
    """An INVITE whose Contact, top Via and SDP c= name those hosts."""
    body = MediaOffer(rtp=(media, 4000)).to_sdp(1) if media else b""
    return dialogs.request(
        "INVITE",
        "sip:phone-c@203.0.113.10",
        via_value=dialogs.via("udp", via, port),
        from_value="<sip:phone-b@203.0.113.10>;tag=x",
        to_value="<sip:phone-c@203.0.113.10>",
        call_id="c-1",
        cseq=1,
        headers=(("Contact", f"<sip:phone-b@{contact}:{port}>"),),
        body=body,
        content_type="application/sdp" if body else None,
    )


@given(PRIVATE, PUBLIC, PORTS)
def test_a_private_contact_seen_from_a_public_source_is_behind_nat(
    private: str, public: str, port: int
) -> None:
    found = behind_nat(invite(private, private, private, port), public)
    assert found == NatEvidence("Contact", private, public)
    assert str(found) == f"Contact {private}, seen from {public}"


@given(PRIVATE, PUBLIC, st.sampled_from(["Via", "SDP c="]))
def test_each_field_alone_gives_the_nat_away(private: str, public: str, field: str) -> None:
    via, media = (private, public) if field == "Via" else (public, private)
    assert behind_nat(invite(public, via, media), public) == NatEvidence(field, private, public)


@given(st.one_of(PRIVATE, PUBLIC), PORTS)
def test_a_phone_that_writes_where_it_is_seen_from_is_not_behind_nat(host: str, port: int) -> None:
    assert behind_nat(invite(host, host, host, port), host) is None


@pytest.mark.parametrize("contact", ["phone-b.example", "*", "not a uri"])
def test_hostnames_wildcards_and_garbage_prove_nothing(contact: str) -> None:
    message = invite("203.0.113.3", "203.0.113.3", None)
    headers = tuple(
        (name, contact if name == "Contact" else value) for name, value in message.headers
    )
    assert behind_nat(replace(message, headers=headers), "203.0.113.3") is None


def test_a_held_call_or_ice_placeholder_address_proves_nothing() -> None:
    assert behind_nat(invite("203.0.113.3", "203.0.113.3", "0.0.0.0"), "203.0.113.3") is None


@given(PRIVATE, st.sampled_from(["rewrite", "broken"]), PORTS, PORTS)
def test_an_alg_hides_the_nat_from_the_pbx_in_either_mode(
    private: str, mode: str, port: int, public_port: int
) -> None:
    """The demo's lesson: through an ALG the PBX sees nothing to relay for, broken or not."""
    public = ("203.0.113.3", public_port)
    passed = alg.rewrite(
        invite(private, private, private, port).to_bytes(),
        mode=mode,  # type: ignore[arg-type]
        private=(private, port),
        public=public,
        map_media=lambda media: (public[0], media[1] + 1),
    )
    assert behind_nat(sip.parse(passed.payload), public[0]) is None
    assert behind_nat(invite(private, private, private, port), public[0]) is not None  # no ALG


# -- the relay: nat policy ----------------------------------------------------------------------


def pbx(policy: str, **phones: tuple[str, NatEvidence | None]) -> Pbx:
    config = PbxConfig(name="pbx", address=IPv4Address("203.0.113.10"), control=Path("p.sock"))
    config.relay = parse_policy(policy)
    found = Pbx(config)
    for key, (source, nat) in phones.items():
        name = key.replace("_", "-")
        contact = SipUri.parse(f"sip:{name}@{nat.written if nat else source}:5060")
        found.registrations[name] = Registration(
            name, cast(Flow, None), "udp", (source, 5060), contact, "203.0.113.10", nat=nat
        )
    return found


NATTED = NatEvidence("Contact", "192.168.2.2", "203.0.113.3")
PHONES = {"phone_b": ("203.0.113.3", NATTED), "phone_c": ("203.0.113.20", None)}


def test_nat_relays_a_call_with_a_phone_behind_nat_and_says_why() -> None:
    exchange = pbx("nat", **PHONES, phone_a=("203.0.113.2", None))
    why = "phone-b is behind NAT: Contact 192.168.2.2, seen from 203.0.113.3"
    assert exchange.relay_reason("host", "phone-c", "phone-b") == why
    assert exchange.relay_reason("host", "phone-b", "phone-c") == why
    assert exchange.relay_reason("ice", "phone-a", "phone-c") is None
    assert exchange.relayed("relay", "phone-a", "phone-c")  # asked for: relayed whatever
    story = exchange.media_story(None, False, "phone-a", "phone-c")
    assert story.startswith("the PBX did not relay the media: neither phone-a nor phone-c looked")


@pytest.mark.parametrize("policy", ["none", "phone-c"])
def test_other_policies_ignore_the_nat(policy: str) -> None:
    exchange = pbx(policy, **PHONES)
    assert exchange.relay_reason("host", "phone-b", "phone-a") is None
    assert exchange.media_story(None, False, "phone-b", "phone-a") == ""


def test_the_relay_policy_nat_is_a_keyword_not_a_phone() -> None:
    assert parse_policy("nat") == "nat"
    assert parse_policy("nat,phone-b") == frozenset({"nat", "phone-b"})


# -- the PBX on loopback: what it relays, as the phones see it ----------------------------------


class SeenAsIs(SipPeer):
    """A peer whose messages name the address they come from: no NAT, or an ALG that hid it."""

    def request(self, method: str, user: str, call_id: str = "c1", **extra: Any) -> SipMessage:
        message = super().request(method, user, call_id, **extra)
        return sip.parse(message.to_bytes().replace(b"10.9.9.9", LOOPBACK.encode()))


def offer(peer: SipPeer, callee: str, call_id: str, caller: str) -> SipMessage:
    body = MediaOffer(rtp=(LOOPBACK, 4000)).to_sdp(1)
    return peer.request(
        "INVITE", callee, call_id, caller=caller, body=body, content_type="application/sdp"
    )


def test_the_pbx_relays_for_the_phone_behind_nat_and_not_between_phones_it_sees_as_is(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        async with running_pbx(tmp_path, relay="nat") as exchange:
            natted = await SipPeer.open(exchange)  # writes 10.9.9.9, seen from 127.0.0.1
            plain, other = await SeenAsIs.open(exchange), await SeenAsIs.open(exchange)
            await natted.register("phone-b")
            await plain.register("phone-c")
            await other.register("phone-a")

            plain.send(offer(plain, "phone-b", "to-natted", "phone-c"))
            assert dialogs.status(await plain.receive()) == 100
            relayed = MediaOffer.from_sdp((await natted.receive()).body)
            assert relayed.relay and relayed.rtp != (LOOPBACK, 4000)

            other.send(offer(other, "phone-c", "between-plain", "phone-a"))
            assert dialogs.status(await other.receive()) == 100
            direct = MediaOffer.from_sdp((await plain.receive()).body)
            assert not direct.relay and direct.rtp == (LOOPBACK, 4000)

            calls = (await control(exchange, {"op": "calls"}))["calls"]
            assert calls["to-natted"]["media"] == (
                "the PBX relayed the media: phone-b is behind NAT: Contact 10.9.9.9, "
                "seen from 127.0.0.1"
            )
            assert "relay" in calls["to-natted"] and "relay" not in calls["between-plain"]
            assert calls["between-plain"]["media"].startswith(
                "the PBX did not relay the media: neither phone-a nor phone-c looked behind NAT"
            )

    run(scenario)
