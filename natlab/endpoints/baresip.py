"""baresip, a real softphone, as a lab phone (`role: phone, agent: baresip`): its configuration.

natlab writes a configuration directory for each such phone (config and
accounts, nothing read from the user's ~/.baresip) and starts `baresip -f DIR`
in the phone's node as a supervised program (natlab.lab.sip_software). The
configuration:

- listens for SIP on the node's address, port 5060 (UDP and TCP);
- registers one account, sip:NODE@REGISTRAR, with digest credentials, when
  the lab has a PBX the phone can reach over its transport (UDP unless the
  topology says TCP: the account's `transport` URI parameter, which its
  calls through the registrar follow); calls are answered by natlab
  (answermode=manual), never by baresip on its own;
- sends a 440 Hz tone (ausine) and plays nothing: no sound card is needed;
- learns its public address by STUN (medianat=stun) when the lab has a STUN
  service, so the SDP it sends behind a NAT carries a reachable address, as a
  softphone set up for NAT would; RTCP is multiplexed on the RTP port;
- serves its control interface (ctrl_tcp: JSON commands in netstrings) on the
  node's loopback, port CONTROL_PORT, for natlab.lab.baresip.BaresipPhone.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path

BINARY = "baresip"
PACKAGE = "baresip-core"  # the Debian package that has it (scripts/install.sh)
SIP_PORT = 5060
CONTROL_PORT = 4444  # ctrl_tcp, on 127.0.0.1 inside the node
TRANSPORT = "udp"  # how it registers and calls unless the topology's `sip: transport:` says
REGISTER_INTERVAL = 60  # seconds between registrations (also keeps the NAT mapping open)
TONE = 440  # Hz, the tone it sends
MODULES = ("g711.so", "ausine.so", "stun.so")  # codecs, the tone, STUN for media behind a NAT
APP_MODULES = ("account.so", "menu.so", "ctrl_tcp.so")  # accounts file, commands, control socket

Endpoint = tuple[str, int]  # an address and port


@dataclass(frozen=True)
class BaresipConfig:
    user: str  # the account's user part: the node's name
    address: IPv4Address  # the node's: baresip listens there
    registrar: Endpoint | None  # where it registers (None: no registrar it can reach)
    password: str
    stun: Endpoint | None = None  # a STUN service for its media's public address
    transport: str = TRANSPORT  # udp or tcp: the registrar's, hence its calls' too


def config_text(config: BaresipConfig) -> str:
    """baresip's `config` file."""
    lines = [
        "poll_method epoll",
        f"sip_listen {config.address}:{SIP_PORT}",
        "call_local_timeout 120",
        "call_max_calls 4",
        f"audio_source ausine,{TONE}",
        "audio_player none,none",
        "audio_alert none,none",
        "ausrc_srate 48000",  # ausine makes 48 kHz stereo only
        "ausrc_channels 2",
        "rtcp_mux yes",
        "rtp_stats yes",  # a call's RTP figures in the log when it ends
        "statmode_default off",  # no status line per frame in the log
        "module_path /usr/lib/baresip/modules",
        *(f"module {name}" for name in MODULES),
        *(f"module_app {name}" for name in APP_MODULES),
        f"ctrl_tcp_listen 127.0.0.1:{CONTROL_PORT}",
    ]
    return "\n".join(lines) + "\n"


def aor(config: BaresipConfig) -> str:
    """The account's address of record: at its registrar, or at itself without one."""
    if config.registrar is None:
        return f"sip:{config.user}@{config.address}:{SIP_PORT}"
    host, port = config.registrar
    return f"sip:{config.user}@{host}:{port}"


def accounts_text(config: BaresipConfig) -> str:
    """baresip's `accounts` file: one account."""
    params = ["answermode=manual"]
    if config.registrar is None:
        params.append("regint=0")
    else:
        params += [
            f"auth_user={config.user}",
            f"auth_pass={config.password}",
            f"regint={REGISTER_INTERVAL}",
        ]
    if config.stun is not None:
        host, port = config.stun
        params += ["medianat=stun", f"stunserver=stun:{host}:{port}"]
    return f"<{aor(config)};transport={config.transport}>;" + ";".join(params) + "\n"


def write(config: BaresipConfig, directory: Path) -> tuple[str, ...]:
    """Write the configuration into directory; the command that runs baresip with it."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config").write_text(config_text(config))
    (directory / "accounts").write_text(accounts_text(config))
    return (BINARY, "-f", str(directory))
