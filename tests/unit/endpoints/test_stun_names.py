"""A phone's STUN servers by name: every address of every name, resolved at once, in order."""

from __future__ import annotations

import asyncio
import socket
import threading

import pytest

from natlab.endpoints import ice
from natlab.stun import Address

NAMES = {
    "stun.example.test": ["203.0.113.4", "203.0.113.5"],
    "stun2.example.test": ["203.0.113.5", "2001:db8::1"],  # shares one; a v6 one is skipped
}


def fake_addresses_of(calls: list[str], barrier: threading.Barrier):
    def addresses_of(host: str, port: int) -> list[Address]:
        calls.append(host)
        barrier.wait(timeout=2)  # every name is being resolved at the same time, or this fails
        if host not in NAMES:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [Address.of(ip, port) for ip in NAMES[host]]

    return addresses_of


def test_every_address_of_every_name_in_order_without_repeats(monkeypatch: pytest.MonkeyPatch):
    calls: list[str] = []
    servers = [
        ("stun.example.test", 3478),
        ("down.example.test", 3478),
        ("stun2.example.test", 3478),
    ]
    monkeypatch.setattr(ice, "addresses_of", fake_addresses_of(calls, threading.Barrier(3)))

    found = asyncio.run(ice.stun_addresses(servers))

    assert found == [("203.0.113.4", 3478), ("203.0.113.5", 3478)]
    assert sorted(calls) == sorted(host for host, _ in servers)


def test_addresses_stay_as_they_are():
    servers = [("203.0.113.9", 3478), ("203.0.113.9", 3478), ("203.0.113.9", 3479)]
    assert asyncio.run(ice.stun_addresses(servers)) == [
        ("203.0.113.9", 3478),
        ("203.0.113.9", 3479),
    ]


def test_no_servers_no_addresses():
    assert asyncio.run(ice.stun_addresses([])) == []
