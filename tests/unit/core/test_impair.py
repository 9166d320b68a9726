"""Link impairment decisions (core/impair.py): seeded, bounded, and what they claim to be."""

from __future__ import annotations

import itertools
import random
import statistics

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from natlab.core.impair import (
    NONE,
    Drop,
    GilbertElliott,
    Impairment,
    LinkImpairment,
    Shaper,
    link_impairment,
    parse_settings,
)

FRAME = 200  # bytes


def fates(impairment: Impairment, seed: str, arrivals: list[float], size: int = FRAME) -> list:
    shaper = Shaper(impairment, seed)
    return [shaper.decide(at, size) for at in arrivals]


def steady(count: int, gap: float = 0.001) -> list[float]:
    return [i * gap for i in range(count)]


# -- reading settings -------------------------------------------------------------------


def test_settings_as_the_cli_writes_them() -> None:
    link = parse_settings(["loss=2%", "delay=80ms", "jitter=10ms", "rate=1mbit", "seed=7"])
    assert link.inbound == link.outbound
    assert link.outbound == Impairment(loss=0.02, delay=0.08, jitter=0.01, rate=1000)
    assert link.seed == 7
    assert link.describe() == "loss=2% delay=80ms jitter=10ms rate=1000kbit seed=7"


def test_one_direction() -> None:
    link = parse_settings(["delay=50ms", "out.loss=1%"])
    assert link.inbound == Impairment(delay=0.05)
    assert link.outbound == Impairment(delay=0.05, loss=0.01)
    assert link.describe() == "in.delay=50ms out.loss=1% out.delay=50ms seed=0"


def test_topology_mapping_with_directions() -> None:
    link = link_impairment({"delay": 0.02, "in": {"loss": 5}, "seed": 3})
    assert link.inbound == Impairment(delay=0.02, loss=0.05)
    assert link.outbound == Impairment(delay=0.02)


def test_json_round_trip() -> None:
    link = parse_settings(["loss=5%", "burst=3", "in.duplicate=1%", "delay=1s", "reorder=2%"])
    assert LinkImpairment.from_json(link.to_json()) == link


def test_none_clears() -> None:
    assert not parse_settings(["none"]).active
    assert NONE.describe() == ""


