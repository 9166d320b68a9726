"""Connections others open: the shared StreamListener's bounds, a phone taking requests on
its Contact's port over TCP and TLS, and a naive PBX opening a connection to that Contact.

Everything runs in-process on 127.0.0.1, on ports the kernel picks.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

import pytest

from natlab.endpoints import sip_dialogs as dialogs
from natlab.endpoints import tls
from natlab.endpoints.pbx import Pbx, PbxConfig
from natlab.endpoints.phone import Phone, PhoneConfig
from natlab.endpoints.sip_transport import (
    Arrival,
    Keepalive,
    StreamFlow,
    StreamFramer,
    StreamListener,
    read_stream,
)
from natlab.sip.message import SipMessage

LOOPBACK = "127.0.0.1"
TIMEOUT = 5.0


def run(test: Callable[..., Coroutine[Any, Any, None]], *args: Any) -> None:
    asyncio.run(asyncio.wait_for(test(*args), 30))


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("ca")
    tls.create_ca(directory, "unit")
    for name in ("pbx", "phone-a", "phone-b"):
        tls.issue(directory, name, [IPv4Address(LOOPBACK)])
    return directory


def options(branch: str = "z9hG4bKopt1") -> SipMessage:
    return dialogs.request(
        "OPTIONS",
        f"sip:phone-b@{LOOPBACK}",
        via_value=dialogs.via("tcp", LOOPBACK, 5060, branch),
        from_value=f"<sip:pbx@{LOOPBACK}>;tag=p1",
        to_value=f"<sip:phone-b@{LOOPBACK}>",
        call_id="opt-1",
        cseq=1,
    )


async def next_arrival(reader: asyncio.StreamReader) -> list[Arrival] | None:
    return await asyncio.wait_for(read_stream(reader, StreamFramer(server=False)), TIMEOUT)


# -- the listener's bounds -------------------------------------------------------------------


def test_the_listener_turns_away_a_connection_past_its_limit_and_closes_silent_ones() -> None:
    async def scenario() -> None:
        seen: list[tuple[Arrival, StreamFlow]] = []
        ended: list[StreamFlow] = []

        async def handle(arrival: Arrival, flow: StreamFlow) -> None:
            seen.append((arrival, flow))

        listener = StreamListener(handle, ended.append, limit=1, idle=0.3)
        server = await listener.listen(LOOPBACK, 0, "tcp")
        port = server.sockets[0].getsockname()[1]
        try:
            first_reader, first = await asyncio.open_connection(LOOPBACK, port)
            first.write(b"\r\n\r\n")  # a ping: the listener reads it as the server side
            while not seen:
                await asyncio.sleep(0.01)
            assert isinstance(seen[0][0], Keepalive) and seen[0][0].ping
            assert seen[0][1].address == first.get_extra_info("sockname")[:2]
            second_reader, second = await asyncio.open_connection(LOOPBACK, port)
            assert await asyncio.wait_for(second_reader.read(), TIMEOUT) == b""  # turned away
            assert listener.turned_away == 1 and len(listener.flows) == 1
            # silent past `idle`: closed, and `closed` told of it
            assert await asyncio.wait_for(first_reader.read(), TIMEOUT) == b""
            while not ended:
                await asyncio.sleep(0.01)
            assert ended == [seen[0][1]] and listener.flows == {}
            for writer in (first, second):
                writer.close()
        finally:
            server.close()

    run(scenario)


def test_a_stream_whose_framing_is_lost_is_closed_after_its_garbled_frame() -> None:
    async def scenario() -> None:
        seen: list[Arrival] = []

        async def handle(arrival: Arrival, flow: StreamFlow) -> None:
            seen.append(arrival)

        listener = StreamListener(handle)
        server = await listener.listen(LOOPBACK, 0, "tcp")
        try:
            reader, writer = await asyncio.open_connection(
                LOOPBACK, server.sockets[0].getsockname()[1]
            )
            unframed = options().to_bytes().replace(b"Content-Length: 0\r\n", b"")
            writer.write(unframed + options("z9hG4bKopt2").to_bytes())
            assert await asyncio.wait_for(reader.read(), TIMEOUT) == b""
            assert len(seen) == 1 and not isinstance(seen[0], SipMessage)  # nothing after it
            writer.close()
        finally:
            server.close()

    run(scenario)


# -- a phone takes connections ---------------------------------------------------------------


@asynccontextmanager
async def listening_phone(
    ca: Path, tmp_path: Path, name: str = "phone-b", **options: Any
) -> AsyncIterator[Phone]:
    config = PhoneConfig(
        name,
        IPv4Address(LOOPBACK),
        tmp_path / f"{name}.sock",
        ca=ca,
        listen=(0, 0),
        pbx_name="pbx",
        **options,
    )
    phone = Phone(config)
    servers = await phone.listen()
    try:
        yield phone
    finally:
        await phone.registrar.stop()
        for server in servers:
            server.close()


async def ask_options(port: int, context: ssl.SSLContext | None) -> list[Arrival] | None:
    reader, writer = await asyncio.open_connection(
        LOOPBACK, port, ssl=context, server_hostname=LOOPBACK if context else None
    )
    try:
        writer.write(options().to_bytes())
        return await next_arrival(reader)
    finally:
        writer.close()


def test_a_phone_answers_on_the_connection_a_request_came_on_over_tcp_and_tls(
    ca: Path, tmp_path: Path
) -> None:
    """Not registered at all, the phone still answers whoever connects to its Contact;
    over TLS only the lab's PBX (CN pbx): another phone's certificate gets nothing."""

    async def scenario() -> None:
        async with listening_phone(ca, tmp_path) as phone:
            ports = phone.registrar.listening
            assert set(ports) == {"tcp", "tls"} and ports["tcp"] != ports["tls"]
            assert phone.registrar.contact() == (
                f"<sip:phone-b@{LOOPBACK}:{ports['tcp']};transport=tcp>"
            )
            for port, context in (
                (ports["tcp"], None),
                (ports["tls"], tls.client_context(ca, "pbx")),
            ):
                answer = await ask_options(port, context)
                assert answer is not None and len(answer) == 1, answer
                [ok] = answer
                assert isinstance(ok, SipMessage) and dialogs.status(ok) == 200
                assert dialogs.top_via(ok).branch == "z9hG4bKopt1"
            assert await ask_options(ports["tls"], tls.client_context(ca, "phone-a")) is None

    run(scenario)


# -- a naive PBX reaches a phone at its Contact ----------------------------------------------


@asynccontextmanager
async def naive_pbx(ca: Path, tmp_path: Path) -> AsyncIterator[tuple[Pbx, int]]:
    config = PbxConfig(
        "pbx",
        IPv4Address(LOOPBACK),
        tmp_path / "pbx.sock",
        port=0,
        tls_port=0,
        ca=ca,
        nat_aware=False,
    )
    pbx = Pbx(config)
    servers = await pbx.start()
    tls_port = servers[2].sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield pbx, tls_port
    finally:
        for server in servers:
            server.close()


@pytest.mark.parametrize("transport", ["tcp", "tls"])
def test_a_naive_pbx_opens_a_connection_to_the_callees_contact_and_the_call_is_two_way(
    ca: Path, tmp_path: Path, transport: str
) -> None:
    """RFC 3261 18.1.1: no connection to the Contact's address, so the PBX opens one; the
    phone takes it, and its answers go back on it."""

    async def scenario() -> None:
        async with naive_pbx(ca, tmp_path) as (pbx, tls_port):
            where = {"pbx": (LOOPBACK, pbx.port), "pbx_tls": (LOOPBACK, tls_port)}
            async with (
                listening_phone(ca, tmp_path, "phone-a", transport=transport, **where) as a,
                listening_phone(ca, tmp_path, "phone-b", transport=transport, **where) as b,
            ):
                for phone in (a, b):
                    assert (await phone.registrar.register()).registered
                contact = pbx.registrations["phone-b"].contact
                assert contact.port == b.registrar.listening[transport]
                assert contact.port != b.registrar.link.local[1]  # type: ignore[union-attr]
                assert (LOOPBACK, contact.port) not in pbx.connections
                report = await a.call("phone-b", 0.3, "host")
                assert (report.verdict, report.error) == ("two-way", None), report
                opened = pbx.connections[(LOOPBACK, contact.port)]  # the one the PBX opened
                assert opened.transport == transport

    run(scenario)


def test_a_naive_pbx_that_cannot_connect_to_the_contact_refuses_the_call_480(
    ca: Path, tmp_path: Path
) -> None:
    async def scenario() -> None:
        async with naive_pbx(ca, tmp_path) as (pbx, _):
            where = {"pbx": (LOOPBACK, pbx.port)}
            async with listening_phone(ca, tmp_path, "phone-a", **where) as a:
                b = Phone(PhoneConfig("phone-b", IPv4Address(LOOPBACK), tmp_path / "b", **where))
                with socket.socket() as closed:  # a port nobody listens on
                    closed.bind((LOOPBACK, 0))
                    b.registrar.listening["tcp"] = closed.getsockname()[1]
                try:
                    assert (await a.registrar.register()).registered
                    assert (await b.registrar.register()).registered
                    report = await a.call("phone-b", 0.3, "host")
                finally:
                    await b.registrar.stop()
                assert report.error is not None and "480" in report.error, report
                assert "cannot reach phone-b" in report.error

    run(scenario)
