"""Three-valued (Kleene) logic of criterion outcomes: the one definition the evaluator and the tools share.

A criterion is *met*, *not met* or *unknown* (the data that would decide it is missing). ``all`` is not
met as soon as one part is not met, met when every part is met, and unknown otherwise; ``any`` is the
mirror image; ``not`` swaps met and not met and leaves unknown as it is. Ordering the outcomes
not met < unknown < met, ``all`` is the minimum and ``any`` the maximum.
"""
from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from typing import Final

from mdtflag.ruleset.model import Outcome, Status

__all__ = [
    "MET", "NEGATION", "NOT_MET", "OUTCOMES", "STATUS_OF", "UNKNOWN", "Outcome", "all_of", "any_of", "combine",
    "not_", "possible",
]

MET: Final = "met"
NOT_MET: Final = "not_met"
UNKNOWN: Final = "unknown"
OUTCOMES: Final[tuple[Outcome, ...]] = (MET, NOT_MET, UNKNOWN)

#: ``not``: met and not met swap, unknown stays unknown.
NEGATION: Final[Mapping[Outcome, Outcome]] = {MET: NOT_MET, NOT_MET: MET, UNKNOWN: UNKNOWN}

#: The status a rule (or a table row) gets from the outcome of its criteria.
STATUS_OF: Final[Mapping[Outcome, Status]] = {MET: "flagged", NOT_MET: "not_flagged", UNKNOWN: "indeterminate"}


def all_of(outcomes: Collection[Outcome]) -> Outcome:
    """``all``: not met if one part is not met, else unknown if one part is unknown, else met."""
    if NOT_MET in outcomes:
        return NOT_MET
    return UNKNOWN if UNKNOWN in outcomes else MET


def any_of(outcomes: Collection[Outcome]) -> Outcome:
    """``any``: met if one part is met, else unknown if one part is unknown, else not met."""
    if MET in outcomes:
        return MET
    return UNKNOWN if UNKNOWN in outcomes else NOT_MET


def not_(outcome: Outcome) -> Outcome:
    return NEGATION[outcome]


def combine(op: str, outcomes: Collection[Outcome]) -> Outcome:
    """The outcome of an ``all``, ``any`` or ``not`` node (``not`` has one part) from its parts' outcomes."""
    if op == "all":
        return all_of(outcomes)
    if op == "any":
        return any_of(outcomes)
    if op == "not" and len(outcomes) == 1:
        return NEGATION[next(iter(outcomes))]
    raise ValueError(f"no Kleene operator {op!r} over {len(outcomes)} outcome(s)")


def possible(op: str, parts: Iterable[Collection[Outcome]]) -> set[Outcome]:
    """Every outcome an ``all``/``any``/``not`` node can have when each part can have any outcome of its
    set, independently of the others."""
    sets = list(parts)
    if op == "not" and len(sets) == 1:
        return {NEGATION[o] for o in sets[0]}
    out = {combine(op, ())}  # the operator's identity: met for all, not met for any
    for s in sets:  # the operators are associative: fold part by part (at most 3 × 3 pairs each)
        out = {combine(op, (a, b)) for a in out for b in s}
    return out