@pytest.mark.parametrize(
    ("item", "says"),
    [
        ("loss=200%", "loss is a percentage from 0 to 100"),
        ("loss=lots", "loss is a percentage"),
        ("delay=11s", "delay is a duration up to 10s"),
        ("delay=-5ms", "delay is a duration"),
        ("jitter=5ms", "jitter varies a delay"),
        ("rate=fast", "rate is kbit/s"),
        ("queue=0", "queue is a whole number from 1"),
        ("distribution=pareto", "distribution is one of uniform, normal"),
        ("burst=4", "burst needs a loss"),
        ("reorder=5%", "reorder lets frames skip the delay"),
        ("colour=red", "colour: no such setting"),
        ("loss", "is not KEY=VALUE"),
        ("in.los=1%", "in.los: no such setting"),
        ("seed=-1", "seed is a whole number"),
    ],
)
def test_bad_settings_say_what_is_wrong(item: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        parse_settings([item])


# -- deciding ---------------------------------------------------------------------------

impairments = st.builds(
    Impairment,
    loss=st.floats(0, 0.5),
    delay=st.floats(0.001, 0.2),
    jitter=st.floats(0, 0.05),
    distribution=st.sampled_from(["uniform", "normal"]),
    duplicate=st.floats(0, 0.5),
    rate=st.integers(0, 100_000),
    queue=st.integers(1, 200),
)
arrival_gaps = st.lists(st.floats(0, 0.01), min_size=1, max_size=300)


def _times(gaps: list[float]) -> list[float]:
    at, out = 0.0, []
    for gap in gaps:
        at += gap
        out.append(at)
    return out


@given(impairments, arrival_gaps, st.integers(0, 2**32 - 1))
def test_same_seed_same_fates(impairment: Impairment, gaps: list[float], seed: int) -> None:
    arrivals = _times(gaps)
    assert fates(impairment, str(seed), arrivals) == fates(impairment, str(seed), arrivals)


@given(impairments, arrival_gaps, st.integers(0, 2**32 - 1))
def test_the_short_way_decides_as_the_long_one_would(
    impairment: Impairment, gaps: list[float], seed: int
) -> None:
    """A shaper with only independent loss and a fixed delay takes `_in_order`; every
    frame's fate is the one the way for every setting (`_any`) gives it."""
    simple = Impairment(loss=impairment.loss, delay=impairment.delay)
    short, long = Shaper(simple, str(seed)), Shaper(simple, str(seed))
    assert short.decide == short._in_order
    arrivals = _times(gaps)
    assert [short.decide(at, FRAME) for at in arrivals] == [long._any(at, FRAME) for at in arrivals]


def test_any_other_setting_takes_the_long_way() -> None:
    for other in ("burst=4", "jitter=5ms", "duplicate=1%", "reorder=1%", "rate=1mbit"):
        impairment = parse_settings(["loss=5%", "delay=10ms", other]).outbound
        shaper = Shaper(impairment, "s")
        assert shaper.decide == shaper._any, other


@given(st.integers(0, 1000))
def test_different_seeds_differ(seed: int) -> None:
    lossy = Impairment(loss=0.5)
    assert fates(lossy, str(seed), steady(200)) != fates(lossy, str(seed + 1), steady(200))


@given(impairments, arrival_gaps)
def test_nothing_leaves_before_it_came_nor_out_of_order(
    impairment: Impairment, gaps: list[float]
) -> None:
    """Without `reorder`, frames leave in the order they came; never before they came."""
    last = 0.0
    for at, fate in zip(_times(gaps), fates(impairment, "s", _times(gaps)), strict=True):
        if isinstance(fate, Drop):
            continue
        assert 1 <= len(fate) <= 2
        for leaves in fate:
            assert leaves >= at
            assert leaves >= last
            last = leaves


@given(st.integers(1, 20_000), st.integers(1, 100), arrival_gaps)
def test_rate_never_exceeded_and_queue_bounded(rate: int, queue: int, gaps: list[float]) -> None:
    """Frames leave at most `rate` apart (the link serialises them) and at most `queue` wait."""
    impairment = Impairment(rate=rate, queue=queue)
    shaper = Shaper(impairment, "s")
    serialise = FRAME * 8 / (rate * 1000)
    sent: list[float] = []
    for at in _times(gaps):
        fate = shaper.decide(at, FRAME)
        waiting = sum(1 for leaves in sent if leaves > at)
        if isinstance(fate, Drop):
            assert fate is Drop.QUEUE
            assert waiting >= queue
            continue
        assert waiting < queue
        (leaves,) = fate
        assert leaves >= at + serialise - 1e-9
        if sent:
            assert leaves - sent[-1] >= serialise - 1e-9
        sent.append(leaves)
    # over any stretch, bits out / time <= rate
    if len(sent) > 1:
        assert (len(sent) - 1) * FRAME * 8 <= rate * 1000 * (sent[-1] - sent[0]) + 1e-6


@settings(max_examples=20, deadline=None)
@given(st.floats(0.01, 0.3), st.integers(0, 1000))
def test_loss_rate_converges(loss: float, seed: int) -> None:
    count = 20_000
    lost = sum(
        1 for fate in fates(Impairment(loss=loss), str(seed), steady(count)) if fate is Drop.LOSS
    )
    assert abs(lost / count - loss) < 4 * (loss * (1 - loss) / count) ** 0.5 + 0.002


@settings(max_examples=20, deadline=None)
@given(st.floats(0.02, 0.2), st.floats(1.5, 8), st.integers(0, 1000))
def test_burst_loss_converges_and_comes_in_bursts(loss: float, burst: float, seed: int) -> None:
    count = 60_000
    lost = [
        fate is Drop.LOSS
        for fate in fates(Impairment(loss=loss, burst=burst), str(seed), steady(count))
    ]
    assert abs(sum(lost) / count - loss) < 0.25 * loss + 0.005
    runs, current = [], 0
    for one in lost:
        if one:
            current += 1
        elif current:
            runs.append(current)
            current = 0
    assert abs(statistics.mean(runs) - burst) < 0.25 * burst


def test_gilbert_elliott_long_run_loss() -> None:
    chain = GilbertElliott(0.05, 0.2, random.Random(1), bad_loss=0.8, good_loss=0.01)
    count = 100_000
    lost = sum(chain.lost() for _ in range(count))
    expected = (0.05 * 0.8 + 0.2 * 0.01) / 0.25
    assert abs(lost / count - expected) < 0.01


def test_delay_and_jitter_distribution() -> None:
    for distribution in ("uniform", "normal"):
        impairment = Impairment(delay=0.05, jitter=0.01, distribution=distribution)
        gap = 0.1  # far enough apart that no frame waits for the one before
        added = [
            fate[0] - at
            for at, fate in zip(
                steady(5000, gap), fates(impairment, "d", steady(5000, gap)), strict=False
            )
        ]
        assert abs(statistics.median(added) - 0.05) < 0.001
        if distribution == "uniform":
            assert min(added) >= 0.04 - 1e-9 and max(added) <= 0.06 + 1e-9
        spread = statistics.pstdev(added)
        expected = 0.01 / 3**0.5 if distribution == "uniform" else 0.01
        assert abs(spread - expected) < 0.1 * expected


def test_fixed_delay_is_exact() -> None:
    assert fates(Impairment(delay=0.02), "d", [1.0, 1.5]) == [(1.02,), (1.52,)]


def test_duplication_rate() -> None:
    count = 20_000
    twice = sum(len(f) == 2 for f in fates(Impairment(duplicate=0.1), "d", steady(count)))
    assert abs(twice / count - 0.1) < 0.01


def test_reorder_only_when_asked() -> None:
    impairment = Impairment(delay=0.05, reorder=0.2)
    arrivals = steady(5000)
    leaving = [fate[0] for fate in fates(impairment, "r", arrivals)]
    overtaken = sum(1 for a, b in itertools.pairwise(leaving) if b < a)
    assert 0.15 < overtaken / len(arrivals) < 0.25
    assert [f[0] for f in fates(Impairment(delay=0.05, jitter=0.04), "r", arrivals)] == sorted(
        f[0] for f in fates(Impairment(delay=0.05, jitter=0.04), "r", arrivals)
    )


def test_unimpaired_passes_everything_at_once() -> None:
    assert fates(NONE, "n", [0.5, 0.7]) == [(0.5,), (0.7,)]
