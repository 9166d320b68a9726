"""The matrix table is docs/design.md's, and expectations are held to reports as documented.

The table in natlab.scenario.expectations is read back against the text of
docs/design.md's bullet list: each bullet is turned into the pairs it speaks of,
so a change to either side that the other does not follow fails here.
"""

import itertools
import re
from dataclasses import replace
from pathlib import Path

import pytest

from natlab.records import CallReport, Candidate, ProbeReport, SelectedPair
from natlab.scenario.expectations import (
    NO_MEDIA,
    PUBLIC,
    TWO_WAY,
    TYPES,
    check_call,
    check_probe,
    expected_media,
    media_matches,
    nat_preset,
    pair_matches,
)
from natlab.scenario.model import PairExpectation

DESIGN = Path(__file__).resolve().parents[3] / "docs/design.md"
PRESETS = ("full-cone", "restricted", "port-restricted", "symmetric")


def matrix_bullets() -> list[str]:
    """The bullets under "The reference expectation: the NAT matrix", one string each."""
    text = DESIGN.read_text()
    section = text.split("## The reference expectation: the NAT matrix", 1)[1].split("\n## ", 1)[0]
    bullets: list[str] = []
    for line in section.splitlines():
        if line.startswith("- "):
            bullets.append(line[2:])
        elif bullets and line.startswith("  ") and line.strip():
            bullets[-1] += " " + line.strip()
    return bullets


def names_in(text: str) -> list[str]:
    """Preset names in order of appearance; 'restricted' inside 'port-restricted' is not one."""
    return [
        m[0]
        for m in re.finditer(r"(?<![\w-])(full-cone|port-restricted|restricted|symmetric)", text)
    ]


def table_from_design() -> tuple[dict[frozenset, str], bool, bool]:
    """(verdict per pair, relay makes every pair work, same LAN uses host candidates)."""
    table: dict[frozenset, str] = {}
    relay_fixes_all = same_lan_host = False

    def say(a: str, b: str, verdict: str) -> None:
        pair = frozenset({a, b})
        assert table.get(pair, verdict) == verdict, f"docs/design.md contradicts itself: {a} x {b}"
        table[pair] = verdict

    for bullet in matrix_bullets():
        names = names_in(bullet)
        if "work in any combination" in bullet:
            for a, b in itertools.combinations_with_replacement(names, 2):
                say(a, b, TWO_WAY)
        elif " works only against " in bullet:
            subject, partners = names[0], names[1:]
            for other in PRESETS:
                say(subject, other, TWO_WAY if other in partners else NO_MEDIA)
        elif bullet.rstrip(";.").endswith(" fails"):
            subject, partners = names[0], names[1:]
            for other in partners:
                say(subject, other, NO_MEDIA)
        elif "public address" in bullet and "works with every kind" in bullet:
            for other in (*PRESETS, PUBLIC):
                say(PUBLIC, other, TWO_WAY)
        elif "relay" in bullet and "makes every pair work" in bullet:
            relay_fixes_all = True
        elif "same LAN" in bullet and "(host)" in bullet:
            same_lan_host = True
        else:
            pytest.fail(f"a bullet of docs/design.md's matrix this test cannot read: {bullet!r}")
    return table, relay_fixes_all, same_lan_host


def test_design_md_bullets_are_the_table():
    table, relay_fixes_all, same_lan_host = table_from_design()
    assert set(table) == {frozenset(p) for p in itertools.product(TYPES, repeat=2)}, (
        "docs/design.md's bullets must decide every pair of the five types"
    )
    for a, b in itertools.product(TYPES, repeat=2):
        assert expected_media(a, b) == table[frozenset({a, b})], f"{a} x {b}"
    assert relay_fixes_all
    assert all(expected_media(a, b, relay=True) == TWO_WAY for a in TYPES for b in TYPES)
    assert same_lan_host  # the scenario same-lan.yaml holds that claim


def test_the_bullet_reader_would_see_a_changed_claim():
    """Guard against a reader that agrees with anything: a flipped claim changes its table."""
    table, _, _ = table_from_design()
    assert table[frozenset({"symmetric", "restricted"})] == TWO_WAY
    assert table[frozenset({"symmetric"})] == NO_MEDIA
    assert table[frozenset({"port-restricted", "symmetric"})] == NO_MEDIA
    assert names_in("symmetric against port-restricted or symmetric fails") == [
        "symmetric",
        "port-restricted",
        "symmetric",
    ]


def test_public_routes_without_translation():
    assert nat_preset(PUBLIC) == "none"
    assert [nat_preset(kind) for kind in PRESETS] == list(PRESETS)


@pytest.mark.parametrize(
    ("expected", "verdict", "ok"),
    [
        ("two-way", "two-way", True),
        ("two-way", "one-way (caller hears nothing)", False),
        ("none", "no media", True),
        ("none", "two-way", False),
        ("one-way", "one-way (callee hears nothing)", True),
        ("one-way", "one-way (caller hears nothing)", True),
        ("one-way", "no media", False),
        ("one-way (caller hears nothing)", "one-way (callee hears nothing)", False),
    ],
)
def test_media_matches(expected, verdict, ok):
    assert media_matches(expected, verdict) is ok


def pair(local: str, remote: str) -> SelectedPair:
    return SelectedPair(Candidate("10.1.0.2:5000", local), Candidate("203.0.113.3:1024", remote))


@pytest.mark.parametrize(
    ("expected", "selected", "ok"),
    [
        (PairExpectation(kind="host"), pair("host", "host"), True),
        (PairExpectation(kind="host"), pair("host", "srflx"), False),
        (PairExpectation(kind="srflx"), pair("host", "srflx"), True),
        (PairExpectation(kind="relay"), pair("host", "srflx"), False),
        (PairExpectation(kind="prflx"), pair("prflx", "srflx"), True),
        (PairExpectation(local="host", remote="prflx"), pair("host", "prflx"), True),
        (PairExpectation(local="host", remote="prflx"), pair("host", "srflx"), False),
        (PairExpectation(remote="relay"), pair("srflx", "relay"), True),
        (PairExpectation(kind="srflx"), None, False),
    ],
)
def test_pair_matches(expected, selected, ok):
    assert pair_matches(expected, selected) is ok


def test_check_call_reports_each_expectation():
    report = CallReport("c1", "phone-b", "phone-c", "ice", "caller", verdict="no media")
    media, selected = check_call("two-way", PairExpectation(kind="srflx"), report)
    assert (media.what, media.expected, media.observed, media.ok) == (
        "media",
        "two-way",
        "no media",
        False,
    )
    assert (selected.expected, selected.observed, selected.ok) == ("srflx", "none selected", False)
    assert check_call(None, None, report) == []
    (refused,) = check_call("none", None, replace(report, error="the call was refused"))
    assert (refused.observed, refused.ok) == ("no media (the call was refused)", True)


def test_check_probe_compares_the_classic_name_and_the_axes():
    report = ProbeReport(
        server="203.0.113.4:3478",
        local="10.1.0.2:5000",
        mapped="203.0.113.2:1024",
        other=None,
        mapping="address-and-port-dependent",
        filtering=None,
        hairpin=None,
        lifetime=None,
        name="symmetric",
    )
    checks = check_probe({"nat": "symmetric", "filtering": "address-dependent"}, report)
    assert [(c.what, c.observed, c.ok) for c in checks] == [
        ("nat", "symmetric", True),
        ("filtering", "None", False),
    ]
