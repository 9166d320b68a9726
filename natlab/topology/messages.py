"""Fixes for pydantic's complaints, worded for someone editing a topology file.

pydantic says what is wrong ("input should be a valid integer"); a user also
needs what to write instead. The field's own hint wins (it knows the forms
the field accepts), then the values pydantic expected, then a hint by kind.
"""

from __future__ import annotations

from typing import Any

from natlab.core.behaviour import PRESETS

_BY_FIELD = {
    "nat": f"use a preset ({', '.join(PRESETS)}) or settings, "
    "e.g. {preset: symmetric, udp_timeout: 30}",
    "stun": "write stun: true, or stun: {port: 3478, alt_port: 3479}",
    "addresses": "give a count (addresses: 2) or a list ([10.0.0.10, 10.0.0.11])",
    "port": "write a port number (8000); a forward also takes a range (8000-8010)",
    "port_range": "write two ports, low then high, e.g. [1024, 65535]",
    "segments": "write each segment as NAME: {subnet: 10.0.0.0/24}",
    "routers": "write each router as NAME: {wan: {segment: ...}, lan: {segment: ...}}",
    "hosts": "write each host as NAME: {segment: ...}",
    "forwards": "list forwards as - {proto: tcp, port: 8000, to: HOST:80}",
    "lans": "list LANs as - {segment: NAME}",
}

_BY_KIND = {
    "ip_v4_network": "write a network address with its prefix, e.g. 10.0.0.0/24",
    "ip_v4_address": "write a dotted-quad IPv4 address, e.g. 10.0.0.10",
    "string_pattern_mismatch": "use letters, digits, '-', '_' and '.', "
    "starting with a letter or digit",
    "bool_type": "use true or false",
    "bool_parsing": "use true or false",
    "int_type": "use a whole number",
    "int_parsing": "use a whole number",
    "int_from_float": "use a whole number",
    "float_type": "use a number",
    "float_parsing": "use a number",
    "list_type": "write a list: [a, b], or one '- item' per line",
    "dict_type": "write a mapping: one 'key: value' per line, or {key: value}",
}


def fix_for(error: Any, field: str | int | None) -> str | None:
    """What to write instead, for one pydantic error at `field` (its last key or index).

    A list item (an int) takes no field hint: it is one of the field's values.
    """
    ctx = error.get("ctx") or {}
    if isinstance(field, str) and field in _BY_FIELD:
        return _BY_FIELD[field]
    if "expected" in ctx:
        return f"use {ctx['expected']}"
    kind = error["type"]
    if kind == "greater_than":
        return f"use a number greater than {ctx['gt']:g}"
    if kind == "greater_than_equal":
        return f"use a number of at least {ctx['ge']:g}"
    if kind == "string_too_long":
        return f"use at most {ctx['max_length']} characters"
    return _BY_KIND.get(kind)


def complaint(error: Any) -> str:
    """pydantic's message as the middle of a sentence: 'input should be ...'."""
    message = error["msg"]
    return message[:1].lower() + message[1:]
