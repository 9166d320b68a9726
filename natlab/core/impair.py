"""Link impairments: what a lossy, slow, jittery link does to each packet, decided purely.

This kernel has no netem, so natlab's own router daemon impairs its links.
A `Shaper` is one direction of one router interface: given the time a frame
arrives and its size, it says what becomes of it, drawing from its own
seeded random generators, so that the same seed and the same packets give
the same fate every run. It keeps no clock: the daemon passes time in.

In the order netem applies them:

1. loss: independent (`loss`), or in bursts: a Gilbert-Elliott chain whose
   mean loss is `loss` and mean burst `burst` packets (bad state loses all,
   good state none); a lost packet is `Drop.LOSS`;
2. duplication: with probability `duplicate`, the frame goes out twice;
3. rate: a link of `rate` kbit/s serialises each copy after the one before;
   at most `queue` frames wait for it, a frame beyond that is `Drop.QUEUE`;
4. delay: `delay` plus a jitter drawn from `distribution` (uniform in
   +-jitter, or normal with standard deviation jitter). Frames leave in the
   order they came (a jittered frame waits for the one before it, as on a
   real link), except that with probability `reorder` a frame skips the
   delay and overtakes those waiting.

Settings come as text (`loss=2% delay=80ms`, the CLI and matrix) or as a
mapping (the topology's `impair:`), both through `link_impairment`, which
says what is wrong in a ValueError.
"""

from __future__ import annotations

import math
import random
import re
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, fields
from enum import StrEnum
from typing import Any

from natlab.core.durations import parse_duration

MAX_DELAY = 10.0  # seconds: a satellite hop is 0.6 s; more is a typo
MAX_RATE = 10_000_000  # kbit/s (10 Gbit/s)
MAX_QUEUE = 100_000  # frames
DEFAULT_QUEUE = 1000  # frames, as netem's default limit
MAX_BURST = 1000.0  # packets
DISTRIBUTIONS = ("uniform", "normal")
DIRECTIONS = ("in", "out")


class Drop(StrEnum):
    """Why an impaired link dropped a frame; the daemon's DropReason of the same name."""

    LOSS = "impairment-loss"
    QUEUE = "impairment-queue"


@dataclass(frozen=True)
class Impairment:
    """One direction's settings; the defaults impair nothing."""

    loss: float = 0.0  # fraction of frames lost, 0..1
    burst: float = 0.0  # mean loss burst in frames (Gilbert-Elliott); 0: independent losses
    delay: float = 0.0  # seconds
    jitter: float = 0.0  # seconds
    distribution: str = "uniform"
    duplicate: float = 0.0  # fraction of frames sent twice
    reorder: float = 0.0  # fraction of frames that skip the delay
    rate: int = 0  # kbit/s; 0: unlimited
    queue: int = DEFAULT_QUEUE  # frames waiting for the rate, at most

    def __post_init__(self) -> None:
        """Values in range, whoever built it (a control request too); ValueError if not."""
        for key, (kind, low, high) in _BOUNDS.items():
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, kind) or not low <= value <= high:
                raise ValueError(f"{key} is from {low} to {high}, not {value!r}")
        if self.burst and not (self.burst >= 1 and 0 < self.loss < 1):
            raise ValueError("burst needs a loss above 0% and below 100% (loss=5% burst=4)")
        if self.jitter and not self.delay:
            raise ValueError("jitter varies a delay: give a delay too (delay=80ms jitter=10ms)")
        if self.reorder and not self.delay:
            raise ValueError(
                "reorder lets frames skip the delay: give a delay too (delay=50ms reorder=5%)"
            )
        if self.distribution not in DISTRIBUTIONS:
            raise ValueError(
                f"distribution is one of {', '.join(DISTRIBUTIONS)}, not {self.distribution!r}"
            )

    @property
    def active(self) -> bool:
        return self != NONE

    def to_json(self) -> dict[str, Any]:
        """Only what differs from the defaults."""
        return {k: v for k, v in asdict(self).items() if v != getattr(NONE, k)}

    def describe(self) -> str:
        """The settings as `natlab link set` takes them."""
        return " ".join(f"{key}={_text(key, value)}" for key, value in self.to_json().items())


