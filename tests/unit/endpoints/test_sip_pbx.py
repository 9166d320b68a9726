"""The PBX and the phones over SIP on loopback: registration with digest, calls, strangers.

The PBX runs in-process on 127.0.0.1; phones are played by the phone's own
Registrar, or by a UDP socket speaking SIP built with natlab.endpoints.sip_dialogs
(a peer that does exactly, and only, what the test says). The PBX's expiry
clock and its retransmission waits are turned so that nothing waits for long.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import replace
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

import pytest

from natlab.endpoints import pbx as pbx_module
from natlab.endpoints import phone as phone_module
from natlab.endpoints import sip_dialogs as dialogs
from natlab.endpoints.control import ask
from natlab.endpoints.pbx import Pbx, PbxConfig
from natlab.endpoints.phone import Phone, PhoneConfig, Registrar
from natlab.endpoints.sdp_offer import MediaOffer
from natlab.endpoints.sip_transport import DatagramInbox, Endpoint, Garbled, parse_datagram
from natlab.sip import digest
from natlab.sip.message import SipMessage

LOOPBACK = "127.0.0.1"
TIMEOUT = 5.0  # a bound on every wait: the loopback answers in microseconds


def run(test: Callable[..., Coroutine[Any, Any, None]], *args: Any) -> None:
    asyncio.run(asyncio.wait_for(test(*args), 20))


@asynccontextmanager
async def running_pbx(tmp_path: Path, **options: Any) -> AsyncIterator[Pbx]:
    config = PbxConfig("pbx", IPv4Address(LOOPBACK), tmp_path / "pbx.sock", port=0, **options)
    pbx = Pbx(config)
    servers = await pbx.start()
    try:
        yield pbx
    finally:
        for server in servers:
            server.close()


class SipPeer:
    """A SIP endpoint played by the test: one UDP socket, requests built by hand."""

    def __init__(self, transport: asyncio.DatagramTransport, inbox: DatagramInbox) -> None:
        self.transport, self.inbox = transport, inbox
        self.cseq = 0

    @classmethod
    async def open(cls, pbx: Pbx) -> SipPeer:
        transport, inbox = await asyncio.get_running_loop().create_datagram_endpoint(
            DatagramInbox, local_addr=(LOOPBACK, 0), remote_addr=pbx.udp_address
        )
        return cls(transport, inbox)

    @property
    def address(self) -> Endpoint:
        return self.transport.get_extra_info("sockname")[:2]

    def request(self, method: str, user: str, call_id: str = "c1", **extra: Any) -> SipMessage:
        self.cseq += 1
        return dialogs.request(
            method,
            f"sip:{user}@{LOOPBACK}",
            via_value=dialogs.via("udp", "10.9.9.9", 5060),  # a private sent-by, as behind NAT
            from_value=f"<sip:{extra.pop('caller', user)}@{LOOPBACK}>;tag=t{self.cseq}",
            to_value=f"<sip:{user}@{LOOPBACK}>",
            call_id=call_id,
            cseq=self.cseq,
            headers=(("Contact", "<sip:x@10.9.9.9:5060>"), *extra.pop("headers", ())),
            **extra,
        )

    def send(self, message: SipMessage | bytes) -> None:
        self.transport.sendto(message if isinstance(message, bytes) else message.to_bytes())

    async def receive(self) -> SipMessage:
        arrival, _ = await asyncio.wait_for(self.inbox.queue.get(), TIMEOUT)
        assert isinstance(arrival, SipMessage), arrival
        return arrival

    async def register(self, user: str, password: str = dialogs.DEFAULT_PASSWORD) -> SipMessage:
        self.send(self.request("REGISTER", user))
        challenge = await self.receive()
        assert dialogs.status(challenge) == 401
        parsed = digest.parse_challenge(challenge.get("WWW-Authenticate") or "")
        credentials = digest.answer(
            parsed,
            username=user,
            password=password,
            method="REGISTER",
            uri=f"sip:{user}@{LOOPBACK}",
            cnonce="0a4f113b",
        )
        authorization = (("Authorization", credentials.to_header()),)
        self.send(self.request("REGISTER", user, headers=authorization))
        return await self.receive()


async def control(pbx: Pbx, request: dict) -> dict:
    """The PBX's control socket, asked from a thread: the PBX serves on this loop."""
    return await asyncio.to_thread(ask, pbx.config.control, request)


def reason(message: SipMessage) -> str:
    return message.start.reason  # type: ignore[union-attr]


