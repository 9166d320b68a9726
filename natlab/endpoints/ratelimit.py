"""Token buckets per source: how often an endpoint answers someone it does not know.

An endpoint that answers every datagram from a stranger can be made to
answer a forged source as fast as the forger sends, and to answer another
endpoint that answers back. The PBX tells a stranger "not registered" only
while that stranger's bucket holds a token. Time is an argument, so the
buckets are tested without waiting.
"""

from __future__ import annotations

from collections.abc import Hashable

KEYS_LIMIT = 1024  # sources remembered; a flood from forged sources stays bounded


class TokenBuckets:
    """One bucket per key: `burst` tokens to start with, refilled at `rate` tokens a second.

    At most `limit` keys are kept; a new key past that makes the least
    recently seen one forgotten.
    """

    def __init__(self, rate: float, burst: float, limit: int = KEYS_LIMIT) -> None:
        if rate <= 0 or burst < 1 or limit < 1:
            raise ValueError("a bucket needs a positive rate, room for a token and a key")
        self.rate, self.burst, self.limit = rate, burst, limit
        self._buckets: dict[Hashable, tuple[float, float]] = {}  # key -> (tokens, at)

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, key: Hashable, now: float) -> bool:
        """Spend one of `key`'s tokens at time `now`; False when it has none left."""
        buckets = self._buckets
        found = buckets.pop(key, None)  # put back below, so the least recently used is first
        if found is None:
            tokens = self.burst
            if len(buckets) >= self.limit:
                del buckets[next(iter(buckets))]
        else:
            held, at = found
            tokens = min(self.burst, held + max(0.0, now - at) * self.rate)
            now = max(now, at)  # a clock that went back refills nothing twice
        allowed = tokens >= 1
        buckets[key] = (tokens - 1 if allowed else tokens, now)
        return allowed
