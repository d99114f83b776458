"""Criterion coverage of rule tests: which outcomes (met / not met / unknown) the cases reach, and which can happen."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from mdtflag.compile.plan import PBool, PConst, PFact, PNode, PRuleRef, TField, TNode
from mdtflag.evaluation.kleene import MET, NOT_MET, UNKNOWN, Outcome
from mdtflag.evaluation.kleene import possible as kleene_possible
from mdtflag.evaluation.nodes import NodeResult, RuleEval
from mdtflag.fhir.facts import FACT_MODELS
from mdtflag.ruleset.walk import criterion_ids

OUTCOMES = (MET, NOT_MET, UNKNOWN)


@dataclass
class CoverageReport:
    rules_dir: str
    seen: dict[tuple[str, str], set[str]]
    possible: dict[tuple[str, str], set[str]]
    ignored: dict[tuple[str, str], tuple[frozenset[str], str]]
    criteria: list[tuple[str, str]]

    def counted(self) -> list[tuple[str, str, str]]:
        """Every (rule, criterion, outcome) the percentage counts: possible and not ignored."""
        out = []
        for key in self.criteria:
            ign = self.ignored.get(key, (frozenset(), ""))[0]
            for o in OUTCOMES:
                if o in self.possible.get(key, set()) and o not in ign:
                    out.append((key[0], key[1], o))
        return out

    @property
    def percent(self) -> float:
        counted = self.counted()
        if not counted:
            return 100.0
        hit = sum(1 for r, c, o in counted if o in self.seen.get((r, c), set()))
        return 100.0 * hit / len(counted)

    def never(self, outcome: str) -> list[str]:
        return [f"{r}/{c}" for r, c, o in self.counted() if o == outcome and o not in self.seen.get((r, c), set())]

    def impossible(self) -> list[tuple[str, str, str]]:
        return [(k[0], k[1], o) for k in self.criteria for o in OUTCOMES if o not in self.possible.get(k, set())]

    def stale_ignores(self) -> list[tuple[str, str, str]]:
        return [
            (k[0], k[1], o)
            for k, (outs, _) in sorted(self.ignored.items())
            for o in sorted(outs)
            if o in self.seen.get(k, set())
        ]

    def to_dict(self) -> dict[str, Any]:
        counted = self.counted()
        hit = sum(1 for r, c, o in counted if o in self.seen.get((r, c), set()))
        return {
            "rules_dir": self.rules_dir,
            "percent": round(self.percent, 1),
            "seen": hit,
            "counted": len(counted),
            "criteria": len(self.criteria),
            "never": {o: self.never(o) for o in OUTCOMES},
            "impossible": [f"{r}/{c}:{o}" for r, c, o in self.impossible()],
            "ignored": {
                f"{r}/{c}": {"outcomes": sorted(outs), "reason": why}
                for (r, c), (outs, why) in sorted(self.ignored.items())
            },
            "ignored_but_seen": [f"{r}/{c}:{o}" for r, c, o in self.stale_ignores()],
        }


def seen_outcomes(evals: Iterable[RuleEval], into: dict[tuple[str, str], set[str]]) -> None:
    """Every criterion outcome of every evaluated row (not only the best) and of applicability."""

    def walk(rid: str, r: NodeResult) -> None:
        cid = getattr(r.node, "id", None)
        if cid:
            into.setdefault((rid, cid), set()).add(r.outcome)
        for ch in r.children:
            walk(rid, ch)

    for ev in evals:
        trees = ([ev.applies] if ev.applies is not None else []) + [i.result for i in ev.instances]
        for t in trees:
            walk(ev.rule.id, t)


def _test_may_lack(t: TNode | None, kind: str) -> bool:
    """Whether a fact of ``kind`` can lack a field the test reads (then the test can be unknown)."""
    if t is None:
        return False
    if isinstance(t, TField):
        model: Any = FACT_MODELS[kind]
        info = model.model_fields.get(t.field)
        return info is None or (not info.is_required() and info.default is None)
    return any(_test_may_lack(x, kind) for x in t.items)


def possible(p: PNode, into: dict[int, tuple[str, set[str]]]) -> set[Outcome]:
    """Outcomes a plan node can have for some patient (an over-approximation: children independent)."""
    got: set[Outcome]
    if isinstance(p, PConst):
        got = {p.outcome}
    elif isinstance(p, PBool):
        got = kleene_possible(p.op, [possible(x, into) for x in p.items])
    elif isinstance(p, PFact):
        leaf = p.node
        got = {MET}
        if p.kind != "patient" or p.where:  # every patient has exactly one patient fact
            got.add(leaf.missing)
        if p.window is not None:
            got.add(leaf.stale)
        if p.test is not None:
            got.add(NOT_MET)
            if _test_may_lack(p.test, p.kind):
                got.add(UNKNOWN)
    else:
        got = _ruleref_possible(p)
    cid = getattr(p.node, "id", None)
    if cid:
        into.setdefault(id(p.node), (cid, set()))[1].update(got)
    return got


def _ruleref_possible(p: PRuleRef) -> set[Outcome]:
    leaf = p.node
    wanted: set[str]
    if leaf.criterion is None:
        wanted, undecided, options = set(leaf.status or ()), "indeterminate", ("flagged", "not_flagged")
        values: tuple[str, ...] = ("flagged", "not_flagged", "indeterminate", "not_applicable")
    else:
        wanted, undecided, options = set(leaf.outcome or ()), UNKNOWN, (MET, NOT_MET)
        values = OUTCOMES
    out: set[Outcome] = set()
    for got in values:
        if got != undecided:
            out.add(MET if got in wanted else NOT_MET)
        elif undecided in wanted or all(o in wanted for o in options):
            out.add(MET)
        elif not any(o in wanted for o in options):
            out.add(NOT_MET)
        else:
            out.add(UNKNOWN)
    return out


def possible_outcomes(compiled: Iterable[Any]) -> dict[tuple[str, str], set[str]]:
    out: dict[tuple[str, str], set[str]] = {}
    for crs in compiled:
        for cr in crs.rules:
            by_node: dict[int, tuple[str, set[str]]] = {}
            for plan in ([cr.applies] if cr.applies is not None else []) + [i.plan for i in cr.instances]:
                possible(plan, by_node)
            for cid, outs in by_node.values():
                out.setdefault((cr.rule.id, cid), set()).update(outs)
    return out


def coverage_report(
    rules_dir: str,
    evaluator: Any,
    evaluations: Iterable[Iterable[RuleEval]],
    ignored: dict[tuple[str, str], tuple[frozenset[str], str]],
) -> CoverageReport:
    rs = evaluator.ruleset
    seen: dict[tuple[str, str], set[str]] = {}
    for evals in evaluations:
        seen_outcomes(evals, seen)
    compiled = [evaluator.compiled(p) for p in sorted(rs.profiles.profiles)]
    criteria = [(rule.id, cid) for rule in rs.rules for cid in dict.fromkeys(criterion_ids(rule))]
    return CoverageReport(rules_dir, seen, possible_outcomes(compiled), ignored, criteria)
