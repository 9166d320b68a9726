"""The expiry a REGISTER asks for (RFC 3261 10.2.1.1), read by the PBX and the SIP ALG alike."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from natlab.sip.headers import NameAddr, asked_expiry


@pytest.mark.parametrize(
    ("contact", "header", "asked"),
    [
        ("<sip:a@10.0.0.2>;expires=60", "3600", 60),  # the Contact's parameter first
        ("<sip:a@10.0.0.2>", "3600", 3600),
        ("<sip:a@10.0.0.2>;expires", "0", 0),  # a parameter without a value: the header's
        ("<sip:a@10.0.0.2>", None, None),
        (None, "120", 120),
        ("<sip:a@10.0.0.2>;expires=-1", "x", None),
        ("<sip:a@10.0.0.2>", "12345678901", None),  # more than 10 digits
        ("<sip:a@10.0.0.2>", "\u00b2", None),  # a digit to str.isdigit, not to int()
        ("<sip:a@10.0.0.2>;expires=\u0663", "30", 30),  # an Arabic-Indic 3 is no SIP number
    ],
)
def test_the_contact_s_expires_then_the_header(contact, header, asked):
    parsed = None if contact is None else NameAddr.parse(contact)
    assert asked_expiry(parsed, header) == asked


@given(header=st.text(max_size=20))
def test_any_header_gives_a_bounded_number_or_none(header):
    asked = asked_expiry(None, header)
    assert asked is None or 0 <= asked < 10**10