_NUMBER = (int, float)
_BOUNDS: dict[str, tuple[type | tuple[type, ...], float, float]] = {
    "loss": (_NUMBER, 0, 1),
    "burst": (_NUMBER, 0, MAX_BURST),
    "delay": (_NUMBER, 0, MAX_DELAY),
    "jitter": (_NUMBER, 0, MAX_DELAY),
    "duplicate": (_NUMBER, 0, 1),
    "reorder": (_NUMBER, 0, 1),
    "rate": (int, 0, MAX_RATE),
    "queue": (int, 1, MAX_QUEUE),
}
NONE = Impairment()


@dataclass(frozen=True)
class LinkImpairment:
    """Both directions of one router interface: `inbound` (frames that arrive on it)
    and `outbound` (frames the router sends on it); `seed` makes runs repeat."""

    inbound: Impairment = NONE
    outbound: Impairment = NONE
    seed: int = 0

    @property
    def active(self) -> bool:
        return self.inbound.active or self.outbound.active

    def direction(self, name: str) -> Impairment:
        return self.inbound if name == "in" else self.outbound

    def to_json(self) -> dict[str, Any]:
        return {"in": self.inbound.to_json(), "out": self.outbound.to_json(), "seed": self.seed}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LinkImpairment:
        """The inverse of to_json; ValueError (or TypeError for an unknown key) if it is bad."""
        seed = data.get("seed", 0)
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
            raise ValueError(f"seed is a whole number from 0 to {2**32 - 1}, not {seed!r}")
        return cls(Impairment(**data.get("in", {})), Impairment(**data.get("out", {})), seed)

    def describe(self) -> str:
        """One line: `none`, the settings if both directions have the same, else each."""
        if not self.active:
            return "none"
        if self.inbound == self.outbound:
            text = self.inbound.describe()
        else:
            text = " ".join(
                f"{name}.{item}"
                for name in DIRECTIONS
                for item in self.direction(name).describe().split()
            )
        return f"{text} seed={self.seed}"


# -- reading settings ----------------------------------------------------------------

_PERCENT = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*%?\s*$")
_RATE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(kbit|mbit|gbit)?(?:/s)?\s*$", re.IGNORECASE)
_RATE_UNITS = {"kbit": 1, "mbit": 1000, "gbit": 1_000_000}
KEYS = tuple(f.name for f in fields(Impairment))
FORMS = (
    "loss=2% burst=4 delay=80ms jitter=10ms distribution=normal duplicate=1% reorder=5% "
    "rate=1mbit queue=100 seed=7; prefix in. or out. for one direction (in.loss=1%); none"
)


def _percent(key: str, value: object) -> float:
    """2, 2.5, '2%', '2.5 %' -> 0.02, 0.025: a percentage from 0 to 100."""
    found = _PERCENT.match(value) if isinstance(value, str) else None
    number = float(found[1]) if found else value
    if isinstance(number, bool) or not isinstance(number, int | float) or not 0 <= number <= 100:
        raise ValueError(f"{key} is a percentage from 0 to 100 (2%), not {value!r}")
    return number / 100.0


def _seconds(key: str, value: object) -> float:
    try:
        seconds = parse_duration(value)
    except ValueError:
        seconds = math.inf
    if seconds > MAX_DELAY:
        raise ValueError(
            f"{key} is a duration up to {MAX_DELAY:g}s (80ms, 0.5s; a bare number is seconds), "
            f"not {value!r}"
        )
    return seconds


def _rate(key: str, value: object) -> int:
    found = _RATE.match(value) if isinstance(value, str) else None
    number: object = value
    if found:
        number = float(found[1]) * _RATE_UNITS[(found[2] or "kbit").lower()]
    if (
        isinstance(number, bool)
        or not isinstance(number, int | float)
        or not 0 <= number <= MAX_RATE
    ):
        raise ValueError(
            f"{key} is kbit/s up to 10gbit (a number of kbit/s, or 500kbit, 2mbit), not {value!r}"
        )
    return round(number)


def _whole(key: str, value: object, low: int, high: int) -> int:
    number: object = value
    if isinstance(value, str) and value.strip().isdigit():
        number = int(value)
    if isinstance(number, bool) or not isinstance(number, int) or not low <= number <= high:
        raise ValueError(f"{key} is a whole number from {low} to {high}, not {value!r}")
    return number


