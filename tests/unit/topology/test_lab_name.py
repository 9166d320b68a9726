"""One way to make a lab name of its own, for runs, matrix pairs and test labs."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from natlab.topology.lab_name import LAB_NAME, unique_lab_name


@given(st.text(max_size=80))
def test_any_name_makes_a_lab_name(name: str) -> None:
    made = unique_lab_name(name)
    assert LAB_NAME.match(made), made


def test_it_keeps_the_name_and_is_unique() -> None:
    made = {unique_lab_name("Symmetric x Full-Cone") for _ in range(50)}
    assert len(made) == 50
    assert all(name.startswith("symmetric-x-full-cone-") for name in made)
