"""The three-valued logic of criterion outcomes (mdtflag.evaluation.kleene)."""
from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mdtflag.evaluation.kleene import (
    MET,
    NOT_MET,
    OUTCOMES,
    STATUS_OF,
    UNKNOWN,
    Outcome,
    all_of,
    any_of,
    combine,
    not_,
    possible,
)

RANK = {NOT_MET: 0, UNKNOWN: 1, MET: 2}
outcome = st.sampled_from(OUTCOMES)
outcomes = st.lists(outcome, min_size=1, max_size=6)


@given(outcomes)
def test_all_is_the_minimum_and_any_the_maximum(xs: list[Outcome]) -> None:
    assert all_of(xs) == min(xs, key=RANK.__getitem__)
    assert any_of(xs) == max(xs, key=RANK.__getitem__)


@given(outcomes)
def test_de_morgan(xs: list[Outcome]) -> None:
    assert not_(all_of(xs)) == any_of([not_(x) for x in xs])
    assert not_(any_of(xs)) == all_of([not_(x) for x in xs])


@given(outcome)
def test_not_swaps_met_and_not_met_and_keeps_unknown(x: Outcome) -> None:
    assert not_(not_(x)) == x
    assert (not_(x) == x) == (x == UNKNOWN)


def test_empty_parts_give_the_identity() -> None:
    assert all_of(()) == MET
    assert any_of(()) == NOT_MET


def test_combine_names_the_operator() -> None:
    assert combine("all", [MET, UNKNOWN]) == UNKNOWN
    assert combine("any", [NOT_MET, UNKNOWN]) == UNKNOWN
    assert combine("not", [MET]) == NOT_MET
    with pytest.raises(ValueError):
        combine("not", [MET, MET])
    with pytest.raises(ValueError):
        combine("xor", [MET])


@given(st.sampled_from(["all", "any"]),
       st.lists(st.sets(outcome, min_size=1), min_size=1, max_size=5))
def test_possible_outcomes_are_those_of_some_choice_of_part_outcomes(op: str, parts: list[set[Outcome]]) -> None:
    every_choice = {combine(op, choice) for choice in itertools.product(*parts)}
    assert possible(op, parts) == every_choice


@given(st.sets(outcome, min_size=1))
def test_possible_outcomes_of_not(part: set[Outcome]) -> None:
    assert possible("not", [part]) == {not_(x) for x in part}


def test_status_of_each_outcome() -> None:
    assert STATUS_OF == {MET: "flagged", NOT_MET: "not_flagged", UNKNOWN: "indeterminate"}
