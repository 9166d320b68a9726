"""Registration and call signalling over UDP, between a real PBX and phones on loopback.

Over UDP nothing but the messages themselves says a phone is there: the PBX
binds a name to the address a REGISTER came from, for `expires` seconds,
and an invite it sends there may simply be lost (a NAT forgot the mapping).
These tests run the PBX in-process on 127.0.0.1 and play the phones with
plain UDP sockets, or with the phone's own Registrar; the PBX's expiry clock
and its retransmission waits are turned so that nothing waits for long.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

import pytest

from natlab.endpoints import pbx as pbx_module
from natlab.endpoints import phone as phone_module
from natlab.endpoints.pbx import Pbx, PbxConfig
from natlab.endpoints.phone import Phone, PhoneConfig, Registrar
from natlab.endpoints.signalling import DatagramInbox, Endpoint, ask

LOOPBACK = "127.0.0.1"
TIMEOUT = 5.0  # a bound on every wait: the loopback answers in microseconds


def run(test: Callable[..., Coroutine[Any, Any, None]], *args: Any) -> None:
    asyncio.run(asyncio.wait_for(test(*args), 20))


@asynccontextmanager
async def running_pbx(tmp_path: Path) -> AsyncIterator[Pbx]:
    pbx = Pbx(PbxConfig("pbx", IPv4Address(LOOPBACK), tmp_path / "pbx.sock", port=0))
    servers = await pbx.start()
    try:
        yield pbx
    finally:
        for server in servers:
            server.close()


class UdpPhone:
    """A phone played by the test: a UDP socket talking JSON datagrams to the PBX."""

    def __init__(self, transport: asyncio.DatagramTransport, inbox: DatagramInbox) -> None:
        self.transport, self.inbox = transport, inbox

    @classmethod
    async def open(cls, pbx: Pbx) -> UdpPhone:
        transport, inbox = await asyncio.get_running_loop().create_datagram_endpoint(
            DatagramInbox, local_addr=(LOOPBACK, 0), remote_addr=pbx.udp_address
        )
        return cls(transport, inbox)

    @property
    def address(self) -> Endpoint:
        return self.transport.get_extra_info("sockname")[:2]

    def send(self, message: dict) -> None:
        self.inbox.send(message)

    async def receive(self) -> dict:
        message, _ = await asyncio.wait_for(self.inbox.queue.get(), TIMEOUT)
        assert isinstance(message, dict), message
        return message

    async def register(self, name: str) -> dict:
        self.send({"type": "register", "name": name})
        return await self.receive()


async def control(pbx: Pbx, request: dict) -> dict:
    """The PBX's control socket, asked from a thread: the PBX serves on this loop."""
    return await asyncio.to_thread(ask, pbx.config.control, request)


def invite(call: str, to: str) -> dict:
    return {"type": "invite", "call": call, "to": to, "mode": "host", "offer": {}}


