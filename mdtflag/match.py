"""Run the engine on a patient's facts and evaluate every rule's criteria in Kleene logic.

A leaf is *met* when some candidate fact passes its test, *not met* when every candidate fails it on
data that is present, and *unknown* when no candidate exists (by default), the newest candidate is
older than the rule's window, or a field the test needs is absent. ``not`` swaps met and not met;
unknown stays unknown. Missing data is therefore never silently false.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, NamedTuple, Optional, Sequence

from . import rulemodel as rm
from .compile import CompiledRule, CompiledRuleSet, PBool, PConst, PFact, PNode, PRuleRef, TBool, TField, TNode, criterion_ids
from .facts import FactSet

MET, NOT_MET, UNKNOWN = "met", "not_met", "unknown"
STATUS_OF = {MET: "flagged", NOT_MET: "not_flagged", UNKNOWN: "indeterminate"}
STATUS_RANK = {"flagged": 0, "indeterminate": 1, "not_flagged": 2, "not_applicable": 3}


@dataclass(frozen=True)
class Missing:
    """Data that would decide an unknown criterion."""

    criterion: Optional[str]
    fact: str
    reason: str  # absent | stale | field | rule
    field: Optional[str] = None
    resource: Optional[str] = None
    days: Optional[int] = None
    where: str = ""
    rule: Optional[str] = None
    text: Optional[rm.Text] = None


class NodeResult(NamedTuple):
    """The outcome of one plan node for one patient (immutable; a tuple for speed)."""

    plan: PNode
    outcome: str
    facts: tuple[int, ...]
    missing: tuple[Missing, ...]
    children: tuple["NodeResult", ...] = ()
    detail: str = ""

    @property
    def node(self) -> Any:
        return self.plan.node

    def find(self, cid: str) -> Optional["NodeResult"]:
        if getattr(self.node, "id", None) == cid:
            return self
        for ch in self.children:
            got = ch.find(cid)
            if got is not None:
                return got
        return None


@dataclass(frozen=True)
class InstanceResult:
    row: Optional[Mapping[str, Any]]
    result: NodeResult
    status: str


@dataclass(frozen=True)
class RuleEval:
    compiled: CompiledRule
    status: str
    applies: Optional[NodeResult]
    instances: tuple[InstanceResult, ...]
    best: Optional[InstanceResult]

    @property
    def rule(self) -> rm.Rule:
        return self.compiled.rule

    def criterion(self, cid: str) -> Optional[NodeResult]:
        if self.applies is not None:
            got = self.applies.find(cid)
            if got is not None:
                return got
        return self.best.result.find(cid) if self.best else None


def _and(vals: Sequence[str]) -> str:
    if NOT_MET in vals:
        return NOT_MET
    return UNKNOWN if UNKNOWN in vals else MET


def _or(vals: Sequence[str]) -> str:
    if MET in vals:
        return MET
    return UNKNOWN if UNKNOWN in vals else NOT_MET


_NEG = {MET: NOT_MET, NOT_MET: MET, UNKNOWN: UNKNOWN}


class _Eval:
    def __init__(self, crs: CompiledRuleSet, fs: FactSet, encoded: list[dict[str, Any]], sets: list[frozenset[int]]):
        self.crs = crs
        self.fs = fs
        self.enc = encoded
        self.sets = sets
        self.by_kind: dict[str, list[int]] = {}
        for i, f in enumerate(fs.facts):
            self.by_kind.setdefault(f.kind, []).append(i)
        self.done: dict[str, RuleEval] = {}
        self.memo: dict[tuple[int, Optional[str]], NodeResult] = {}
        self.cands: dict[Any, list[int]] = {}

    # ---- tests on one fact
    def tfield(self, t: TField, i: int) -> str:
        if t.const is not None:
            return t.const
        if t.field not in self.enc[i]:
            return UNKNOWN
        sets = self.sets
        for a in t.atoms:
            if i in sets[a]:
                return NOT_MET if t.negate else MET
        return MET if t.negate else NOT_MET

    def tval(self, t: TNode, i: int) -> str:
        if isinstance(t, TField):
            return self.tfield(t, i)
        vals = [self.tval(x, i) for x in t.items]
        if t.op == "all":
            return _and(vals)
        if t.op == "any":
            return _or(vals)
        return _NEG[vals[0]]

    def absent_fields(self, t: TNode, i: int) -> list[str]:
        if isinstance(t, TField):
            return [] if (t.const is not None or t.field in self.enc[i]) else [t.field]
        out: list[str] = []
        for x in t.items:
            out += [f for f in self.absent_fields(x, i) if f not in out]
        return out

    def resource(self, i: int) -> Optional[str]:
        ev = self.fs.facts[i].evidence
        return ev[0].resource if ev else None

    # ---- criteria
    def node(self, p: PNode, cid: Optional[str]) -> NodeResult:
        # a node with its own id reports under that id wherever it is used: evaluate it once
        key = (id(p), getattr(p.node, "id", None) or cid)
        got = self.memo.get(key)
        if got is None:
            got = self.memo[key] = self._node(p, cid)
        return got

    def _node(self, p: PNode, cid: Optional[str]) -> NodeResult:
        own = getattr(p.node, "id", None) or cid
        if isinstance(p, PFact):
            return self.fact(p, own)
        if isinstance(p, PBool):
            node = self.node
            kids = tuple([node(x, own) for x in p.items])
            outs = [k[1] for k in kids]
            op = p.op
            if op == "not":
                k = kids[0]
                return NodeResult(p, _NEG[k[1]], k[2], k[3], kids)
            out = _and(outs) if op == "all" else _or(outs)
            if len(kids) == 1:
                k = kids[0]
                return NodeResult(p, out, k[2], k[3] if out == UNKNOWN else (), kids)
            missing = tuple(dict.fromkeys(m for k in kids if k[1] == UNKNOWN for m in k[3])) if out == UNKNOWN else ()
            facts = tuple(dict.fromkeys(i for k in kids if k[1] == out for i in k[2]))
            return NodeResult(p, out, facts, missing, kids)
        if isinstance(p, PConst):
            return NodeResult(p, p.outcome, (), (), (), p.shown)
        return self.ruleref(p, own)

    def candidates(self, p: PFact) -> list[int]:
        key = (p.kind, id(p.where))  # identity: hashing the condition tuples each time costs more
        got = self.cands.get(key)
        if got is None:
            got = self.by_kind.get(p.kind, [])
            for w in p.where:
                got = [i for i in got if self.tfield(w, i) == MET]
            self.cands[key] = got
        return got

    def fact(self, p: PFact, cid: Optional[str]) -> NodeResult:
        leaf = p.node
        cands = self.candidates(p)
        if not cands:
            out = leaf.missing
            miss = (Missing(cid, p.kind, "absent", where=_where(p), text=leaf.missing_text),) if out == UNKNOWN else ()
            return NodeResult(p, out, (), miss, (), "absent")
        if leaf.latest and p.date_field:
            df = p.date_field
            enc = self.enc
            cands = [max(cands, key=lambda i: (enc[i].get(df, -(10 ** 9)), i))]
        if p.window is not None:
            fresh = [i for i in cands if self.tfield(p.window, i) == MET]
            if not fresh:
                out = leaf.stale
                miss = (Missing(cid, p.kind, "stale", resource=self.resource(cands[0]), days=p.window_days,
                                where=_where(p), text=leaf.missing_text),) if out == UNKNOWN else ()
                return NodeResult(p, out, tuple(cands), miss, (), "stale")
            cands = fresh
        need = leaf.min_count or 1
        if p.test is None:
            return NodeResult(p, MET if len(cands) >= need else NOT_MET, tuple(cands), ())
        tval = self.tval
        vals = [(i, tval(p.test, i)) for i in cands]
        met = tuple(i for i, v in vals if v == MET)
        if len(met) >= need:
            return NodeResult(p, MET, met, ())
        unk = tuple(i for i, v in vals if v == UNKNOWN)
        if unk and len(met) + len(unk) >= need:
            where = _where(p)
            miss = tuple(Missing(cid, p.kind, "field", field=f, resource=self.resource(i), where=where, text=leaf.missing_text)
                         for i in unk for f in self.absent_fields(p.test, i))
            return NodeResult(p, UNKNOWN, unk, miss, (), "field")
        return NodeResult(p, NOT_MET, tuple(cands), ())

    def ruleref(self, p: PRuleRef, cid: Optional[str]) -> NodeResult:
        leaf = p.node
        ref = self.done.get(leaf.rule)
        if ref is None:  # cannot happen after topological ordering; stay safe
            return NodeResult(p, UNKNOWN, (), (Missing(cid, "rule", "rule", rule=leaf.rule),))
        if leaf.criterion is None:
            got, wanted, undecided, options = ref.status, set(leaf.status or ()), "indeterminate", ("flagged", "not_flagged")
            missing_src = _rule_missing(ref)
            facts = _rule_facts(ref)
        else:
            node = ref.criterion(leaf.criterion)
            got = node.outcome if node is not None else UNKNOWN
            wanted, undecided, options = set(leaf.outcome or ()), UNKNOWN, (MET, NOT_MET)
            missing_src = node.missing if node is not None else ()
            facts = node.facts if node is not None else ()
        if got != undecided:
            out = MET if got in wanted else NOT_MET
        elif undecided in wanted or all(o in wanted for o in options):
            out = MET
        elif not any(o in wanted for o in options):
            out = NOT_MET
        else:
            out = UNKNOWN
        miss = tuple(missing_src) if out == UNKNOWN else ()
        # a criterion reference keeps that criterion's facts (texts name them); a whole-rule reference
        # does not repeat the other rule's evidence, which that rule's own flag shows
        return NodeResult(p, out, tuple(facts) if leaf.criterion is not None else (), miss, detail=str(got))

    # ---- rules
    def rule(self, cr: CompiledRule) -> RuleEval:
        applies = self.node(cr.applies, None) if cr.applies is not None else None
        if applies is not None and applies.outcome == NOT_MET:
            ev = RuleEval(cr, "not_applicable", applies, (), None)
            self.done[cr.rule.id] = ev
            return ev
        insts = []
        for inst in cr.instances:
            if inst.gate is not None:
                gate = self.node(inst.gate, None)
                if gate.outcome == NOT_MET:  # decided: the rest of the row cannot make it fire
                    insts.append(InstanceResult(inst.row, gate, "not_flagged"))
                    continue
            res = self.node(inst.plan, None)
            status = STATUS_OF[res.outcome]
            if applies is not None and applies.outcome == UNKNOWN and status == "flagged":
                status = "indeterminate"
            insts.append(InstanceResult(inst.row, res, status))
        if not insts:
            ev = RuleEval(cr, "not_applicable", applies, (), None)
        else:
            best = min(insts, key=lambda r: STATUS_RANK[r.status])
            ev = RuleEval(cr, best.status, applies, tuple(insts), best)
        self.done[cr.rule.id] = ev
        return ev


def _where(p: PFact) -> str:
    return ", ".join(w.shown for w in p.where)


def _dedupe(items: Sequence[Any]) -> tuple[Any, ...]:
    seen: dict[Any, None] = {}
    for x in items:
        seen.setdefault(x, None)
    return tuple(seen)


def _rule_missing(ev: RuleEval) -> tuple[Missing, ...]:
    out: list[Missing] = []
    if ev.applies is not None and ev.applies.outcome == UNKNOWN:
        out += ev.applies.missing
    if ev.best is not None and ev.best.status == "indeterminate":
        out += ev.best.result.missing
    return _dedupe(out)


def _rule_facts(ev: RuleEval) -> tuple[int, ...]:
    return ev.best.result.facts if ev.best is not None else ()


def evaluate_facts(crs: CompiledRuleSet, fs: FactSet) -> list[RuleEval]:
    """Every rule of the compiled set, evaluated on one patient's facts, in dependency order."""
    encoded = [f.engine_fields() for f in fs.facts]
    sent = crs.sent_fields
    payload = [{k: v for k, v in e.items() if k == "kind" or k in sent.get(e["kind"], ())} for e in encoded]
    sets = crs.engine.match(payload)
    ev = _Eval(crs, fs, encoded, sets)
    return [ev.rule(cr) for cr in crs.rules]


__all__ = ["Missing", "NodeResult", "InstanceResult", "RuleEval", "evaluate_facts", "criterion_ids"]
