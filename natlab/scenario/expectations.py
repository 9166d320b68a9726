"""What a call should do, and whether it did: docs/design.md's NAT matrix as data, and the checks.

The matrix table is kept here and only here; a unit test reads it back
against the bullet list of docs/design.md ("The reference expectation: the NAT
matrix"), so the two cannot drift apart unnoticed.
"""

from __future__ import annotations

from natlab.records import NO_MEDIA, TWO_WAY, CallReport, Check, ProbeReport, SelectedPair
from natlab.scenario.model import PairExpectation

PUBLIC = "public"  # a phone on a public address: its router only routes (preset none)
TYPES = ("full-cone", "restricted", "port-restricted", "symmetric", PUBLIC)
UNKNOWN = "unknown"  # a report that would tell was lost: no expectation holds against it

# docs/design.md: "symmetric against port-restricted or symmetric fails"; every other pair works,
# and "a media relay (an SBC relaying media, or TURN) makes every pair work".
FAILING_PAIRS = frozenset({frozenset({"symmetric", "port-restricted"}), frozenset({"symmetric"})})


def nat_preset(kind: str) -> str:
    """The router preset behind a matrix type: a public phone's router does not translate."""
    return "none" if kind == PUBLIC else kind


def expected_media(a: str, b: str, relay: bool = False) -> str:
    """The verdict docs/design.md's table gives two phones behind NATs of types a and b."""
    if relay or frozenset({a, b}) not in FAILING_PAIRS:
        return TWO_WAY
    return NO_MEDIA


def media_matches(expected: str, verdict: str) -> bool:
    """`none` is the phones' "no media"; `one-way` is either direction."""
    if expected == "none":
        return verdict == NO_MEDIA
    if expected == "one-way":
        return verdict.startswith("one-way")
    return verdict == expected


def pair_matches(expected: PairExpectation, selected: SelectedPair | None) -> bool:
    """A kind is at either end of the pair (host: at both); local/remote name each end."""
    if selected is None:
        return False
    local, remote = types = selected.local.type, selected.remote.type
    if expected.kind == "host":
        return local == remote == "host"
    if expected.kind is not None:
        return expected.kind in types
    return expected.local in (None, local) and expected.remote in (None, remote)


def describe_pair(selected: SelectedPair | None) -> str:
    return "none selected" if selected is None else selected.describe()


def observed_media(report: CallReport) -> str:
    """The media of a call, from the caller's CallReport.

    The caller judges from both phones' counts. When the callee's never came
    back (it, or the signalling path, went away) while the caller sent RTP,
    whether the callee heard anything is not known: the phone's own guess
    ("callee hears nothing") would read as a NAT result.
    """
    if report.peer_rtp is None and report.rtp.sent > 0:
        return UNKNOWN
    return report.verdict


def check_call(media: str | None, pair: PairExpectation | None, report: CallReport) -> list[Check]:
    """A call step's expectations against the caller's CallReport."""
    checks = []
    if media is not None:
        verdict = observed_media(report)
        seen = f"{verdict} ({report.error})" if report.error else verdict
        checks.append(Check("media", media, seen, media_matches(media, verdict)))
    if pair is not None:
        selected = report.selected_pair
        checks.append(
            Check("selected pair", str(pair), describe_pair(selected), pair_matches(pair, selected))
        )
    return checks


def lost_call(media: str | None, pair: PairExpectation | None, why: str) -> list[Check]:
    """A call step's expectations when the caller's report never came: each observed unknown."""
    seen = f"{UNKNOWN} (no report: {why})"
    wanted = [("media", media), ("selected pair", pair)]
    return [Check(what, str(value), seen, False) for what, value in wanted if value is not None]


def check_probe(expect: dict[str, str], report: ProbeReport) -> list[Check]:
    """A probe's expectations (nat: the classic name; mapping; filtering) against discovery's."""
    observed = {"nat": report.name, **report.to_json()}
    return [
        Check(what, wanted, str(observed.get(what)), observed.get(what) == wanted)
        for what, wanted in expect.items()
    ]
