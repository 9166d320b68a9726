"""`impair:` on a router's interfaces: into the model, on to the daemon, refused when bad."""

from __future__ import annotations

import pytest

from natlab.core.impair import Impairment, LinkImpairment
from natlab.errors import NatlabError
from natlab.lab.routers import daemon_config
from natlab.router.config import DaemonConfig
from natlab.topology import parse_topology

TOPOLOGY = """\
name: t
segments:
  internet: {{subnet: 203.0.113.0/24}}
  lan: {{subnet: 10.0.0.0/24}}
routers:
  r:
    wan:
      segment: internet
      impair: {wan}
    lan: {{segment: lan}}
hosts:
  pc: {{segment: lan}}
"""


def topology(wan: str):
    return parse_topology(TOPOLOGY.format(wan=wan), "t.yaml")


def test_impairment_reaches_the_daemon_config() -> None:
    parsed = topology("{loss: 2%, delay: 80ms, seed: 7, out: {rate: 1mbit, queue: 20}}")
    router = parsed.routers["r"]
    expected = LinkImpairment(
        inbound=Impairment(loss=0.02, delay=0.08),
        outbound=Impairment(loss=0.02, delay=0.08, rate=1000, queue=20),
        seed=7,
    )
    assert router.wan.impair == expected
    assert router.lans[0].impair is None
    config = daemon_config(parsed, router, "lab-x", lambda r: True)
    assert config.impairments == {"internet": expected}
    assert DaemonConfig.from_json(config.to_json()) == config


def test_a_config_without_impairments_still_loads() -> None:
    parsed = topology("{}")
    data = daemon_config(parsed, parsed.routers["r"], "lab-x", lambda r: True).to_json()
    del data["impairments"]  # written by a natlab from before impairments
    assert DaemonConfig.from_json(data).impairments == {}


@pytest.mark.parametrize(
    ("wan", "says"),
    [
        ("{loss: 150%}", "loss is a percentage from 0 to 100"),
        ("{delay: 50}", "delay is a duration up to 10s"),
        ("{in: {jitter: 5ms}}", "in.jitter varies a delay"),
        ("{lost: 5%}", "lost: no such setting"),
        ("{out: 5}", "out is a mapping of settings"),
        ("{rate: -1}", "rate is kbit/s"),
    ],
)
def test_bad_impairment_names_file_line_and_field(wan: str, says: str) -> None:
    with pytest.raises(NatlabError) as caught:
        topology(wan)
    error = caught.value
    assert (error.file, error.line, error.field) == ("t.yaml", 9, "routers.r.wan.impair")
    assert says in error.problem
    assert "impair: {loss: 2%" in (error.fix or "")
