"""kamailio, a real SIP proxy and registrar, as a lab PBX (`role: pbx, server: kamailio`).

natlab writes a kamailio.cfg for each such PBX and starts `kamailio` in the
foreground in the PBX's node as a supervised program (natlab.lab.sip_software).
The configuration is a registrar and a stateful proxy as NAT-aware SIP
servers on the internet are set up:

- it listens on the node's address, port 5060, UDP and TCP; the addresses
  phones reach it at (its router's WAN address, if that forwards 5060 to it)
  are its aliases;
- locations are kept in memory (usrloc db_mode 0): no database;
- REGISTER needs digest authentication (auth module, per-user passwords
  written into the script, 401), and so does every other request that opens
  a dialog or stands alone from one of its users (an INVITE: 407
  Proxy-Authenticate, RFC 3261 22.3), as kamailio's own sample configuration
  and real deployments do: a registered address is no proof of who calls;
- NAT handling with nathelper: rport (RFC 3581) on every request; a REGISTER
  from behind a NAT is saved with the address it came from
  (fix_nated_register, so calls to that phone go to its public mapping);
  other requests and replies have their Contact fixed to the source
  (fix_nated_contact), so in-dialog requests reach the phone through its NAT;
- dialogs are record-routed; an OPTIONS to the server itself is answered 200,
  which is how natlab knows it serves.

Media is not relayed: phones send RTP to each other, to the addresses in
their SDP (a softphone behind a NAT learns its public one by STUN).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path

BINARY = "kamailio"
PACKAGE = "kamailio"  # the Debian package that has it (scripts/install.sh)
SIP_PORT = 5060
SHARED_MEMORY = 32  # MB: plenty for a lab, little on a shared machine
PRIVATE_MEMORY = 4  # MB per process
MODULES = (
    "tm", "sl", "rr", "pv", "maxfwd", "textops", "siputils", "xlog",
    "sanity", "usrloc", "registrar", "nathelper", "auth",
)  # fmt: skip
QUOTABLE = re.compile(r'[^"\\\x00-\x1f\x7f]+')  # what may stand between double quotes

ROUTES = """\
request_route {
    if (!mf_process_maxfwd_header("10")) { sl_send_reply("483", "Too Many Hops"); exit; }
    if (!sanity_check()) { exit; }
    force_rport();
    if (is_method("OPTIONS") && uri == myself && $rU == $null) {
        sl_send_reply("200", "Keepalive");
        exit;
    }
    if (nat_uac_test("19")) {
        if (is_method("REGISTER")) { fix_nated_register(); } else { fix_nated_contact(); }
    }
    if (has_totag()) {
        if (loose_route()) { t_relay(); exit; }
        if (is_method("ACK")) { if (t_check_trans()) { t_relay(); } exit; }
        sl_send_reply("404", "Not here");
        exit;
    }
    if (is_method("CANCEL")) { if (t_check_trans()) { t_relay(); } exit; }
    t_check_trans();
    if (is_method("REGISTER") || from_uri == myself) { route(AUTH); }
    if (is_method("REGISTER")) {
        if (!save("location")) { sl_reply_error(); }
        exit;
    }
    if (is_method("INVITE|SUBSCRIBE")) { record_route(); }
    if (uri == myself) {
        if (!lookup("location")) { sl_send_reply("404", "Not Found"); exit; }
    }
    t_on_reply("NATREPLY");
    if (!t_relay()) { sl_reply_error(); }
    exit;
}

route[AUTH] {
    route(PASSWORD);
    if ($var(password) == $null || !pv_auth_check("$fd", "$var(password)", "0", "1")) {
        auth_challenge("$fd", "0");
        exit;
    }
    consume_credentials();
}

onreply_route[NATREPLY] {
    if (nat_uac_test("1")) { fix_nated_contact(); }
}
"""


@dataclass(frozen=True)
class KamailioConfig:
    address: IPv4Address  # the node's: it listens there
    aliases: tuple[tuple[str, int], ...]  # other addresses phones reach it at
    users: Mapping[str, str]  # user -> password
    runtime: Path  # its runtime directory (pid file, control FIFO), of this lab alone


def password_route(users: Mapping[str, str]) -> str:
    """route[PASSWORD]: the password of the From user into $var(password), or $null."""
    lines = ["route[PASSWORD] {", "    $var(password) = $null;"]
    for user, password in sorted(users.items()):
        if not (QUOTABLE.fullmatch(user) and QUOTABLE.fullmatch(password)):
            raise ValueError(f"user {user!r} or its password cannot stand in kamailio.cfg")
        lines.append(f'    if ($fU == "{user}") {{ $var(password) = "{password}"; }}')
    return "\n".join([*lines, "}"]) + "\n"


def config_text(config: KamailioConfig) -> str:
    """The whole kamailio.cfg."""
    listens = [f"listen={proto}:{config.address}:{SIP_PORT}" for proto in ("udp", "tcp")]
    aliases = [f'alias="{host}:{port}"' for host, port in config.aliases]
    head = [
        "#!KAMAILIO",
        "debug=2",
        "log_stderror=yes",
        "children=2",
        "tcp_children=2",
        "auto_aliases=no",
        *listens,
        f'alias="{config.address}:{SIP_PORT}"',
        *aliases,
        *(f'loadmodule "{name}.so"' for name in MODULES),
        'modparam("usrloc", "db_mode", 0)',
        'modparam("registrar", "received_avp", "$avp(RECEIVED)")',
        'modparam("nathelper", "received_avp", "$avp(RECEIVED)")',
        'modparam("rr", "append_fromtag", 1)',
    ]
    return "\n".join(head) + "\n\n" + ROUTES + "\n" + password_route(config.users)


def write(config: KamailioConfig, directory: Path) -> tuple[str, ...]:
    """Write kamailio.cfg into directory; the command that runs kamailio with it, in the
    foreground (-DD), logging to stderr (-E)."""
    directory.mkdir(parents=True, exist_ok=True)
    config.runtime.mkdir(parents=True, exist_ok=True)
    path = directory / "kamailio.cfg"
    path.write_text(config_text(config))
    return (
        BINARY, "-DD", "-E", "-f", str(path),
        "-Y", str(config.runtime), "-P", str(config.runtime / "kamailio.pid"),
        "-m", str(SHARED_MEMORY), "-M", str(PRIVATE_MEMORY),
    )  # fmt: skip


def options_request(address: IPv4Address, source: tuple[str, int], tag: str) -> bytes:
    """An OPTIONS to the server itself (no user part), which it answers 200 when it serves."""
    host, port = source
    lines = [
        f"OPTIONS sip:{address}:{SIP_PORT} SIP/2.0",
        f"Via: SIP/2.0/UDP {host}:{port};branch=z9hG4bK{tag};rport",
        "Max-Forwards: 70",
        f"From: <sip:natlab@{host}>;tag={tag}",
        f"To: <sip:{address}:{SIP_PORT}>",
        f"Call-ID: {tag}@natlab",
        "CSeq: 1 OPTIONS",
        "Content-Length: 0",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()
