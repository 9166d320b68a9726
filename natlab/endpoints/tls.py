"""The lab's certificate authority: one per lab, a certificate per phone and for the PBX.

Field phones register with certificates whose common name is their name,
and the PBX refuses a registration whose certificate names someone else.
`natlab up` makes the CA in the lab's state directory (ca/), so every lab
has its own and nothing outside the lab trusts it. EC P-256 keys: quick to
make, so `up` stays fast however many phones there are.
"""

from __future__ import annotations

import datetime
import ssl
from collections.abc import Iterable
from ipaddress import IPv4Address
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_NAME = "ca"
VALIDITY = datetime.timedelta(days=30)


def cert_path(directory: Path, name: str) -> Path:
    return directory / f"{name}.pem"


def key_path(directory: Path, name: str) -> Path:
    return directory / f"{name}.key"


def create_ca(directory: Path, lab: str) -> None:
    """A self-signed CA for the lab, written as ca.pem and ca.key in directory."""
    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"natlab CA of lab {lab}")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    _write(directory, CA_NAME, cert, key)


def issue(
    directory: Path, name: str, addresses: Iterable[IPv4Address] = (), dns: Iterable[str] = ()
) -> None:
    """A certificate signed by the lab's CA: CN = name, addresses as IP names, dns as DNS names.

    The same certificate serves as client and server (the PBX, and the
    phones that take connections: the dialling side checks the address it dialled).
    """
    ca_key = serialization.load_pem_private_key(key_path(directory, CA_NAME).read_bytes(), None)
    ca_cert = x509.load_pem_x509_certificate(cert_path(directory, CA_NAME).read_bytes())
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    names: list[x509.GeneralName] = [x509.DNSName(name)]
    names += [x509.DNSName(other) for other in dns]
    names += [x509.IPAddress(address) for address in addresses]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    _write(directory, name, cert, key)


def _write(
    directory: Path, name: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey
) -> None:
    cert_path(directory, name).write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    private = key_path(directory, name)
    private.touch(mode=0o600)
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def server_context(directory: Path, name: str) -> ssl.SSLContext:
    """A listener's side (the PBX's, a phone's): its own certificate, and a client certificate
    from the lab's CA required."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path(directory, name), key_path(directory, name))
    context.load_verify_locations(cert_path(directory, CA_NAME))
    context.verify_mode = ssl.CERT_REQUIRED
    return context


def client_context(directory: Path, certificate: str) -> ssl.SSLContext:
    """A connecting side (a phone's, the PBX's towards a phone's Contact): the other end must
    prove a lab CA certificate for the dialled address."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(cert_path(directory, CA_NAME))
    context.load_cert_chain(cert_path(directory, certificate), key_path(directory, certificate))
    return context


def common_name(peer: dict | None) -> str | None:
    """The CN of a certificate as ssl's getpeercert() gives it; None if it has none."""
    for rdn in (peer or {}).get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return value
    return None
