"""The results of evaluating criteria for one patient: what each plan node gave, and why.

Shared by the matcher (:mod:`mdtflag.evaluation.match`), which builds them, and by everything that reads
them (decisions and reasons, authoring tools)."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

import mdtflag.ruleset.model as rm
from mdtflag.compile.plan import CompiledRule, PNode
from mdtflag.evaluation.kleene import Outcome
from mdtflag.ruleset.model import Status

STATUS_RANK: dict[Status, int] = {"flagged": 0, "indeterminate": 1, "not_flagged": 2, "not_applicable": 3}


@dataclass(frozen=True)
class Missing:
    """Data that would decide an unknown criterion."""

    criterion: str | None
    fact: str
    reason: Literal["absent", "stale", "field", "rule", "unreadable"]
    field: str | None = None
    resource: str | None = None
    element: str | None = None  # for ``unreadable``: the element of ``resource`` that could not be read
    days: int | None = None
    where: str = ""
    rule: str | None = None
    text: rm.Text | None = None


class NodeResult(NamedTuple):
    """The outcome of one plan node for one patient (immutable; a tuple for speed)."""

    plan: PNode
    outcome: Outcome
    facts: tuple[int, ...]
    missing: tuple[Missing, ...]
    children: tuple[NodeResult, ...] = ()
    detail: str = ""

    @property
    def node(self) -> Any:
        return self.plan.node

    def find(self, cid: str) -> NodeResult | None:
        if getattr(self.node, "id", None) == cid:
            return self
        for ch in self.children:
            got = ch.find(cid)
            if got is not None:
                return got
        return None


class InstanceResult(NamedTuple):
    """One table row (or the whole rule): its criteria's result and the status it gives."""

    row: Mapping[str, Any] | None
    result: NodeResult
    status: Status


@dataclass(frozen=True)
class RuleEval:
    compiled: CompiledRule
    status: Status
    applies: NodeResult | None
    instances: tuple[InstanceResult, ...]
    best: InstanceResult | None
    #: every node result of the patient by evaluation key (see :func:`id_keys`)
    memo: Mapping[Any, NodeResult] = field(compare=False, repr=False)

    @property
    def rule(self) -> rm.Rule:
        return self.compiled.rule

    def criterion(self, cid: str) -> NodeResult | None:
        if self.applies is not None:
            got = self.applies.find(cid)
            if got is not None:
                return got
        return self.best.result.find(cid) if self.best else None


_nr = functools.partial(tuple.__new__, NodeResult)  # NodeResult from a full 6-tuple, without Python-level __new__
