"""A phone's INVITE challenged by a proxy (407, as kamailio does) or a UAS (401) is sent
again with its digest credentials (RFC 3261 22.2, 22.3); the challenge is ACKed, a
second challenge ends the call. The proxy is played by the test (transact faked)."""

from __future__ import annotations

import asyncio
from ipaddress import IPv4Address
from pathlib import Path
from types import SimpleNamespace

import pytest

from natlab.endpoints import sip_dialogs as dialogs
from natlab.endpoints.phone import Phone, PhoneConfig
from natlab.sip import digest
from natlab.sip.message import SipMessage

LOOPBACK = "127.0.0.1"
HEADERS = {
    401: ("WWW-Authenticate", "Authorization"),
    407: ("Proxy-Authenticate", "Proxy-Authorization"),
}


class ChallengingProxy:
    """Answers the first INVITE with a challenge; later ones by `then` if they verify."""

    def __init__(self, code: int, password: str, then: int = 486) -> None:
        self.code, self.password, self.then = code, password, then
        self.challenge = digest.Challenge("kamailio", "5ca1ab1e")
        self.invites: list[SipMessage] = []
        self.sent: list[SipMessage] = []  # what the phone sent outside a transaction (ACKs)

    async def transact(self, request: SipMessage, *args: object, **kwargs: object) -> SipMessage:
        self.invites.append(request)
        asking, answering = HEADERS[self.code]
        value = request.get(answering)
        if value is None:
            header = (asking, self.challenge.to_header())
            return dialogs.response(request, self.code, "Auth", to_tag="p", headers=(header,))
        credentials = digest.parse_credentials(value)
        good = digest.verify(
            credentials, challenge=self.challenge, password=self.password, method="INVITE"
        )
        code = self.then if good else 403
        return dialogs.response(request, code, "Done" if good else "Forbidden", to_tag="p")


def _phone(tmp_path: Path, proxy: ChallengingProxy, monkeypatch: pytest.MonkeyPatch) -> Phone:
    config = PhoneConfig("carol", IPv4Address(LOOPBACK), tmp_path / "carol.sock", password="pw")
    phone = Phone(config)
    registrar = phone.registrar
    registrar.link = SimpleNamespace(transport="udp", local=(LOOPBACK, 5062))  # type: ignore[assignment]
    registrar.registered, registrar.target = True, (LOOPBACK, 5060)

    async def ensure() -> None:
        return None

    monkeypatch.setattr(registrar, "ensure", ensure)
    monkeypatch.setattr(registrar, "transact", proxy.transact)
    monkeypatch.setattr(registrar, "send", proxy.sent.append)
    return phone


@pytest.mark.parametrize("code", [401, 407])
def test_a_challenged_invite_is_sent_again_with_credentials_that_verify(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    proxy = ChallengingProxy(code, "pw")
    phone = _phone(tmp_path, proxy, monkeypatch)
    report = asyncio.run(asyncio.wait_for(phone.call("dave", 0, "host"), 10))
    assert report.error == "the call was refused: 486 Done"  # past the challenge: verified
    first, second = proxy.invites
    assert [dialogs.cseq_number(i) for i in proxy.invites] == [1, 2]
    assert first.get("Call-ID") == second.get("Call-ID") and first.get("From") == second.get("From")
    assert dialogs.top_via(first).branch != dialogs.top_via(second).branch  # a new transaction
    assert second.get("Authorization" if code == 401 else "Proxy-Authorization") is not None
    acks = [m for m in proxy.sent if dialogs.method_of(m) == "ACK"]
    assert [dialogs.cseq_number(a) for a in acks] == [1, 2]  # the challenge's, the 486's
    assert dialogs.top_via(acks[0]).branch == dialogs.top_via(first).branch


def test_a_wrong_password_is_refused_and_not_tried_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy = ChallengingProxy(407, "another")
    phone = _phone(tmp_path, proxy, monkeypatch)
    report = asyncio.run(asyncio.wait_for(phone.call("dave", 0, "host"), 10))
    assert report.error == "the call was refused: 403 Forbidden"
    assert len(proxy.invites) == 2


def test_a_second_challenge_ends_the_call(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    proxy = ChallengingProxy(407, "pw")
    phone = _phone(tmp_path, proxy, monkeypatch)
    proxy.transact = _always_challenge(proxy)  # type: ignore[method-assign]
    monkeypatch.setattr(phone.registrar, "transact", proxy.transact)
    report = asyncio.run(asyncio.wait_for(phone.call("dave", 0, "host"), 10))
    assert report.error is not None and report.error.startswith("the call was refused: 407")
    assert len(proxy.invites) == 2


def _always_challenge(proxy: ChallengingProxy):
    async def transact(request: SipMessage, *args: object, **kwargs: object) -> SipMessage:
        proxy.invites.append(request)
        header = ("Proxy-Authenticate", proxy.challenge.to_header())
        return dialogs.response(request, 407, "Auth", to_tag="p", headers=(header,))

    return transact
