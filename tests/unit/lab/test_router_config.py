"""The config the lab hands a router daemon: the JSON it writes is the typed config back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from natlab.core.behaviour import PRESETS, Behaviour
from natlab.core.engine import StaticMap
from natlab.core.packets import Proto
from natlab.lab.routers import daemon_config
from natlab.router.config import DaemonConfig
from natlab.topology import load_topology

PBX_ACCESS = load_topology("pbx-public-access")  # a router with forwards and a STUN responder
MAIN_BRANCH = load_topology("main-branch")


def configs() -> list[DaemonConfig]:
    return [
        daemon_config(topology, router, "lab-x", lambda r: r.behaviour.translate)
        for topology in (MAIN_BRANCH, PBX_ACCESS)
        for router in topology.routers.values()
    ]


@pytest.mark.parametrize("config", configs(), ids=lambda c: c.router)
def test_the_file_the_lab_writes_is_the_daemon_s_config(config: DaemonConfig, tmp_path: Path):
    path = tmp_path / "r.json"
    config.save(path)
    loaded = DaemonConfig.load(path)
    assert loaded == config
    assert isinstance(loaded.behaviour, Behaviour)
    assert all(isinstance(m.proto, Proto) for m in loaded.static_maps)
    assert json.loads(path.read_text()) == config.to_json()  # plain JSON, nothing pickled


def test_the_config_carries_the_topology_s_router_whole():
    """Forwards become static maps, the behaviour goes as it is, the WAN comes first."""
    router = PBX_ACCESS.routers["main"]
    config = daemon_config(PBX_ACCESS, router, "lab-x", lambda r: True)
    assert config.static_maps and config.stun_ports == (3478, 3479)
    assert config.behaviour == router.behaviour
    assert config.ports[0].name == router.wan.name
    assert [
        (m.proto.name.lower(), m.external_ports, m.internal_address, m.internal_ports)
        for m in config.static_maps
    ] == [(f.proto, f.external_ports, str(f.address), f.internal_ports) for f in router.forwards]


def test_a_changed_behaviour_goes_to_the_daemon():
    topology = MAIN_BRANCH.with_behaviours({"branch1": PRESETS["symmetric"]})
    config = daemon_config(topology, topology.routers["branch1"], "l", lambda r: True)
    assert DaemonConfig.from_json(config.to_json()).behaviour == PRESETS["symmetric"]


def test_static_maps_keep_their_protocol():
    config = configs()[0]
    udp = StaticMap("udp", (5060, 5060), "10.0.0.2", (5060, 5060))
    again = DaemonConfig.from_json({**config.to_json(), "static_maps": [
        {"proto": "udp", "external_ports": [5060, 5060], "internal_address": "10.0.0.2",
         "internal_ports": [5060, 5060]}
    ]})  # fmt: skip
    assert again.static_maps == (udp,)
