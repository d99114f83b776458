"""Lint analyses of compiled plans: contradictory conditions (L009) and criteria that never matter (L011)."""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import mdtflag.ruleset.model as rm
from mdtflag.authoring.lint import for_each_rows
from mdtflag.authoring.words import count as _n
from mdtflag.compile.plan import CompiledRuleSet, PBool, PConst, PFact, PNode, TField, TNode
from mdtflag.ruleset.diagnostics import Diagnostics, Pos
from mdtflag.ruleset.walk import children, rule_nodes, walk_criteria

#: Fact kinds of which a patient has at most one fact per value of the given ``where`` field
#: (None: at most one fact of the kind); see the extraction rules in :mod:`mdtflag.fhir.facts`.
SINGLE_FACT = {"patient": None, "ecog": None, "lab": "analyte", "assertion": "code"}


@dataclass
class FieldRange:
    """What a conjunction of conditions allows for one field (encoded values: ints, strings, bools)."""

    allowed: set[Any] | None = None
    excluded: set[Any] = field(default_factory=set)
    lo: int | None = None
    hi: int | None = None
    shown: list[str] = field(default_factory=list)

    def add(self, op: str, values: Sequence[Any], shown: str) -> None:
        self.shown.append(shown)
        if op == "in" or op == "eq":
            vals = set(values)
            self.allowed = vals if self.allowed is None else self.allowed & vals
        elif op in ("not_in", "ne"):
            self.excluded |= set(values)
        else:
            v = values[0]
            if isinstance(v, bool) or not isinstance(v, int):
                return
            lo = {"gt": v + 1, "gte": v}.get(op)
            hi = {"lt": v - 1, "lte": v}.get(op)
            if lo is not None:
                self.lo = lo if self.lo is None else max(self.lo, lo)
            if hi is not None:
                self.hi = hi if self.hi is None else min(self.hi, hi)

    def empty(self) -> bool:
        def inside(v: Any) -> bool:
            if v in self.excluded:
                return False
            if isinstance(v, int) and not isinstance(v, bool):
                return (self.lo is None or v >= self.lo) and (self.hi is None or v <= self.hi)
            return True

        if self.allowed is not None:
            return not any(inside(v) for v in self.allowed)
        if self.lo is not None and self.hi is not None and self.lo > self.hi:
            return True
        return {True, False} <= self.excluded


def _conjuncts(t: TNode | None) -> list[TField]:
    if t is None:
        return []
    if isinstance(t, TField):
        return [t]
    if t.op == "all":
        return [f for x in t.items for f in _conjuncts(x)]
    return []


def _ranges(tfields: Iterable[TField], crs: CompiledRuleSet) -> dict[str, FieldRange]:
    atoms = crs.atoms
    out: dict[str, FieldRange] = {}
    for tf in tfields:
        tests = [atoms[a].tests[0] for a in tf.atoms]
        if not tests:
            continue
        op = tf.op if tf.op in ("in", "not_in") else tests[0].op
        out.setdefault(tf.field, FieldRange()).add(op, [t.value for t in tests], tf.shown)
    return out


def _contradiction(tfields: Sequence[TField], crs: CompiledRuleSet) -> str | None:
    for name, rng in sorted(_ranges(tfields, crs).items()):
        if len(rng.shown) > 1 and rng.empty():
            return " and ".join(f"`{s}`" for s in dict.fromkeys(rng.shown))
    return None


def _single(p: PFact) -> bool:
    if p.kind not in SINGLE_FACT:
        return bool(p.node.latest)
    key = SINGLE_FACT[p.kind]
    return key is None or p.node.latest or any(w.field == key and w.op == "eq" for w in p.where)


def _flat_all(p: PBool) -> list[PNode]:
    out: list[PNode] = []
    for x in p.items:
        if isinstance(x, PBool) and x.op == "all":
            out.extend(_flat_all(x))
        else:
            out.append(x)
    return out


def _plans(crs: CompiledRuleSet) -> Iterator[tuple[rm.Rule, Mapping[str, Any] | None, PNode]]:
    for cr in crs.rules:
        if cr.applies is not None:
            yield cr.rule, None, cr.applies
        for inst in cr.instances:
            yield cr.rule, inst.row, inst.plan


def walk_plan(p: PNode) -> Iterator[PNode]:
    yield p
    if isinstance(p, PBool):
        for x in p.items:
            yield from walk_plan(x)


def find_contradictions(crs: CompiledRuleSet) -> dict[tuple[int, ...], tuple[Pos, str]]:
    """Leaves, or pairs of leaves under one ``all``, whose conditions can never all hold."""
    found: dict[tuple[int, ...], tuple[Pos, str]] = {}
    for rule, _row, plan in _plans(crs):
        alone: set[int] = set()
        for p in walk_plan(plan):
            if isinstance(p, PFact):
                why = _contradiction(list(p.where) + _conjuncts(p.test), crs)
                if why:
                    alone.add(id(p))
                    found.setdefault((id(p.node),), (p.node.pos, (f"the conditions on this {p.kind} fact can never all hold: {why}; "
                                                                  "the criterion can never be met")))
        for p in walk_plan(plan):
            if isinstance(p, PBool) and p.op == "all":
                leaves = [x for x in _flat_all(p) if isinstance(x, PFact) and _single(x) and id(x) not in alone]
                for i, a in enumerate(leaves):
                    for b in leaves[i + 1:]:
                        if a.kind != b.kind or a.where != b.where:
                            continue
                        why = _contradiction(list(a.where) + _conjuncts(a.test) + _conjuncts(b.test), crs)
                        if why:
                            line_b = b.node.pos.line
                            found.setdefault((id(a.node), id(b.node)), (
                                a.node.pos, (f"this criterion and the one on line {line_b} test the same {a.kind} fact "
                                             f"and can never both be met: {why}")))
    return found