def test_a_register_is_challenged_then_binds_the_user_to_the_source_for_its_expiry(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        async with running_pbx(tmp_path, passwords={"phone-b": "secret"}) as pbx:
            phone_b = await SipPeer.open(pbx)
            ok = await phone_b.register("phone-b", "secret")
            assert (dialogs.status(ok), ok.get("Expires")) == (200, "60")
            via = dialogs.top_via(ok)  # RFC 3581: where the PBX saw the REGISTER come from
            assert (via.received, via.rport) == (LOOPBACK, phone_b.address[1])
            seen = (await control(pbx, {"op": "registrations"}))["registrations"]["phone-b"]
            assert seen["transport"] == "udp"
            assert seen["address"] == f"{LOOPBACK}:{phone_b.address[1]}"
            assert 59 < seen["expires_in"] <= 60

            # A wrong password is refused; the registration that was there stays.
            wrong = await SipPeer.open(pbx)
            refused = await wrong.register("phone-b", "guess")
            assert dialogs.status(refused) == 403 and "wrong password" in reason(refused)
            assert "phone-b" in (await control(pbx, {"op": "registrations"}))["registrations"]

            # Past its expiry without a new REGISTER the PBX forgets it.
            pbx.clock = lambda: time.monotonic() + 61
            assert (await control(pbx, {"op": "registrations"}))["registrations"] == {}

    run(scenario)


@pytest.mark.parametrize(
    ("callee", "code", "words"),
    [("nobody", 404, "nobody is no user here, not registered"), ("phone-x", 480, "not registered")],
)
def test_a_call_to_an_unknown_user_is_404_and_to_one_not_registered_480(
    tmp_path: Path, callee: str, code: int, words: str
) -> None:
    async def scenario() -> None:
        async with running_pbx(tmp_path, passwords={"phone-x": "x"}) as pbx:
            caller = await SipPeer.open(pbx)
            await caller.register("phone-c")
            caller.send(caller.request("INVITE", callee, caller="phone-c"))
            answer = await caller.receive()
            assert dialogs.status(answer) == code and words in reason(answer)
            assert dialogs.tag_of(answer, "To") is not None  # a final answer is tagged

    run(scenario)


def test_an_invite_is_sent_again_until_the_callee_answers_and_the_caller_told_if_never(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pbx_module, "RING_WAITS", (0.01, 0.02, 0.04))

    async def scenario() -> None:
        async with running_pbx(tmp_path) as pbx:
            caller, callee = await SipPeer.open(pbx), await SipPeer.open(pbx)
            await caller.register("phone-c")
            await callee.register("phone-b")

            # A silent callee (its NAT dropped every INVITE, say): three INVITEs, then a 408.
            caller.send(caller.request("INVITE", "phone-b", "lost", caller="phone-c"))
            assert dialogs.status(await caller.receive()) == 100
            got = [await callee.receive() for _ in pbx_module.RING_WAITS]
            assert {(m.start.method, m.get("Call-ID")) for m in got} == {("INVITE", "lost")}  # type: ignore[union-attr]
            top = dialogs.top_via(got[0])
            assert top.host == LOOPBACK and (top.branch or "").startswith("z9hG4bK")
            assert len(got[0].values("Record-Route")) == 2
            timeout = await caller.receive()
            assert dialogs.status(timeout) == 408
            assert reason(timeout) == (
                f"Request Timeout (phone-b did not answer 3 invites sent over udp to "
                f"{LOOPBACK}:{callee.address[1]}, where it registered)"
            )
            calls = (await control(pbx, {"op": "calls"}))["calls"]
            assert (calls["lost"]["ringing"], calls["lost"]["ended"]) == (False, True)

            # A callee that rings at once gets the INVITE once, and the caller hears it ring.
            caller.send(caller.request("INVITE", "phone-b", "heard", caller="phone-c"))
            assert dialogs.status(await caller.receive()) == 100
            invite = await callee.receive()
            callee.send(dialogs.response(invite, 180, "Ringing", to_tag="b1"))
            ringing = await caller.receive()
            assert (dialogs.status(ringing), ringing.get("Call-ID")) == (180, "heard")
            assert len(ringing.values("Via")) == 1  # the PBX's own Via is gone
            await asyncio.gather(*pbx._tasks)  # the retransmission timer has run out
            assert callee.inbox.queue.empty() and caller.inbox.queue.empty()

    run(scenario)


def test_a_phone_without_keepalives_only_registers_again_before_expires(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pbx_module, "EXPIRES", 1)
    monkeypatch.setattr(phone_module, "REFRESH", 0.05)  # every 50 ms

    async def scenario(keepalive: float) -> list[str]:
        async with running_pbx(tmp_path) as pbx:
            heard: list[str] = []
            request = pbx.request

            async def recording(message: SipMessage, flow: Any, certificate: Any) -> None:
                heard.append(message.start.method)  # type: ignore[union-attr]
                await request(message, flow, certificate)

            pbx.request = recording  # type: ignore[method-assign]
            config = PhoneConfig(
                "phone-b",
                IPv4Address(LOOPBACK),
                tmp_path / "phone.sock",
                pbx_udp=pbx.udp_address,
                transport="udp",
                keepalive=keepalive,
            )
            registrar = Registrar(config, lambda message: None)
            status = await registrar.register()
            try:
                assert status.registered and status.transport == "udp", status
                first = pbx.registrations["phone-b"]
                while pbx.registrations["phone-b"] is first:  # a refreshing REGISTER came
                    await asyncio.sleep(0.01)
                again = pbx.registrations["phone-b"]
                assert (again.transport, again.address) == ("udp", first.address)
                assert again.expires_at is not None and first.expires_at is not None
                assert again.expires_at > first.expires_at
                assert registrar.status().since == status.since  # the same registration
            finally:
                await registrar.stop()
            return heard

    assert set(asyncio.run(asyncio.wait_for(scenario(0), 20))) == {"REGISTER"}
    assert "OPTIONS" in asyncio.run(asyncio.wait_for(scenario(0.05), 20))


@pytest.mark.parametrize("transport", ["udp", "tcp"])
@pytest.mark.parametrize("mode", ["host", "relay"])
def test_two_phones_call_through_the_pbx_and_exchange_their_rtp_counts(
    tmp_path: Path, transport: str, mode: str
) -> None:
    async def scenario() -> None:
        async with running_pbx(tmp_path) as pbx:
            phones = []
            for name in ("phone-a", "phone-b"):
                config = PhoneConfig(
                    name,
                    IPv4Address(LOOPBACK),
                    tmp_path / f"{name}.sock",
                    pbx=(LOOPBACK, pbx.port),
                    pbx_udp=pbx.udp_address,
                    transport=transport,
                )
                phone = Phone(config)
                assert (await phone.registrar.register()).registered
                phones.append(phone)
            try:
                report = await phones[0].call("phone-b", 0.3, mode)
                assert (report.verdict, report.error) == ("two-way", None), report
                assert report.peer_rtp is not None and report.peer_rtp.received > 0
                remote = report.selected_pair.remote  # type: ignore[union-attr]
                assert remote.type == ("relay" if mode == "relay" else "host")
                for _ in range(100):
                    if phones[1].reports:
                        break
                    await asyncio.sleep(0.01)
                [theirs] = phones[1].reports
                assert (theirs.call, theirs.caller, theirs.mode) == (report.call, "phone-a", mode)
                assert theirs.peer_rtp is not None and theirs.peer_rtp.sent == report.rtp.sent
            finally:
                for phone in phones:
                    await phone.registrar.stop()

    run(scenario)


def test_a_phone_rings_at_every_copy_of_an_invite_but_takes_the_call_once(
    tmp_path: Path,
) -> None:
    phone = Phone(PhoneConfig("phone-b", IPv4Address(LOOPBACK), tmp_path / "phone.sock"))
    sent: list[SipMessage] = []
    phone.registrar.send = sent.append  # type: ignore[method-assign]
    invite = dialogs.request(
        "INVITE",
        "sip:phone-b@127.0.0.1",
        via_value=dialogs.via("udp", LOOPBACK, 5060),
        from_value="<sip:phone-a@127.0.0.1>;tag=a",
        to_value="<sip:phone-b@127.0.0.1>",
        call_id="c1",
        cseq=1,
    )
    phone.inboxes["c1"] = asyncio.Queue()  # the call is already being answered
    phone.answers["c1"] = ringing = dialogs.response(invite, 180, "Ringing", to_tag="b")
    phone.dispatch(invite)
    assert sent == [ringing]  # the same answer again
    assert not phone._tasks  # no second answer


@pytest.mark.parametrize(
    ("request_", "complaint"),
    [
        ({"transport": "sctp"}, "transport must be one of"),
        ({"transport": "udp", "keepalive": -1}, "keepalive must be from 0"),
        ({"keepalive": "often"}, "keepalive must be a number"),
    ],
)
def test_a_register_request_with_a_bad_transport_or_keepalive_is_refused(
    tmp_path: Path, request_: dict, complaint: str
) -> None:
    registrar = Registrar(
        PhoneConfig("phone-b", IPv4Address(LOOPBACK), tmp_path / "p.sock"), lambda m: None
    )
    with pytest.raises(ValueError, match=complaint):
        asyncio.run(registrar.register(**request_))
    assert (registrar.status().transport, registrar.keepalive) == ("tcp", 0.5)  # unchanged


# -- strangers: never an answer to a response, and only so many errors -------------------------
#
# One forged datagram whose source was the router's own address once made the PBX answer
# itself through the router's hairpin for ever. In SIP a response is never answered; an
# error to a stranger is rate-limited. The PBX takes datagrams in order, so the first
# answer after a datagram that must go unanswered is the answer to the next one sent.


async def refusals(peer: SipPeer, count: int) -> list[str | None]:
    """The Call-ID of the next `count` answers (the tests tag each request with one)."""
    got = []
    for _ in range(count):
        message = await peer.receive()
        assert (dialogs.status(message) or 0) >= 400, message
        got.append(message.get("Call-ID"))
    return got


async def processed(pbx: Pbx, count: int) -> None:
    """Let the loop run until the PBX has taken `count` datagrams (the clock is the test's)."""
    while pbx.counters["datagrams"] < count:
        await asyncio.sleep(0)


def test_a_response_from_a_stranger_is_never_answered(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running_pbx(tmp_path) as pbx:
            stranger = await SipPeer.open(pbx)
            invite = stranger.request("INVITE", "phone-b", "c0")
            stranger.send(dialogs.response(invite, 403, "Forbidden (the PBX's own, come back)"))
            stranger.send(stranger.request("INVITE", "phone-b", "after"))
            assert await refusals(stranger, 1) == ["after"]  # nothing came for the response
            counters = (await control(pbx, {"op": "counters"}))["counters"]
            assert {k: counters[k] for k in ("datagrams", "errors_sent", "unanswered_errors")} == {
                "datagrams": 2,
                "errors_sent": 1,
                "unanswered_errors": 1,
            }

    run(scenario)


def test_the_pbx_answering_its_own_hairpinned_error_stops_at_once(tmp_path: Path) -> None:
    """A mirror plays the router's hairpin: whatever the PBX sends it, the PBX gets back."""

    class Mirror(DatagramInbox):
        def datagram_received(self, data: bytes, addr: tuple) -> None:
            super().datagram_received(data, addr)
            assert self.transport is not None
            self.transport.sendto(data, addr)

    async def scenario() -> None:
        async with running_pbx(tmp_path) as pbx:
            transport, mirror = await asyncio.get_running_loop().create_datagram_endpoint(
                Mirror, local_addr=("127.0.0.1", 0), remote_addr=pbx.udp_address
            )
            try:
                peer = SipPeer(transport, mirror)
                transport.sendto(peer.request("INVITE", "phone-b", "forged").to_bytes())
                message, _ = await asyncio.wait_for(mirror.queue.get(), TIMEOUT)
                assert isinstance(message, SipMessage) and dialogs.status(message) == 403
                probe = await SipPeer.open(pbx)
                probe.send(probe.request("INVITE", "phone-b", "probe"))
                assert await refusals(probe, 1) == ["probe"]
                assert pbx.counters["unanswered_errors"] == 1  # the mirrored 403
                assert pbx.counters["errors_sent"] == 2  # the forged INVITE's and the probe's
                assert mirror.queue.empty()
            finally:
                transport.close()

    run(scenario)


def test_a_stranger_gets_a_burst_of_errors_then_one_a_second(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running_pbx(tmp_path) as pbx:
            now = [1000.0]
            pbx.clock = lambda: now[0]
            stranger = await SipPeer.open(pbx)
            for n in range(12):
                stranger.send(stranger.request("INVITE", "phone-b", f"n{n}"))
            await processed(pbx, 12)
            now[0] += 1.0  # one token back, and only one
            stranger.send(stranger.request("INVITE", "phone-b", "later"))
            stranger.send(stranger.request("INVITE", "phone-b", "too-soon"))
            await processed(pbx, 14)
            now[0] += 3.0
            stranger.send(stranger.request("INVITE", "phone-b", "last"))
            burst = pbx_module.STRANGER_BURST
            assert await refusals(stranger, burst + 2) == [
                *(f"n{n}" for n in range(burst)),
                "later",
                "last",
            ]
            counters = (await control(pbx, {"op": "counters"}))["counters"]
            assert counters["datagrams"] == 15
            assert counters["errors_sent"] == burst + 2
            assert counters["unanswered_throttled"] == 15 - burst - 2

    run(scenario)


def test_what_is_not_sip_is_answered_400_when_it_can_be_and_never_stops_the_pbx(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        async with running_pbx(tmp_path) as pbx:
            phone = await SipPeer.open(pbx)
            await phone.register("phone-b")
            good = phone.request("OPTIONS", "phone-b", "bad-length").to_bytes()
            phone.send(good.replace(b"Content-Length: 0", b"Content-Length: 9"))
            answer = await phone.receive()
            assert dialogs.status(answer) == 400 and "Content-Length" in reason(answer)
            phone.send(b"\xff\xfe not SIP at all")  # nothing to answer: dropped, counted
            phone.send(phone.request("OPTIONS", "phone-b", "still-here"))
            assert (await phone.receive()).get("Call-ID") == "still-here"
            assert pbx.counters["malformed"] == 2 and pbx.counters["malformed_answered"] == 1

    run(scenario)


def test_garbled_keeps_the_bytes_and_the_reason() -> None:
    arrival = parse_datagram(b"junk")
    assert isinstance(arrival, Garbled) and arrival.data == b"junk" and arrival.reason


def phone_config(tmp_path: Path, pbx: Pbx, name: str, **options: Any) -> PhoneConfig:
    return PhoneConfig(
        name,
        IPv4Address(LOOPBACK),
        tmp_path / f"{name}.sock",
        pbx=(LOOPBACK, pbx.port),
        pbx_udp=pbx.udp_address,
        **options,
    )


def test_a_cancel_before_the_answer_ends_the_invite_with_487_and_a_busy_phone_says_486(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def slow(self: Any) -> None:
        await asyncio.sleep(2)  # the callee is still getting its media ready

    async def scenario() -> None:
        async with running_pbx(tmp_path) as pbx:
            callee = Phone(phone_config(tmp_path, pbx, "phone-b"))
            assert (await callee.registrar.register()).registered
            caller = await SipPeer.open(pbx)
            await caller.register("phone-c")
            try:
                with monkeypatch.context() as patched:
                    patched.setattr(phone_module.UdpMedia, "prepare", slow)
                    invite = caller.request("INVITE", "phone-b", "cancelled", caller="phone-c")
                    invite = replace(invite, body=MediaOffer(rtp=("127.0.0.1", 9)).to_sdp())
                    caller.send(invite)
                    assert [dialogs.status(await caller.receive()) for _ in "ab"] == [100, 180]

                    # Busy: a second call while the first one rings.
                    caller.send(caller.request("INVITE", "phone-b", "second", caller="phone-c"))
                    assert dialogs.status(await caller.receive()) == 100
                    assert dialogs.status(await caller.receive()) == 486

                    caller.send(dialogs.of_invite(invite, "CANCEL", invite.get("To") or ""))
                    got = {dialogs.status(await caller.receive()) for _ in "ab"}
                    assert got == {200, 487}
                for _ in range(100):
                    if callee.reports:
                        break
                    await asyncio.sleep(0.01)
                assert [r.error for r in callee.reports] == ["cancelled by the caller"]
                calls = (await control(pbx, {"op": "calls"}))["calls"]
                assert calls["cancelled"]["ended"] and not calls["cancelled"]["answered"]
            finally:
                await callee.registrar.stop()

    run(scenario)


@pytest.mark.parametrize(("transport", "method"), [("udp", "crlf"), ("tcp", "options")])
def test_keepalives_go_as_the_phones_setting_says_and_are_answered(
    tmp_path: Path, transport: str, method: str
) -> None:
    async def scenario() -> None:
        async with running_pbx(tmp_path) as pbx:
            config = phone_config(
                tmp_path, pbx, "phone-b", transport=transport, keepalive_method=method
            )
            registrar = Registrar(config, lambda message: None)
            try:
                assert (await registrar.register()).registered
                registrar._pong.clear()
                await asyncio.wait_for(registrar._pong.wait(), TIMEOUT)  # a keepalive answered
                assert registrar.registered
            finally:
                await registrar.stop()

    run(scenario)
