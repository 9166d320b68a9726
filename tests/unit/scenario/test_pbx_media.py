"""A call's explanation says why natlab's PBX relayed its media, or why not, as the PBX says."""

from __future__ import annotations

from types import SimpleNamespace

from natlab.errors import NatlabError
from natlab.scenario.model import TOPOLOGIES
from natlab.scenario.runner import _Runner
from natlab.topology import load_topology

WHY = "the PBX relayed the media: phone-b is behind NAT: Contact 10.1.0.2, seen from 203.0.113.3"


def said(calls: dict | None) -> list[str]:
    def pbx() -> SimpleNamespace:
        if calls is None:
            raise NatlabError("no PBX answers")
        return SimpleNamespace(calls=lambda: calls)

    lab = SimpleNamespace(topology=load_topology(TOPOLOGIES / "main-branch.yaml"), pbx=pbx)
    return _Runner(lab).pbx_media("c1")  # type: ignore[arg-type]


def test_the_pbx_s_reason_is_the_explanation_s_line() -> None:
    assert said({"c1": {"media": WHY}, "c2": {"media": "other"}}) == [WHY]


def test_no_reason_no_call_or_no_answer_says_nothing() -> None:
    assert said({"c1": {"caller": "phone-b"}}) == []
    assert said({}) == []
    assert said(None) == []