def relevant_nodes(crs: CompiledRuleSet) -> set[int]:
    """Ids of the model nodes that can change an outcome in some instance (rule, profile, row).

    A node the compiler left out of every plan never matters; so do the siblings of a parameter
    criterion that decides its ``all`` (not met) or ``any`` (met), when the compiler keeps them.
    """
    relevant: set[int] = set()

    def visit(p: PNode) -> None:
        relevant.add(id(p.node))
        if not isinstance(p, PBool):
            return
        decider = {"all": "not_met", "any": "met"}.get(p.op)
        consts = [x for x in p.items if isinstance(x, PConst) and x.outcome == decider]
        for x in consts or p.items:
            visit(x)

    for _rule, _row, plan in _plans(crs):
        visit(plan)
    return relevant


def _only_params(c: Any) -> bool:
    return all(isinstance(n, (rm.ParamLeaf, rm.AllNode, rm.AnyNode, rm.NotNode)) for n in walk_criteria(c))


def param_domain(name: str, rule: rm.Rule, rs: rm.RuleSet) -> list[str]:
    """Every value a profile or row parameter takes (as text)."""
    if name.startswith("row."):
        rows = for_each_rows(rule, rs) or []
        vals = [r.get(name[4:]) for r in rows]
    else:
        vals = [p.get(name) for p in rs.profiles.profiles.values()]
    return sorted({str(v) for v in vals})


def lint_dead_branches(rs: rm.RuleSet, compiled: Mapping[str, CompiledRuleSet], diags: Diagnostics) -> None:
    relevant: set[int] = set()
    for crs in compiled.values():
        relevant |= relevant_nodes(crs)
    for rule in rs.rules:
        if rule.for_each is not None and not for_each_rows(rule, rs) and rule.for_each.table in rs.tables:
            diags.add("L011", f"table '{rule.for_each.table}' has no open rows: the criteria of {rule.id} are never evaluated",
                      rule.for_each.pos, severity="warning", help="open a row (state other than closed), or remove the rule")
            continue
        for node in rule_nodes(rule):
            if id(node) not in relevant:
                continue
            hidden = [ch for ch in children(node) if id(ch) not in relevant and not _only_params(ch)]
            if not hidden:
                continue
            ids = [x.id for h in hidden for x in walk_criteria(h) if x.id]
            why = _params_why([x for h in hidden for x in walk_criteria(h) if isinstance(x, rm.ParamLeaf)]
                              or [x for x in children(node) if isinstance(x, rm.ParamLeaf)], rule, rs)
            names = f" ({', '.join(ids)})" if ids else ""
            verb = "never matters" if len(hidden) == 1 else "never matter"
            diags.add("L011", f"{_n(len(hidden), 'criterion', 'criteria')} under this `{_op(node)}`{names} {verb} in any "
                              f"profile or row" + (f": {why}" if why else ""), node.pos, severity="warning",
                      help="remove the dead branch, or add the profile or table row it is meant for")


def _op(node: Any) -> str:
    return "all" if isinstance(node, rm.AllNode) else "any" if isinstance(node, rm.AnyNode) else "not"


def _params_why(params: Sequence[rm.ParamLeaf], rule: rm.Rule, rs: rm.RuleSet) -> str:
    """"`row.biomarker` is never X or Y (it is A, B, C and 6 more)", one clause per parameter."""
    wanted: dict[str, list[str]] = {}
    for c in params:
        for w in (c.equals if isinstance(c.equals, list) else [c.equals]):
            wanted.setdefault(c.param, []).append(str(w))
    out = []
    for name, want in wanted.items():
        domain = param_domain(name, rule, rs)
        absent = [w for w in dict.fromkeys(want) if w not in domain]
        if not absent:
            continue
        shown = ", ".join(domain[:3]) + (f" and {len(domain) - 3} more" if len(domain) > 3 else "")
        out.append(f"`{name}` is never {', '.join(absent[:4])}{' …' if len(absent) > 4 else ''} (it is {shown or 'not set'})")
    return "; ".join(out)


def lint_plans(rs: rm.RuleSet, compiled: Mapping[str, CompiledRuleSet], diags: Diagnostics) -> None:
    if not compiled:
        return
    contradictions: dict[tuple[int, ...], tuple[Pos, str, list[str]]] = {}
    for profile, crs in compiled.items():
        for key, (pos, msg) in find_contradictions(crs).items():
            contradictions.setdefault(key, (pos, msg, []))[2].append(profile)
    for pos, msg, profiles in contradictions.values():
        only = "" if len(profiles) == len(compiled) else f" (profile {', '.join(profiles)})"
        diags.add("L009", msg + only, pos, severity="warning", help="check the thresholds; one of the conditions is probably wrong")
    lint_dead_branches(rs, compiled, diags)