def _burst(key: str, value: object) -> float:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(value, bool) or not (number == 0 or 1 <= number <= MAX_BURST):
        raise ValueError(f"{key} is a mean burst of 1 to {MAX_BURST:g} packets, not {value!r}")
    return number


def _distribution(key: str, value: object) -> str:
    if value not in DISTRIBUTIONS:
        raise ValueError(f"{key} is one of {', '.join(DISTRIBUTIONS)}, not {value!r}")
    return str(value)


_READERS = {
    "loss": _percent,
    "burst": _burst,
    "delay": _seconds,
    "jitter": _seconds,
    "distribution": _distribution,
    "duplicate": _percent,
    "reorder": _percent,
    "rate": _rate,
    "queue": lambda key, value: _whole(key, value, 1, MAX_QUEUE),
}


def _text(key: str, value: Any) -> str:
    """A setting as it is written: 2%, 80ms, 1000kbit."""
    if key in ("loss", "duplicate", "reorder"):
        return f"{value * 100:g}%"
    if key in ("delay", "jitter"):
        return f"{value * 1000:g}ms"
    if key == "rate":
        return f"{value}kbit"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _impairment(settings: Mapping[str, object], where: str) -> Impairment:
    values: dict[str, Any] = {}
    for key, value in settings.items():
        reader = _READERS.get(key)
        if reader is None:
            raise ValueError(f"{where}{key}: no such setting; settings: {', '.join(KEYS)}")
        values[key] = reader(f"{where}{key}", value)
    try:
        return Impairment(**values)
    except ValueError as error:
        raise ValueError(f"{where}{error}") from None


def link_impairment(settings: Mapping[str, object], default_seed: int = 0) -> LinkImpairment:
    """A link's impairment from a mapping: settings for both directions, `in`/`out`
    mappings (or `in.KEY`/`out.KEY` keys) for one, `seed`. ValueError says what is wrong."""
    both: dict[str, object] = {}
    one: dict[str, dict[str, object]] = {"in": {}, "out": {}}
    seed = default_seed
    for key, value in settings.items():
        if key == "seed":
            seed = _whole("seed", value, 0, 2**32 - 1)
        elif key in one:
            if not isinstance(value, Mapping):
                raise ValueError(f"{key} is a mapping of settings for that direction ({FORMS})")
            one[key].update(value)
        elif "." in key and key.split(".", 1)[0] in one:
            direction, name = key.split(".", 1)
            one[direction][name] = value
        else:
            both[key] = value
    return LinkImpairment(
        _impairment({**both, **one["in"]}, "" if not one["in"] else "in."),
        _impairment({**both, **one["out"]}, "" if not one["out"] else "out."),
        seed,
    )


def parse_settings(items: Iterable[str], default_seed: int = 0) -> LinkImpairment:
    """`loss=2%`, `delay=80ms`, `in.loss=1%`, ... or `none`, as the CLI and matrix take them."""
    settings: dict[str, object] = {}
    for item in items:
        key, equals, value = item.partition("=")
        if item.strip() == "none":
            continue
        if not equals or not key.strip():
            raise ValueError(f"'{item}' is not KEY=VALUE; write {FORMS}")
        settings[key.strip()] = value.strip()
    return link_impairment(settings, default_seed)


def parse_profile(items: Iterable[str]) -> dict[str, LinkImpairment]:
    """`wan:loss=1%,delay=50ms` (one a link; `natlab matrix --impair`) -> {"wan": ...}."""
    profile: dict[str, LinkImpairment] = {}
    for item in items:
        iface, colon, settings = item.partition(":")
        if not colon or not iface.strip():
            raise ValueError(f"'{item}' is not IFACE:SETTINGS; write wan:loss=1%,delay=50ms")
        profile[iface.strip()] = parse_settings(settings.split(","))
    return profile


# -- deciding --------------------------------------------------------------------------

Fate = tuple[float, ...] | Drop  # when each copy goes out, or why there is none


