"""Things held until their time (core/held.py): each out once, when due, in order in its line."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from natlab.core.held import Held

# Adding to a line a thing due some ticks after now (sooner than the one before it at
# times), or taking out what is due once the clock moved on some ticks.
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.sampled_from("abc"), st.integers(0, 20)),
        st.tuples(st.just("due"), st.just(""), st.integers(0, 10)),
    ),
    max_size=80,
)


@given(OPS)
def test_everything_comes_out_once_when_due_and_in_order_in_its_line(ops) -> None:
    held = Held()
    waiting: dict[int, tuple[float, str]] = {}  # what the model holds: index -> (at, line)
    out = []
    now = 0.0
    for index, (op, line, ticks) in enumerate(ops):
        now += 1
        if op == "add":
            held.add(now + ticks, line, index)
            waiting[index] = (now + ticks, line)
        else:
            now += ticks  # the clock moves on: nothing added later is due before it
            taken = held.due(now)
            assert sorted(thing for _, _, _, thing in taken) == sorted(
                i for i, (at, _) in waiting.items() if at <= now
            )
            for _, _, _, thing in taken:
                del waiting[thing]
            out += taken
        assert held.soonest() == min((at for at, _ in waiting.values()), default=None)
        assert len(held) == len(waiting)
    out += held.due(now + 100)
    assert held.due(now + 1000) == [] and held.soonest() is None
    added = [i for i, (op, _, _) in enumerate(ops) if op == "add"]
    assert sorted(thing for _, _, _, thing in out) == added  # each once
    for line in "abc":
        mine = [(at, thing) for at, _, owner, thing in out if owner == line]
        assert mine == sorted(mine)  # in time order; equal times in the order added


def test_what_overtook_its_line_comes_out_in_time_order_with_it() -> None:
    held = Held()
    held.add(10.0, "a", "first")
    held.add(30.0, "a", "third")
    held.add(20.0, "a", "second")  # before the last of its line: the heap
    held.add(5.0, "b", "other")
    assert len(held.heap) == 1
    assert held.soonest() == 5.0
    assert [thing for _, _, _, thing in held.due(25.0)] == ["other", "first", "second"]
    assert [thing for _, _, _, thing in held.due(30.0)] == ["third"]
    assert held.lines == {} and held.heap == []  # an emptied line is let go
