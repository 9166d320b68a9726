"""The lab's CA and TLS registration, handshaken in memory (ssl.MemoryBIO): no socket at all."""

from __future__ import annotations

import ssl
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from natlab.endpoints import tls

PBX_ADDRESSES = (IPv4Address("10.0.0.2"), IPv4Address("203.0.113.1"))


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("ca")
    tls.create_ca(directory, "unit")
    tls.issue(directory, "pbx", PBX_ADDRESSES)
    for phone in ("phone-b", "phone-c"):
        tls.issue(directory, phone)
    return directory


def handshake(
    server: ssl.SSLContext, client: ssl.SSLContext, dialled: str
) -> tuple[ssl.SSLObject, ssl.SSLObject]:
    """Run a TLS handshake between two in-memory ends; raises what either end raises."""
    to_server, to_client = ssl.MemoryBIO(), ssl.MemoryBIO()
    server_end = server.wrap_bio(to_server, to_client, server_side=True)
    client_end = client.wrap_bio(to_client, to_server, server_hostname=dialled)
    pending = {client_end, server_end}
    for _ in range(10):
        for end in list(pending):
            try:
                end.do_handshake()
                pending.discard(end)
            except ssl.SSLWantReadError:
                pass
        if not pending:
            return server_end, client_end
    raise AssertionError("the handshake did not finish")


@pytest.mark.parametrize("dialled", ["10.0.0.2", "203.0.113.1"])
def test_the_pbx_sees_the_phone_certificate_name_wherever_the_phone_dialled_it(
    ca: Path, dialled: str
) -> None:
    server_end, _ = handshake(
        tls.server_context(ca, "pbx"), tls.client_context(ca, "phone-b"), dialled
    )
    assert tls.common_name(server_end.getpeercert()) == "phone-b"


def test_a_phone_presenting_another_phones_certificate_is_seen_as_that_phone(ca: Path) -> None:
    """What the PBX compares with the registered name, to refuse it."""
    server_end, _ = handshake(
        tls.server_context(ca, "pbx"), tls.client_context(ca, "phone-c"), "203.0.113.1"
    )
    assert tls.common_name(server_end.getpeercert()) == "phone-c"


def test_a_phone_refuses_a_pbx_at_an_address_its_certificate_does_not_name(ca: Path) -> None:
    with pytest.raises(ssl.SSLCertVerificationError, match="IP address mismatch"):
        handshake(tls.server_context(ca, "pbx"), tls.client_context(ca, "phone-b"), "10.0.0.9")


def test_certificates_of_another_labs_ca_are_refused_both_ways(ca: Path, tmp_path: Path) -> None:
    tls.create_ca(tmp_path, "other")
    tls.issue(tmp_path, "pbx", PBX_ADDRESSES)
    tls.issue(tmp_path, "phone-b")
    with pytest.raises(ssl.SSLError):  # the phone does not trust the other lab's PBX
        handshake(
            tls.server_context(tmp_path, "pbx"), tls.client_context(ca, "phone-b"), "10.0.0.2"
        )
    with pytest.raises(ssl.SSLError):  # the PBX does not trust the other lab's phone
        handshake(tls.server_context(ca, "pbx"), _foreign_phone(ca, tmp_path), "10.0.0.2")


def _foreign_phone(ca: Path, other: Path) -> ssl.SSLContext:
    """A phone that trusts our PBX but holds a certificate of the other lab's CA."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(tls.cert_path(ca, tls.CA_NAME))
    context.load_cert_chain(tls.cert_path(other, "phone-b"), tls.key_path(other, "phone-b"))
    return context


def test_private_keys_are_readable_by_their_owner_only(ca: Path) -> None:
    for name in (tls.CA_NAME, "pbx", "phone-b"):
        assert tls.key_path(ca, name).stat().st_mode & 0o777 == 0o600


def test_common_name_of_nothing_is_none() -> None:
    assert tls.common_name(None) is None
    assert tls.common_name({"subject": ((("organizationName", "natlab"),),)}) is None
