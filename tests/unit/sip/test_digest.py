"""Digest authentication against the RFCs' own examples."""

from __future__ import annotations

import pytest

from natlab.sip import digest
from natlab.sip.errors import SipError

# RFC 2617 3.5 (note: its password is "Circle Of Life", RFC 7616's is "Circle of Life")
RFC2617_CHALLENGE = (
    'Digest realm="testrealm@host.com", qop="auth,auth-int", '
    'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"'
)
# RFC 7616 3.9.1
RFC7616_CHALLENGE = (
    'Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm=SHA-256, '
    'nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", '
    'opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"'
)


def test_rfc2617_section_3_5_md5():
    challenge = digest.parse_challenge(RFC2617_CHALLENGE)
    assert (challenge.algorithm, challenge.qop) == ("MD5", "auth")
    credentials = digest.answer(
        challenge,
        username="Mufasa",
        password="Circle Of Life",
        method="GET",
        uri="/dir/index.html",
        cnonce="0a4f113b",
    )
    assert credentials.response == "6629fae49393a05397450978507c4ef1"
    assert credentials.nc == "00000001"
    assert credentials.opaque == "5ccc069c403ebaf9f0171e9517f40e41"


@pytest.mark.parametrize(
    ("algorithm", "expected"),
    [
        ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
        ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
    ],
)
def test_rfc7616_section_3_9_1(algorithm: str, expected: str):
    header = RFC7616_CHALLENGE.replace("algorithm=SHA-256", f"algorithm={algorithm}")
    credentials = digest.answer(
        digest.parse_challenge(header),
        username="Mufasa",
        password="Circle of Life",
        method="GET",
        uri="/dir/index.html",
        cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
    )
    assert credentials.response == expected


def test_a_register_round_trip_verifies_and_a_wrong_password_does_not():
    challenge = digest.Challenge("natlab", "n0nce", "SHA-256", "auth", "op")
    assert digest.parse_challenge(challenge.to_header()) == challenge
    sent = digest.answer(
        challenge,
        username="phone-b",
        password="secret",
        method="REGISTER",
        uri="sip:203.0.113.9",
        cnonce="c",
        nc=3,
    )
    received = digest.parse_credentials(sent.to_header())
    assert received == sent
    assert digest.verify(received, challenge=challenge, password="secret", method="REGISTER")
    assert not digest.verify(received, challenge=challenge, password="wrong", method="REGISTER")
    assert not digest.verify(received, challenge=challenge, password="secret", method="INVITE")
    stale = digest.Challenge("natlab", "other", "SHA-256", "auth", "op")
    assert not digest.verify(received, challenge=stale, password="secret", method="REGISTER")


def test_without_qop_the_rfc2069_form_is_used():
    challenge = digest.Challenge("r", "n", "MD5", None)
    sent = digest.answer(challenge, username="u", password="p", method="REGISTER", uri="sip:x")
    assert "qop" not in sent.to_header()
    assert digest.verify(
        digest.parse_credentials(sent.to_header()),
        challenge=challenge,
        password="p",
        method="REGISTER",
    )


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ('Basic realm="x"', "not a Digest header"),
        ('Digest nonce="n"', "without realm"),
        ('Digest realm="r", nonce="n", algorithm=SHA-512-256', "unsupported Digest algorithm"),
        ('Digest realm="r", nonce="n", qop="auth-int"', "no qop natlab supports"),
        ('Digest realm="r", realm="s", nonce="n"', "duplicated Digest parameter"),
        ('Digest realm="r, nonce="n"', "bad Digest parameters"),
        ("Digest " + ", ".join(f"p{i}=x" for i in range(30)), "bad Digest parameters"),
    ],
)
def test_bad_challenges_are_refused(header: str, reason: str):
    with pytest.raises(SipError) as refused:
        digest.parse_challenge(header)
    assert reason in refused.value.reason


def test_credentials_with_qop_need_nc_and_cnonce():
    base = 'Digest username="u", realm="r", nonce="n", uri="sip:x", response="0", qop=auth'
    with pytest.raises(SipError, match="nc"):
        digest.parse_credentials(base)
    with pytest.raises(SipError, match="cnonce"):
        digest.parse_credentials(base + ", nc=00000001")