def test_a_register_binds_the_name_to_the_datagrams_source_for_expires_seconds(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        async with running_pbx(tmp_path) as pbx:
            phone_b = await UdpPhone.open(pbx)
            assert await phone_b.register("phone-b") == {"type": "registered", "expires": 60}
            seen = (await control(pbx, {"op": "registrations"}))["registrations"]["phone-b"]
            assert seen["transport"] == "udp"
            assert seen["address"] == f"{LOOPBACK}:{phone_b.address[1]}"
            assert 59 < seen["expires_in"] <= 60
            phone_b.send({"type": "keepalive"})
            assert await phone_b.receive() == {"type": "keepalive"}

            # Another source is nobody, whatever it says; garbage is answered, not fatal.
            stranger = await UdpPhone.open(pbx)
            stranger.send({"type": "keepalive"})
            assert (await stranger.receive())["reason"] == "not registered"
            stranger.transport.sendto(b"{not json")
            assert "not JSON" in (await stranger.receive())["reason"]

            # Past `expires` without a new REGISTER (keepalives do not count) the PBX forgets it.
            pbx.clock = lambda: time.monotonic() + 61
            assert (await control(pbx, {"op": "registrations"}))["registrations"] == {}
            phone_b.send({"type": "keepalive"})
            assert (await phone_b.receive())["reason"] == "not registered"

    run(scenario)


def test_an_invite_is_sent_again_until_the_callee_rings_and_the_caller_told_if_never(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pbx_module, "RING_WAITS", (0.01, 0.02, 0.04))

    async def scenario() -> None:
        async with running_pbx(tmp_path) as pbx:
            caller, callee = await UdpPhone.open(pbx), await UdpPhone.open(pbx)
            await caller.register("phone-c")
            await callee.register("phone-b")

            # A silent callee (its NAT dropped every invite, say): three invites, then an error.
            caller.send(invite("lost", "phone-b"))
            got = [await callee.receive() for _ in pbx_module.RING_WAITS]
            assert [(m["type"], m["call"], m["from"]) for m in got] == [
                ("invite", "lost", "phone-c")
            ] * 3
            error = await caller.receive()
            assert (error["type"], error["call"]) == ("error", "lost")
            assert error["reason"] == (
                f"phone-b did not answer 3 invites sent over udp to "
                f"{LOOPBACK}:{callee.address[1]}, where it registered"
            )
            calls = (await control(pbx, {"op": "calls"}))["calls"]
            assert (calls["lost"]["ringing"], calls["lost"]["ended"]) == (False, True)

            # A callee that rings at once gets the invite once, and the caller hears it ring.
            caller.send(invite("heard", "phone-b"))
            assert (await callee.receive())["call"] == "heard"
            callee.send({"type": "ringing", "call": "heard"})
            assert await caller.receive() == {"type": "ringing", "call": "heard"}
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
            route = pbx.route

            async def recording(name: str, message: dict) -> None:
                heard.append(message["type"])
                await route(name, message)

            pbx.route = recording  # type: ignore[method-assign]
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

    assert asyncio.run(asyncio.wait_for(scenario(0), 20)) == []  # REGISTERs only
    assert "keepalive" in asyncio.run(asyncio.wait_for(scenario(0.05), 20))


def test_a_phone_rings_at_every_copy_of_an_invite_but_takes_the_call_once(
    tmp_path: Path,
) -> None:
    phone = Phone(PhoneConfig("phone-b", IPv4Address(LOOPBACK), tmp_path / "phone.sock"))
    sent: list[dict] = []
    phone.registrar.send = sent.append  # type: ignore[method-assign]
    phone.inboxes["c1"] = asyncio.Queue()  # the call is already being answered
    phone.dispatch(invite("c1", "phone-b"))
    assert sent == [{"type": "ringing", "call": "c1"}]
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


# -- strangers: never an error for an error, and only so many errors ---------------------------
#
# One forged datagram whose source was the router's own address made the PBX answer
# "not registered" to itself through the router's hairpin, and its answer to that answer,
# for ever. Nothing here waits for a silence: the PBX takes datagrams in order, so the first
# answer after a datagram that must go unanswered is the answer to the next one sent.


async def answers(phone: UdpPhone, count: int) -> list[str | None]:
    """The "call" field of the next `count` answers (the tests tag each datagram with one)."""
    got = []
    for _ in range(count):
        message = await phone.receive()
        assert message["type"] == "error", message
        got.append(message.get("call"))
    return got


async def processed(pbx: Pbx, count: int) -> None:
    """Let the loop run until the PBX has taken `count` datagrams (the clock is the test's)."""
    while pbx.counters["datagrams"] < count:
        await asyncio.sleep(0)


@pytest.mark.parametrize(
    "error",
    [
        b'{"type": "error", "reason": "not registered"}',  # the PBX's own answer, come back
        b'{"type": "error", "reason": "not registered", "call": "c1"}',
        b'{"type": "error"}',  # an error without its reason is still an error
        b'{"type": "error", "reason": 7}',
    ],
)
def test_an_error_from_a_stranger_is_never_answered(tmp_path: Path, error: bytes) -> None:
    async def scenario() -> None:
        async with running_pbx(tmp_path) as pbx:
            stranger = await UdpPhone.open(pbx)
            stranger.transport.sendto(error)
            stranger.send({"type": "keepalive", "call": "after"})
            assert await answers(stranger, 1) == ["after"]  # nothing came for the error
            counters = (await control(pbx, {"op": "counters"}))["counters"]
            assert counters == {
                "datagrams": 2,
                "errors_sent": 1,
                "unanswered_errors": 1,
                "unanswered_throttled": 0,
            }

    run(scenario)


def test_an_error_from_a_registered_phone_about_no_call_is_not_answered(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running_pbx(tmp_path) as pbx:
            phone = await UdpPhone.open(pbx)
            await phone.register("phone-b")
            phone.send({"type": "error", "reason": "no such call", "call": "gone"})
            phone.send({"type": "keepalive"})
            assert await phone.receive() == {"type": "keepalive"}

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
                transport.sendto(b'{"type": "keepalive"}')  # the forged datagram
                message, _ = await asyncio.wait_for(mirror.queue.get(), TIMEOUT)
                assert message == {"type": "error", "reason": "not registered"}
                # The mirrored error reached the PBX, unanswered: a probe shows it is past it.
                probe = await UdpPhone.open(pbx)
                probe.send({"type": "keepalive", "call": "probe"})
                assert await answers(probe, 1) == ["probe"]
                # loopback queues a datagram at once: the mirror's copy came before the probe
                assert pbx.counters["unanswered_errors"] == 1
                assert pbx.counters["errors_sent"] == 2  # the forged datagram's and the probe's
                assert mirror.queue.empty()
            finally:
                transport.close()

    run(scenario)


def test_a_stranger_gets_a_burst_of_errors_then_one_a_second(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running_pbx(tmp_path) as pbx:
            now = [1000.0]
            pbx.clock = lambda: now[0]
            stranger = await UdpPhone.open(pbx)
            for n in range(12):
                stranger.send({"type": "keepalive", "call": f"n{n}"})
            await processed(pbx, 12)
            now[0] += 1.0  # one token back, and only one
            stranger.send({"type": "keepalive", "call": "later"})
            stranger.send({"type": "keepalive", "call": "too soon"})
            stranger.transport.sendto(b"{not json")  # garbage counts against the same bucket
            await processed(pbx, 15)
            now[0] += 3.0
            stranger.send({"type": "keepalive", "call": "last"})
            burst = pbx_module.STRANGER_BURST
            assert await answers(stranger, burst + 2) == [
                *(f"n{n}" for n in range(burst)),
                "later",
                "last",
            ]
            counters = (await control(pbx, {"op": "counters"}))["counters"]
            assert counters["datagrams"] == 16
            assert counters["errors_sent"] == burst + 2
            assert counters["unanswered_throttled"] == 16 - burst - 2

    run(scenario)


def test_a_stranger_is_limited_but_a_registered_phone_at_the_same_address_not(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        async with running_pbx(tmp_path) as pbx:
            now = [1000.0]
            pbx.clock = lambda: now[0]
            phone = await UdpPhone.open(pbx)
            await phone.register("phone-b")
            flooder = await UdpPhone.open(pbx)  # 127.0.0.1 too, from another port
            burst = pbx_module.STRANGER_BURST
            for n in range(burst * 2):
                flooder.send({"type": "keepalive", "call": f"f{n}"})
                phone.transport.sendto(b"{not json")  # a phone's mistakes are always answered
            for _ in range(burst * 2):
                assert "not JSON" in (await phone.receive())["reason"]
            await processed(pbx, 1 + burst * 4)  # the REGISTER, the flood and the garbage
            now[0] += 1.0
            flooder.send({"type": "keepalive", "call": "sentinel"})
            assert await answers(flooder, burst + 1) == [
                *(f"f{n}" for n in range(burst)),
                "sentinel",
            ]

    run(scenario)
