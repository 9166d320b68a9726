"""Token buckets per source (natlab.endpoints.ratelimit), with time as an argument."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from natlab.endpoints.ratelimit import TokenBuckets


def test_a_new_key_gets_its_burst_then_one_token_per_interval() -> None:
    buckets = TokenBuckets(rate=2.0, burst=3)
    assert [buckets.take("a", 10.0) for _ in range(4)] == [True, True, True, False]
    assert not buckets.take("a", 10.4)  # 0.8 of a token
    assert buckets.take("a", 10.5)  # one token: 0.5 s at 2 a second
    assert not buckets.take("a", 10.5)
    assert [buckets.take("a", 100.0) for _ in range(4)] == [True, True, True, False]  # capped


def test_keys_have_buckets_of_their_own() -> None:
    buckets = TokenBuckets(rate=1.0, burst=1)
    assert buckets.take("a", 0.0) and not buckets.take("a", 0.0)
    assert buckets.take("b", 0.0)


def test_a_clock_going_back_gives_nothing_back() -> None:
    buckets = TokenBuckets(rate=1.0, burst=1)
    assert buckets.take("a", 5.0)
    assert not buckets.take("a", 1.0)
    assert not buckets.take("a", 5.5)


def test_keys_are_bounded_forgetting_the_least_recently_seen() -> None:
    buckets = TokenBuckets(rate=1.0, burst=1, limit=3)
    for key in "abc":
        buckets.take(key, 0.0)
    buckets.take("a", 0.0)  # seen again: now the newest
    buckets.take("d", 0.0)  # makes room by forgetting b
    assert len(buckets) == 3
    assert not buckets.take("a", 0.0)  # still remembered, still empty
    assert buckets.take("b", 0.0)  # forgotten: a fresh bucket


@pytest.mark.parametrize(("rate", "burst", "limit"), [(0, 1, 1), (1, 0.5, 1), (1, 1, 0)])
def test_a_bucket_without_rate_room_or_keys_is_refused(rate, burst, limit) -> None:
    with pytest.raises(ValueError):
        TokenBuckets(rate, burst, limit)


@given(
    rate=st.floats(0.1, 50),
    burst=st.integers(1, 20),
    gaps=st.lists(st.floats(0, 2), max_size=200),
)
def test_no_window_gets_more_than_the_burst_plus_what_the_rate_refills(
    rate: float, burst: int, gaps: list[float]
) -> None:
    buckets = TokenBuckets(rate, burst)
    now, allowed = 0.0, []
    for gap in gaps:
        now += gap
        if buckets.take("k", now):
            allowed.append(now)
    for i, start in enumerate(allowed):
        for j in range(i, len(allowed)):
            assert j - i + 1 <= burst + (allowed[j] - start) * rate + 1e-9
    # and it is not stingier than that: a key that waited long enough always gets one
    assert buckets.take("k", now + 1.01 / rate)