class GilbertElliott:
    """A two-state loss chain (good/bad); a step per frame, then the state's loss.

    p: good -> bad, r: bad -> good, per frame; `bad_loss`/`good_loss`: the
    chance to lose a frame in each state. The long-run loss is
    (p * bad_loss + r * good_loss) / (p + r).
    """

    def __init__(
        self, p: float, r: float, rng: random.Random, bad_loss: float = 1.0, good_loss: float = 0.0
    ) -> None:
        self.p, self.r, self.bad_loss, self.good_loss = p, r, bad_loss, good_loss
        self.rng = rng
        self.bad = False

    @classmethod
    def of(cls, loss: float, burst: float, rng: random.Random) -> GilbertElliott:
        """The simple Gilbert chain with mean loss `loss` and mean burst `burst` frames."""
        r = 1.0 / burst
        return cls(min(1.0, loss * r / (1.0 - loss)), r, rng)

    def lost(self) -> bool:
        draw = self.rng.random
        if self.bad:
            self.bad = draw() >= self.r
        else:
            self.bad = draw() < self.p
        return draw() < (self.bad_loss if self.bad else self.good_loss)


class Shaper:
    """One direction of one link: each frame's fate, from its settings and seed.

    `decide` runs for every frame of an impaired link, so which way a frame
    takes is chosen once, when the shaper is made: with only loss and a fixed
    delay (the common case) it is `_in_order`, which draws and checks nothing
    else; otherwise `_any`.
    """

    decide: Callable[[float, int], Fate]  # the fate of a frame of `size` bytes arriving at `now`

    def __init__(self, impairment: Impairment, seed: str) -> None:
        self.impairment = impairment
        # One generator per decision, so that a queue drop (which depends on timing)
        # never shifts the loss pattern: the same seed loses the same frames.
        self.loss_draw = random.Random(f"{seed}/loss").random
        self.duplicate_draw = random.Random(f"{seed}/duplicate").random
        self.delay_rng = random.Random(f"{seed}/delay")
        self.chain = (
            GilbertElliott.of(impairment.loss, impairment.burst, random.Random(f"{seed}/loss"))
            if impairment.burst
            else None
        )
        self.loss = 0.0 if impairment.burst else impairment.loss
        self.duplicate = impairment.duplicate
        self.delay = impairment.delay
        self.varies = bool(impairment.jitter or impairment.reorder)
        self.bits_per_second = impairment.rate * 1000
        self.waiting: deque[float] = deque()  # when each frame in the rate queue leaves it
        self.free_at = 0.0  # when the rate-limited link has sent all it holds
        self.last = 0.0  # the latest time a frame in order was given
        simple = not (self.chain or self.duplicate or self.bits_per_second or self.varies)
        self.decide = self._in_order if simple else self._any

    def _in_order(self, now: float, size: int) -> Fate:
        """Independent loss, then a fixed delay (or none): what `_any` does for these."""
        if self.loss and self.loss_draw() < self.loss:
            return Drop.LOSS
        due = now + self.delay
        if due < self.last:
            due = self.last
        self.last = due
        return (due,)

    def _any(self, now: float, size: int) -> Fate:
        chain = self.chain
        if chain is not None:
            if chain.lost():
                return Drop.LOSS
        elif self.loss and self.loss_draw() < self.loss:
            return Drop.LOSS
        twice = self.duplicate and self.duplicate_draw() < self.duplicate
        if twice or self.bits_per_second or self.varies:
            return self._shaped(now, size, 2 if twice else 1)
        if not self.delay:
            return (now,)
        due = now + self.delay
        if due < self.last:
            due = self.last
        self.last = due
        return (due,)

    def _shaped(self, now: float, size: int, copies: int) -> Fate:
        """Each copy through the rate's queue, then the delay."""
        times = []
        for _ in range(copies):
            at = now
            if self.bits_per_second:
                waiting = self.waiting
                while waiting and waiting[0] <= now:
                    waiting.popleft()
                if len(waiting) >= self.impairment.queue:
                    if times:
                        break  # the duplicate found no room: the original still goes
                    return Drop.QUEUE
                at = self.free_at = max(now, self.free_at) + size * 8 / self.bits_per_second
                waiting.append(at)
            times.append(self._delayed(at))
        return tuple(times)

    def _delayed(self, at: float) -> float:
        settings = self.impairment
        if not settings.delay:
            return at
        draw = self.delay_rng
        if settings.reorder and draw.random() < settings.reorder:
            return at  # overtakes every frame still delayed
        jitter = settings.jitter
        if jitter:
            if settings.distribution == "normal":
                offset = draw.gauss(0.0, jitter)
            else:
                offset = draw.uniform(-jitter, jitter)
        else:
            offset = 0.0
        due = max(at + settings.delay + offset, at, self.last)
        self.last = due
        return due
