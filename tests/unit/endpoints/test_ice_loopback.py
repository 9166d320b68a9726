"""IceMedia between two agents in this process, on loopback only.

IceMedia reads four things aioice has no public way to: its sockets
(`_protocols`), what arrived without a pair (`_queue`), the nominated pair
(`_nominated`) and the check list (`_check_list`). These tests run the real
aioice, its host candidates confined to 127.0.0.1 (its interface discovery
is replaced), so a release of aioice that moves them fails here, not in a
lab call.
"""

from __future__ import annotations

import asyncio
import socket

import aioice.ice
import pytest

from natlab.endpoints.ice import IceMedia
from natlab.endpoints.media import RtpStream
from natlab.endpoints.sdp_offer import MediaOffer
from natlab.endpoints.stun_server import StunServer


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aioice.ice, "get_host_addresses", lambda use_ipv4, use_ipv6: ["127.0.0.1"])


async def received(stream: RtpStream, timeout: float = 2.0) -> int:
    """The peer's RTP packets counted, once at least one came or the time is up."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not stream.counts.received and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.01)
    return stream.counts.received


def test_two_agents_check_nominate_and_carry_rtp_both_ways(server: StunServer) -> None:
    stun = server.grid.endpoints[0]

    async def call() -> None:
        caller = IceMedia(controlling=True, stun=[(str(stun.ip), stun.port)], turn=None)
        callee = IceMedia(controlling=False, stun=[], turn=None)
        try:
            await asyncio.gather(caller.prepare(), callee.prepare())
            # the server-reflexive candidate was asked from aioice's host socket (_protocols)
            assert "srflx" in {c.type for c in caller.candidates}
            states = await asyncio.gather(
                caller.connect(callee.local()), callee.connect(caller.local())
            )
            assert states == ["completed", "completed"]
            for media in (caller, callee):
                await media.send(media.stream.next_packet())
            assert await received(caller.stream) >= 1
            assert await received(callee.stream) >= 1
            selected = caller.selected()  # aioice's _nominated
            assert selected is not None
            assert selected.local.address.startswith("127.0.0.1:")
            assert selected.remote.address.startswith("127.0.0.1:")
            assert "succeeded" in {check.state for check in caller.checks()}  # its _check_list
        finally:
            await asyncio.gather(caller.close(), callee.close())

    asyncio.run(call())


def test_answered_without_ice_it_sends_plain_rtp_from_its_default_candidate() -> None:
    plain = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    plain.bind(("127.0.0.1", 0))
    plain.settimeout(2.0)
    peer = RtpStream()

    async def call() -> None:
        media = IceMedia(controlling=True, stun=[], turn=None)
        try:
            await media.prepare()
            assert await media.connect(MediaOffer(rtp=plain.getsockname())) is None
            await media.send(media.stream.next_packet())
            data, source = await asyncio.to_thread(plain.recvfrom, 2048)
            assert peer.receive(data, 0.0)
            assert source == media.local().default(), "from where its offer said"
            plain.sendto(peer.next_packet(), source)
            assert await received(media.stream) == 1  # read from aioice's _queue
            selected = media.selected()
            assert selected is not None
            assert selected.remote.address == f"127.0.0.1:{plain.getsockname()[1]}"
        finally:
            await media.close()

    try:
        asyncio.run(call())
    finally:
        plain.close()
