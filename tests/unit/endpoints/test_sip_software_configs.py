"""The configurations natlab writes for baresip and kamailio.

kamailio's own parser checks the generated kamailio.cfg (`kamailio -c`), so a
script kamailio would refuse fails here, not in a lab.
"""

import subprocess
from ipaddress import IPv4Address

import pytest

from natlab.endpoints import baresip, kamailio
from natlab.sip.message import RequestLine, parse

ADDRESS = IPv4Address("203.0.113.5")


def kamailio_config(tmp_path, users=None) -> kamailio.KamailioConfig:
    return kamailio.KamailioConfig(
        address=ADDRESS,
        aliases=(("198.51.100.1", 5060),),
        users=users or {"alice": "natlab", "bob-2.x": "s3cret"},
        runtime=tmp_path / "run",
    )


def test_kamailio_accepts_the_generated_script(tmp_path):
    argv = kamailio.write(kamailio_config(tmp_path), tmp_path / "cfg")
    assert argv[:3] == ("kamailio", "-DD", "-E")  # foreground, logging to stderr
    script = argv[argv.index("-f") + 1]
    done = subprocess.run(
        ["kamailio", "-c", "-f", script], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr[-2000:]
    text = (tmp_path / "cfg" / "kamailio.cfg").read_text()
    for needed in (
        "listen=udp:203.0.113.5:5060",
        'alias="198.51.100.1:5060"',
        'modparam("usrloc", "db_mode", 0)',
        "fix_nated_register()",
        "fix_nated_contact()",
        "force_rport()",
        "pv_auth_check",
        '$fU == "bob-2.x") { $var(password) = "s3cret"',
    ):
        assert needed in text


@pytest.mark.parametrize(
    "users",
    [{'a"; exit; "': "x"}, {"alice": 'pass"word'}, {"alice": "back\\slash"}, {"alice\n": "x"}],
)
def test_kamailio_refuses_users_that_would_break_out_of_the_script(tmp_path, users):
    with pytest.raises(ValueError, match=r"cannot stand in kamailio\.cfg"):
        kamailio.config_text(kamailio_config(tmp_path, users))


def test_the_readiness_probe_is_an_options_to_the_server_itself():
    message = parse(kamailio.options_request(ADDRESS, ("203.0.113.5", 40000), "abc"))
    assert message.start == RequestLine("OPTIONS", "sip:203.0.113.5:5060")
    assert message.get("Call-ID") == "abc@natlab"


def test_baresip_registers_with_credentials_and_uses_stun_for_media(tmp_path):
    config = baresip.BaresipConfig(
        user="alice",
        address=IPv4Address("10.0.0.2"),
        registrar=("203.0.113.5", 5060),
        password="natlab",
        stun=("203.0.113.3", 3478),
    )
    argv = baresip.write(config, tmp_path)
    assert argv == ("baresip", "-f", str(tmp_path))
    accounts = (tmp_path / "accounts").read_text()
    assert accounts.startswith("<sip:alice@203.0.113.5:5060;transport=udp>;")
    for param in ("auth_user=alice", "auth_pass=natlab", "regint=60", "answermode=manual"):
        assert param in accounts
    assert "medianat=stun;stunserver=stun:203.0.113.3:3478" in accounts
    text = (tmp_path / "config").read_text()
    assert "sip_listen 10.0.0.2:5060" in text
    assert "ctrl_tcp_listen 127.0.0.1:4444" in text
    assert "audio_source ausine,440" in text
    assert "alsa" not in text  # no sound card


def test_baresip_without_a_registrar_listens_on_its_own_address(tmp_path):
    config = baresip.BaresipConfig("bob", IPv4Address("10.0.0.3"), None, "natlab")
    accounts = baresip.accounts_text(config)
    assert accounts.startswith("<sip:bob@10.0.0.3:5060;transport=udp>;")
    assert "regint=0" in accounts
    assert "auth_pass" not in accounts
    assert "medianat" not in accounts
