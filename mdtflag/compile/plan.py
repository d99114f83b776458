"""The evaluation plan: what compiling a rule set produces and evaluation reads.

A rule's criteria become a tree of *plan nodes* (:data:`PNode`): fact leaves (:class:`PFact`) with
their field tests (:data:`TNode`), ``all``/``any``/``not`` nodes (:class:`PBool`), references to other
rules (:class:`PRuleRef`) and leaves decided by a profile parameter (:class:`PConst`). Plan nodes are
immutable and interned: equal sub-plans of different table rows are one object, so evaluation keys
its per-patient work by identity. The walks over a rule's criterion tree are in
:mod:`mdtflag.ruleset.walk`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Union

import mdtflag.ruleset.model as rm
from mdtflag.compile.engine import Atom, Engine

__all__ = [
    "CompiledRule",
    "CompiledRuleSet",
    "Instance",
    "PBool",
    "PConst",
    "PFact",
    "PNode",
    "PRuleRef",
    "TBool",
    "TField",
    "TNode",
]


# ----------------------------------------------------------------- tests on one fact


@dataclass(frozen=True)
class TField:
    """A field test: OR over ``atoms`` (``in`` lists become one atom per value), negated for not_in."""

    field: str
    op: str
    atoms: tuple[int, ...]
    negate: bool
    shown: str  # human form, e.g. "value ≤ 2"
    const: rm.Outcome | None = None  # a fixed outcome (comparison with a parameter set to null)

    @property
    def plain(self) -> bool:
        """Met exactly by the facts one of the atoms matched (no negation, no fixed outcome)."""
        return not self.negate and self.const is None


@dataclass(frozen=True)
class TBool:
    op: str  # all | any | not
    items: tuple[TNode, ...]


TNode = Union[TField, TBool]


# ----------------------------------------------------------------- criteria
# Besides its fields, every plan node carries its own criterion id (``own``, or ``None``) and a small
# integer ``tag`` for dispatch, both fixed at construction so evaluation does not look them up.
# ``tag`` is a literal per class, so comparing it narrows a :data:`PNode` for the type checker. Both are
# instance attributes only (no class attribute of the same name, which would make reading them slower).


def _own(node: Any) -> str | None:
    got = getattr(node, "id", None)
    return got if isinstance(got, str) else None


@dataclass(frozen=True, eq=False)  # identity: plan nodes are interned
class PFact:
    node: rm.FactLeaf
    kind: str
    where: tuple[TField, ...]
    window: TField | None
    window_days: int | None
    test: TNode | None
    date_field: str | None
    #: the key under which a patient's candidate facts for (kind, where) are kept
    ckey: tuple[str, int] = field(init=False, repr=False)
    own: str | None = field(init=False, repr=False)
    tag: Literal[0] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "ckey", (self.kind, id(self.where)))
        object.__setattr__(self, "own", _own(self.node))
        object.__setattr__(self, "tag", 0)


@dataclass(frozen=True, eq=False)  # identity: plan nodes are interned
class PBool:
    node: rm.AllNode | rm.AnyNode | rm.NotNode
    op: str  # all | any | not
    items: tuple[PNode, ...]
    own: str | None = field(init=False, repr=False)
    tag: Literal[1] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "own", _own(self.node))
        object.__setattr__(self, "tag", 1)


@dataclass(frozen=True, eq=False)  # identity: plan nodes are interned
class PConst:
    node: rm.ParamLeaf
    outcome: rm.Outcome
    shown: str
    own: str | None = field(init=False, repr=False)
    tag: Literal[2] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "own", _own(self.node))
        object.__setattr__(self, "tag", 2)


@dataclass(frozen=True, eq=False)  # identity: plan nodes are interned
class PRuleRef:
    node: rm.RuleRefLeaf
    own: str | None = field(init=False, repr=False)
    tag: Literal[3] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "own", _own(self.node))
        object.__setattr__(self, "tag", 3)


PNode = Union[PFact, PBool, PRuleRef, PConst]


# ----------------------------------------------------------------- rules and the rule set


@dataclass(frozen=True)
class Instance:
    """One evaluation of a rule's criteria: the whole rule, or one table row (e.g. one cohort)."""

    row: Mapping[str, Any] | None
    plan: PNode
    gate: PNode | None = None  # a conjunct that, when not met, decides the row at once


@dataclass(frozen=True)
class CompiledRule:
    rule: rm.Rule
    applies: PNode | None
    instances: tuple[Instance, ...]
    skipped_rows: tuple[Mapping[str, Any], ...]  # e.g. closed cohorts


@dataclass(frozen=True)
class CompiledRuleSet:
    ruleset: rm.RuleSet
    profile: str
    params: Mapping[str, Any]
    engine: Engine
    rules: tuple[CompiledRule, ...]  # in dependency order (referenced rules first)
    sent_fields: Mapping[str, frozenset[str]] = field(default_factory=dict)
    #: results of leaves that have no candidate fact, which do not depend on the patient (filled lazily
    #: by evaluation; keyed by plan node identity and the criterion id they report under)
    absent_results: dict[Any, Any] = field(default_factory=dict, compare=False, repr=False)
    #: identities of those results (they are kept in ``absent_results``, so identities stay valid)
    const_ids: set[int] = field(default_factory=set, compare=False, repr=False)
    #: other patient-independent pieces of output, built once (see decide.py)
    shared: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def atoms(self) -> tuple[Atom, ...]:
        return self.engine.atoms
