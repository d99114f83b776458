"""Run the engine on a patient's facts and evaluate every rule's criteria in Kleene logic.

A leaf is *met* when some candidate fact passes its test, *not met* when every candidate fails it on
data that is present, and *unknown* when no candidate exists (by default), the newest candidate is
older than the rule's window, or a field the test needs is absent. ``not`` swaps met and not met;
unknown stays unknown. Missing data is therefore never silently false.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mdtflag.compile.plan import CompiledRule, CompiledRuleSet, PBool, PFact, PNode, PRuleRef, TField, TNode
from mdtflag.evaluation.kleene import MET, NEGATION, NOT_MET, STATUS_OF, UNKNOWN, Outcome, all_of, any_of
from mdtflag.evaluation.nodes import STATUS_RANK, InstanceResult, Missing, NodeResult, RuleEval, _nr
from mdtflag.fhir.facts import FACT_SCHEMA, FactSet

_NOTHING: frozenset[int] = frozenset()
_NO_FIELDS: Mapping[str, Any] = {}
_NO_FIELD_SET: frozenset[str] = frozenset()
#: Test operators whose outcome at both ends of an interval is their outcome on all of it.
_ORDER_OPS = frozenset({"lt", "lte", "gt", "gte"})


class _Eval:
    """One patient: the engine's answer per atom, and every criterion evaluated at most once.

    Tests on facts are evaluated over *sets* of fact indices (frozenset algebra in C) rather than
    fact by fact: a field test splits the candidates into met / not met / unknown at once."""

    def __init__(self, crs: CompiledRuleSet, fs: FactSet, encoded: list[dict[str, Any]], sets: list[frozenset[int]]):
        self.crs = crs
        self.fs = fs
        self.enc = encoded
        self.sets = sets
        by_kind: dict[str, list[int]] = {}
        for i, f in enumerate(fs.facts):
            by_kind.setdefault(f.kind, []).append(i)
        self.by_kind = {k: frozenset(v) for k, v in by_kind.items()}
        self.done: dict[str, RuleEval] = {}
        self.memo: dict[Any, NodeResult] = {}
        self.cands: dict[Any, tuple[int, ...]] = {}
        self._has: dict[str, frozenset[int]] | None = None
        self._hits: dict[int, frozenset[int]] = {}
        self._whole: dict[int, tuple[frozenset[int], frozenset[int]]] = {}
        self.universe = frozenset(range(len(encoded)))
        # results that do not depend on the patient (leaves without any candidate fact, parameter
        # leaves, and nodes made only of such results) are built once and shared: by identity
        self._const: dict[Any, NodeResult] = crs.absent_results
        self._const_ids = crs.const_ids
        self._witness: dict[Any, frozenset[Any] | None] = crs.shared.setdefault("witness", {})
        self._tree_keys: dict[Any, list[tuple[Any, NodeResult]]] = crs.shared.setdefault("tree_keys", {})
        # what this patient's facts can make non-empty: atoms some fact satisfied, and fact kinds
        self.matched: set[Any] = {a for a, hit in enumerate(sets) if hit}
        self.matched.update(("kind", k) for k in self.by_kind)
        # facts read from a partial date: fact index -> (index of its other end in the engine's
        # answer, the other end encoded, the fields whose value differs between the two ends)
        self.ends: dict[int, tuple[int, dict[str, Any], frozenset[str]]] = {}
        n = len(encoded)
        for k, (i, other) in enumerate(fs.completions):
            e = other.engine_fields()
            lo = encoded[i]
            self.ends[i] = (n + k, e, frozenset(f for f in lo.keys() | e.keys() if lo.get(f) != e.get(f)))
        # a fact whose field is unknown may satisfy a ``where`` test on that field: mark (kind, field) so that
        # no sub-tree is taken as having no candidate while such a fact is present (see :func:`witness`)
        self._unread_by_resource: dict[tuple[str, str], frozenset[str]] | None = None
        self.matched.update(("unknown", kind, f) for kind, f, _r, _e in fs.unreadable_fields)
        #: kinds with a field present but not understood: only their leaves can have undecided candidates
        self.unsure_kinds = frozenset(kind for kind, _f, _r, _e in fs.unreadable_fields)
        if self.ends:
            self.matched.update(("unknown", kd, f) for kd in self.by_kind for f in FACT_SCHEMA.get(kd, _NO_FIELDS))
        self.maybes: dict[Any, tuple[int, ...]] = {}
        # fields present but unreadable: (kind, field, resource) -> element
        self.unread_fields = {(k, f, r): e for k, f, r, e in fs.unreadable_fields}
        # values present but unreadable: kind -> [(index in the engine's answer, known fields, resource, element)]
        self.unread: dict[str, list[tuple[int, dict[str, Any], str, str]]] = {}
        n += len(fs.completions)
        for k, (kind, fields, res, element) in enumerate(fs.unreadable):
            self.unread.setdefault(kind, []).append((n + k, fields, res, element))
            self.matched.add(("kind", kind))  # no shortcut through results of patients without this kind
            # nor through a leaf whose test fields the unreadable value leaves unknown (see :func:`witness`)
            self.matched.update(("unknown", kind, f) for f in FACT_SCHEMA.get(kind, _NO_FIELDS) if f not in fields)
            self.matched.add(("unread", kind))

    # ---- tests over sets of facts
    def has(self, name: str) -> frozenset[int]:
        """The facts that carry a value for ``name``."""
        if self._has is None:  # one pass over the facts for every field at once
            fields: dict[str, list[int]] = {}
            for i, e in enumerate(self.enc):
                for k in e:
                    fields.setdefault(k, []).append(i)
            self._has = {k: frozenset(v) for k, v in fields.items()}
        return self._has.get(name, _NOTHING)

    def hits(self, t: TField) -> frozenset[int]:
        """The facts that satisfy one of the test's atoms (before negation)."""
        key = id(t)
        got = self._hits.get(key)
        if got is None:
            sets = self.sets
            if len(t.atoms) == 1:
                got = sets[t.atoms[0]]
            else:
                got = frozenset().union(*(sets[a] for a in t.atoms))
            self._hits[key] = got
        return got

    def whole(self, t: TNode) -> tuple[frozenset[int], frozenset[int]]:
        """(met, not met) among all the patient's facts; the rest is unknown. A test's outcome on one
        fact does not depend on the other facts, so any candidate set is split by intersection."""
        key = id(t)
        got = self._whole.get(key)
        if got is not None:
            return got
        if isinstance(t, TField):
            if t.const is not None:
                every = self.universe
                got = (
                    (every, _NOTHING)
                    if t.const == MET
                    else (_NOTHING, every)
                    if t.const == NOT_MET
                    else (_NOTHING, _NOTHING)
                )
            else:
                known = self.has(t.field)
                hit = self.hits(t)
                if self.ends:
                    known = known - self.undecided(t, hit)
                met = known & hit
                got = (known - met, met) if t.negate else (met, known - met)
        else:
            parts = [self.whole(x) for x in t.items]
            if t.op == "not":
                got = (parts[0][1], parts[0][0])
            elif t.op == "all":
                met = self.universe
                no = _NOTHING
                for m, n in parts:
                    met = met & m
                    no = no | n
                got = (met - no, no)
            else:
                met = _NOTHING
                no = self.universe
                for m, n in parts:
                    met = met | m
                    no = no & n
                got = (met, no - met)
        self._whole[key] = got
        return got

    def undecided(self, t: TField, hit: frozenset[int]) -> frozenset[int]:
        """Facts read from a partial date on which the test is not the same at both ends of the date's
        interval (or, for a test other than an order comparison, whose value differs at all): unknown.
        Both ends bound the field (an age, a day count), so an order comparison met or not met at both
        is met or not met for every completion in between."""
        out = []
        for i, (j, other, differs) in self.ends.items():
            if t.field in differs and (t.op not in _ORDER_OPS or t.field not in other or (i in hit) != (j in hit)):
                out.append(i)
        return frozenset(out)

    def split(self, t: TNode, cands: frozenset[int]) -> tuple[frozenset[int], frozenset[int]]:
        """(met, not met) among ``cands``; the rest of ``cands`` is unknown."""
        met, no = self.whole(t)
        return cands & met, cands & no

    def absent_fields(self, t: TNode, i: int) -> list[str]:
        if isinstance(t, TField):
            end = self.ends.get(i)
            if end is not None and t.const is None and t.field in end[2]:
                return [t.field]  # a partial date leaves the value open
            return [] if (t.const is not None or t.field in self.enc[i]) else [t.field]
        out: list[str] = []
        for x in t.items:
            out += [f for f in self.absent_fields(x, i) if f not in out]
        return out

    def resource(self, i: int) -> str | None:
        ev = self.fs.facts[i].evidence
        return ev[0].resource if ev else None

    # ---- criteria
    def node(self, p: PNode, cid: str | None) -> NodeResult:
        # a node with its own id reports under that id wherever it is used: evaluate it once
        own = p.own
        key = p if own else (p, cid)
        got = self.memo.get(key)
        if got is not None:
            return got
        return self.compute(p, own, cid, key)

    def compute(self, p: PNode, own: str | None, cid: str | None, key: Any) -> NodeResult:
        if p.tag == 1:
            # a sub-tree whose every leaf is sure to find no candidate fact has the result it had for
            # every other such patient: take it, and its nodes' results, without walking it
            w = self._witness.get(p, _UNSEEN)
            if w is _UNSEEN:
                w = witness(p, self._witness)
            if w is not None and self.matched.isdisjoint(w):
                got = self._const.get((p, own or cid))
                if got is not None:
                    self.memo.update(self.tree_keys(got, own or cid))
                    return got
            got = self.boolean(p, own or cid)
        elif p.tag == 0:
            got = self.fact(p, own or cid)
        elif p.tag == 2:
            got = self._const.get(key) or self.constant(key, _nr((p, p.outcome, (), (), (), p.shown)))
        else:
            got = self.ruleref(p, own or cid)
        self.memo[key] = got
        return got

    def tree_keys(self, r: NodeResult, cid: str | None) -> list[tuple[Any, NodeResult]]:
        """(evaluation key, result) of every node of a patient-independent result tree (kept)."""
        key = (id(r), cid)
        got = self._tree_keys.get(key)
        if got is None:
            got = []
            stack = [(r, cid)]
            while stack:
                x, c = stack.pop()
                own = x[0].own
                got.append((x[0] if own else (x[0], c), x))
                stack.extend((ch, own or c) for ch in x[4])
            self._tree_keys[key] = got
        return got

    def constant(self, key: Any, result: NodeResult) -> NodeResult:
        """Keep a patient-independent result; the one kept (first stored) is returned."""
        got = self._const.setdefault(key, result)
        self._const_ids.add(id(got))
        return got

    def boolean(self, p: PBool, own: str | None) -> NodeResult:
        memo = self.memo
        kids_list = []
        for x in p.items:  # node(), inlined
            xown = x.own
            key = x if xown else (x, own)
            k = memo.get(key)
            kids_list.append(k if k is not None else self.compute(x, xown, own, key))
        kids = tuple(kids_list)
        const_ids = self._const_ids
        for k in kids:
            if id(k) not in const_ids:
                break
        else:
            key = (p, own)
            got = self._const.get(key)
            return got if got is not None else self.constant(key, self._boolean(p, kids))
        return self._boolean(p, kids)

    def _boolean(self, p: PBool, kids: tuple[NodeResult, ...]) -> NodeResult:
        op = p.op
        if op == "not":
            k = kids[0]
            return _nr((p, NEGATION[k[1]], k[2], k[3], kids, ""))
        if len(kids) == 1:
            k = kids[0]
            return _nr((p, k[1], k[2], k[3], kids, ""))
        outs = [k[1] for k in kids]
        out = all_of(outs) if op == "all" else any_of(outs)
        same = [k for k in kids if k[1] == out]
        if len(same) == 1:
            facts = same[0][2]
            missing = same[0][3] if out == UNKNOWN else ()
        else:
            facts = tuple(dict.fromkeys([i for k in same for i in k[2]]))
            missing = tuple(dict.fromkeys([m for k in same for m in k[3]])) if out == UNKNOWN else ()
        return _nr((p, out, facts, missing, kids, ""))

    def candidates(self, p: PFact) -> tuple[int, ...]:
        key = p.ckey  # (kind, identity of the shared condition tuple)
        got = self.cands.get(key)
        if got is None:
            pool = self.by_kind.get(p.kind)
            if pool:
                sets = self.sets
                for w in p.where:
                    if w.plain and not self.ends:  # the common case: the facts some atom matched (usually none)
                        hit = sets[w.atoms[0]] if len(w.atoms) == 1 else self.hits(w)
                        pool = pool & hit & self.has(w.field) if hit else None
                    else:
                        pool = pool & self.whole(w)[0]
                    if not pool:
                        break
            got = self.cands[key] = tuple(sorted(pool)) if pool else ()
        return got

    def unreadable(self, p: PFact, cid: str | None, without: Outcome) -> NodeResult | None:
        """An unknown result when no fact was found but a value that could have been one is present and
        unreadable: one whose known fields do not rule out the criterion's ``where``. ``without`` is the
        leaf's outcome without such values: a value whose known fields fail the leaf's test cannot change
        a leaf that is not met either way."""
        for j, fields, res, element in self.unread.get(p.kind, ()):
            possible = True
            for w in p.where:
                if isinstance(w, TField) and w.const is None and w.field in fields and (j in self.hits(w)) == w.negate:
                    possible = False
                    break
            if possible and without == NOT_MET and p.test is not None and self.known(p.test, j, fields) == NOT_MET:
                possible = False
            if possible:
                miss = (
                    Missing(
                        cid,
                        p.kind,
                        "unreadable",
                        resource=res,
                        element=element or None,
                        where=_where(p),
                        text=p.node.missing_text,
                    ),
                )
                return NodeResult(p, UNKNOWN, (), miss, (), "unreadable")
        return None

    def known(self, t: TNode, j: int, fields: Mapping[str, Any]) -> Outcome:
        """The test's outcome on the unreadable value ``j`` from its known ``fields`` (unknown where a
        field it needs is not known)."""
        if isinstance(t, TField):
            if t.const is not None:
                return t.const
            if t.field not in fields:
                return UNKNOWN
            return MET if (j in self.hits(t)) != t.negate else NOT_MET
        parts = [self.known(x, j, fields) for x in t.items]
        if t.op == "not":
            return NEGATION[parts[0]]
        return all_of(parts) if t.op == "all" else any_of(parts)

    def maybe(self, p: PFact, cands: tuple[int, ...]) -> tuple[int, ...]:
        """Facts of the leaf's kind for which no ``where`` test is not met but some is unknown because its field
        is present but not understood (the reader lists it in ``FactSet.unreadable_fields``, e.g. "is this a
        cancer?" for a code no map holds): each may or may not be a candidate. A field that is simply absent
        (no ULN given, no origin stated) does not make a fact one."""
        key = p.ckey
        got = self.maybes.get(key)
        if got is None:
            rest = self.by_kind.get(p.kind, _NOTHING) - frozenset(cands) if p.where else _NOTHING
            if rest:
                unread = self.unread_by_resource()
                fields = {w.field for w in _fields(p.where)}
                rest = frozenset(
                    i for i in rest if fields & unread.get((p.kind, self.resource(i) or ""), _NO_FIELD_SET)
                )
            for w in p.where:
                if not rest:
                    break
                rest = rest - self.whole(w)[1]
            got = self.maybes[key] = tuple(sorted(rest))
        return got

    def unread_by_resource(self) -> Mapping[tuple[str, str], frozenset[str]]:
        """(kind, resource) -> the fields its reader found present but could not read."""
        if self._unread_by_resource is None:
            acc: dict[tuple[str, str], set[str]] = {}
            for kind, f, res, _e in self.fs.unreadable_fields:
                acc.setdefault((kind, res), set()).add(f)
            self._unread_by_resource = {k: frozenset(v) for k, v in acc.items()}
        return self._unread_by_resource

    def fact(self, p: PFact, cid: str | None) -> NodeResult:
        cands = self.candidates(p)
        base = self.leaf(p, cid, cands)
        if self.ends and base[1] == NOT_MET and p.where:
            # a fact read from a partial date whose ``where`` is met at one end only may be a candidate
            open_ = self.maybe_candidates(p)
            if open_:
                where = _where(p)
                miss = tuple(
                    self.field_missing(p, cid, f, i, where)
                    for i in open_
                    for w in p.where
                    for f in self.absent_fields(w, i)
                )
                return NodeResult(p, UNKNOWN, open_, miss, (), "field")
        maybe = self.maybe(p, cands) if p.where and p.kind in self.unsure_kinds else ()
        if not maybe or (base.outcome == UNKNOWN and base.detail != "absent"):
            return base
        if base.outcome == UNKNOWN:  # unknown either way: what decides is the field on file, not absent data
            return NodeResult(p, UNKNOWN, maybe, self.where_missing(p, cid, maybe), (), "where")
        # open world: the outcome with each undecided fact taken as a candidate (for 'latest', the candidate
        # it would be; for a count, all of them) must agree with the outcome without them
        need = p.node.min_count or 1
        worlds = [tuple(sorted({*cands, m})) for m in maybe]
        if need > 1 and len(maybe) > 1:
            worlds.append(tuple(sorted({*cands, *maybe})))
        if all(self.leaf(p, cid, w).outcome == base.outcome for w in worlds):
            return base
        return NodeResult(p, UNKNOWN, maybe, self.where_missing(p, cid, maybe), (), "where")

    def where_missing(self, p: PFact, cid: str | None, maybe: tuple[int, ...]) -> tuple[Missing, ...]:
        """What would decide whether the undecided facts are candidates: their unknown ``where`` fields, each
        pointing at the element that could not be read."""
        where = _where(p)
        out: list[Missing] = []
        for i in maybe:
            fields: list[str] = []
            for w in p.where:
                fields += [f for f in self.absent_fields(w, i) if f not in fields]
            out.extend(self.field_missing(p, cid, f, i, where) for f in fields)
        return _dedupe(out)

    def maybe_candidates(self, p: PFact) -> tuple[int, ...]:
        """Facts of the leaf's kind read from a partial date that no ``where`` test rules out but some
        leaves open, and whose test and window do not rule them out either."""
        pool = self.by_kind.get(p.kind, _NOTHING) & frozenset(self.ends)
        open_ = _NOTHING
        for w in p.where:
            met, no = self.whole(w)
            pool = pool - no
            open_ = open_ | (pool - met)
        pool = pool & open_
        for t in (p.window, p.test):
            if pool and t is not None:
                pool = pool - self.whole(t)[1]
        return tuple(sorted(pool))

    def leaf(self, p: PFact, cid: str | None, cands: tuple[int, ...]) -> NodeResult:
        """The leaf's result on the given candidate facts."""
        leaf = p.node
        if not cands and self.unread and p.kind in self.unread:
            got_unread = self.unreadable(p, cid, leaf.missing)
            if got_unread is not None:
                return got_unread
        if not cands:
            key = (p, cid)
            got = self._const.get(key)
            if got is None:
                out = leaf.missing
                miss: tuple[Missing, ...] = (
                    (Missing(cid, p.kind, "absent", where=_where(p), text=leaf.missing_text),) if out == UNKNOWN else ()
                )
                got = self.constant(key, NodeResult(p, out, (), miss, (), "absent"))
            return got
        if leaf.latest and p.date_field:
            df = p.date_field
            enc = self.enc
            cands = (max(cands, key=lambda i: (enc[i].get(df, -(10**9)), i)),)
        maybe: frozenset[int] = _NOTHING  # candidates read from a partial date that may be in the window
        window = p.window
        if window is not None:
            fresh, old = self.split(window, frozenset(cands))
            if self.ends and len(fresh) + len(old) < len(cands):
                maybe = frozenset(cands) - fresh - old
            if not fresh and maybe:
                return self.open_window(p, window, cid, tuple(sorted(maybe)))
            if not fresh:
                out = leaf.stale
                miss = (
                    (
                        Missing(
                            cid,
                            p.kind,
                            "stale",
                            resource=self.resource(cands[0]),
                            days=p.window_days,
                            where=_where(p),
                            text=leaf.missing_text,
                        ),
                    )
                    if out == UNKNOWN
                    else ()
                )
                return NodeResult(p, out, cands, miss, (), "stale")
            if len(fresh) < len(cands):
                cands = tuple(sorted(fresh))
        need = leaf.min_count or 1
        if p.test is None:
            if window is not None and len(cands) < need <= len(cands) + len(maybe):
                return self.open_window(p, window, cid, tuple(sorted(maybe)))
            if len(cands) < need and self.unread and p.kind in self.unread:
                got_unread = self.unreadable(p, cid, NOT_MET)
                if got_unread is not None:
                    return got_unread
            return _nr((p, MET if len(cands) >= need else NOT_MET, cands, (), (), ""))
        pool = frozenset(cands)
        met_set, no_set = self.split(p.test, pool)
        if len(met_set) >= need:
            return _nr((p, MET, tuple(sorted(met_set)), (), (), ""))
        if window is not None and maybe and len(met_set) + len(maybe - self.split(p.test, maybe)[1]) >= need:
            return self.open_window(p, window, cid, tuple(sorted(maybe)))
        if len(no_set) < len(pool):
            unk = tuple(sorted(pool - met_set - no_set))
            if len(met_set) + len(unk) >= need:
                where = _where(p)
                miss = tuple(
                    self.field_missing(p, cid, f, i, where) for i in unk for f in self.absent_fields(p.test, i)
                )
                return NodeResult(p, UNKNOWN, unk, miss, (), "field")
        if self.unread and p.kind in self.unread:  # an unreadable value of this kind could meet it
            got_unread = self.unreadable(p, cid, NOT_MET)
            if got_unread is not None:
                return got_unread
        return _nr((p, NOT_MET, cands, (), (), ""))

    def field_missing(self, p: PFact, cid: str | None, f: str, i: int, where: str) -> Missing:
        """Why field ``f`` of fact ``i`` leaves a test open: absent, or present but unreadable."""
        res = self.resource(i)
        element = self.unread_fields.get((p.kind, f, res or "")) if self.unread_fields else None
        if element is not None:
            return Missing(
                cid, p.kind, "unreadable", field=f, resource=res, element=element, where=where, text=p.node.missing_text
            )
        return Missing(cid, p.kind, "field", field=f, resource=res, where=where, text=p.node.missing_text)

    def open_window(self, p: PFact, window: TNode, cid: str | None, maybe: tuple[int, ...]) -> NodeResult:
        """Unknown: facts read from a partial date may or may not lie within the leaf's ``window``."""
        where = _where(p)
        miss = tuple(
            Missing(cid, p.kind, "field", field=f, resource=self.resource(i), where=where, text=p.node.missing_text)
            for i in maybe
            for f in self.absent_fields(window, i)
        )
        return NodeResult(p, UNKNOWN, maybe, miss, (), "field")

    def ruleref(self, p: PRuleRef, cid: str | None) -> NodeResult:
        leaf = p.node
        ref = self.done.get(leaf.rule)
        if ref is None:  # cannot happen after topological ordering; stay safe
            return NodeResult(p, UNKNOWN, (), (Missing(cid, "rule", "rule", rule=leaf.rule),))
        got: str
        wanted: set[str]
        undecided: str
        options: tuple[str, str]
        if leaf.criterion is None:
            got, wanted, undecided, options = (
                ref.status,
                set(leaf.status or ()),
                "indeterminate",
                ("flagged", "not_flagged"),
            )
            missing_src = _rule_missing(ref)
            facts = _rule_facts(ref)
        else:
            node = ref.criterion(leaf.criterion)
            got = node.outcome if node is not None else UNKNOWN
            wanted, undecided, options = set(leaf.outcome or ()), UNKNOWN, (MET, NOT_MET)
            missing_src = node.missing if node is not None else ()
            facts = node.facts if node is not None else ()
        out: Outcome
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
            ev = RuleEval(cr, "not_applicable", applies, (), None, self.memo)
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
            ev = RuleEval(cr, "not_applicable", applies, (), None, self.memo)
        else:
            best = min(insts, key=_rank)
            ev = RuleEval(cr, best.status, applies, tuple(insts), best, self.memo)
        self.done[cr.rule.id] = ev
        return ev


_UNSEEN: Any = object()  # not in a cache (``None`` is a cached answer)


def witness(p: PNode, cache: dict[Any, frozenset[Any] | None]) -> frozenset[Any] | None:
    """Atoms and fact kinds of which at least one must be present for some leaf under ``p`` to have
    a candidate fact (or an unreadable value); ``None`` when that cannot be said (a rule reference). A
    leaf needs a fact of its kind that satisfies each plain ``where`` test, so the atoms of one such test
    (or else its kind) witness it, together with a fact of that kind whose tested field is unknown (it may
    satisfy the test) and an unreadable value of its kind (``("unread", kind)``)."""
    if p in cache:
        return cache[p]
    got: frozenset[Any] | None
    if p.tag == 0:
        plain = next((w for w in p.where if w.plain), None)
        got = (
            frozenset({*plain.atoms, ("unknown", p.kind, plain.field)})
            if plain is not None
            else frozenset({("kind", p.kind)})
        )
        got |= {("unread", p.kind)}  # a value of the kind present but unreadable can leave it unknown
    elif p.tag == 2:
        got = frozenset()
    elif p.tag == 1:
        parts = [witness(x, cache) for x in p.items]
        known = [x for x in parts if x is not None]
        got = frozenset().union(*known) if len(known) == len(parts) else None
    else:
        got = None
    cache[p] = got
    return got


def id_keys(p: PNode, cid: str | None = None, out: list[tuple[Any, str]] | None = None) -> list[tuple[Any, str]]:
    """The evaluation keys and criterion ids of the id'd nodes of a plan tree, in tree order."""
    if out is None:
        out = []
    own = p.own
    if own:
        out.append((p, own))
    if p.tag == 1:
        for x in p.items:
            id_keys(x, own or cid, out)
    return out


def _rank(r: InstanceResult) -> int:
    return STATUS_RANK[r[2]]


def _fields(tests: Sequence[TNode]) -> list[TField]:
    """The field tests of a list of tests, nested ones included."""
    out: list[TField] = []
    for t in tests:
        if isinstance(t, TField):
            out.append(t)
        else:
            out += _fields(t.items)
    return out


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


def engine_payload(crs: CompiledRuleSet, fs: FactSet) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The patient's facts encoded (every field), and what the engine is sent (the fields its atoms test)."""
    encoded = [f.engine_fields() for f in fs.facts]
    sent = crs.sent_fields
    payload = [{k: v for k, v in e.items() if k == "kind" or k in sent.get(e["kind"], ())} for e in encoded]
    for _, other in fs.completions:  # the other end of facts read from a partial date, after the facts
        e = other.engine_fields()
        payload.append({k: v for k, v in e.items() if k == "kind" or k in sent.get(e["kind"], ())})
    for kind, fields, _, _ in fs.unreadable:  # then what is known of values present but unreadable
        payload.append({"kind": kind, **{k: v for k, v in fields.items() if k in sent.get(kind, ())}})
    return encoded, payload


def evaluate_facts(crs: CompiledRuleSet, fs: FactSet) -> list[RuleEval]:
    """Every rule of the compiled set, evaluated on one patient's facts, in dependency order."""
    encoded, payload = engine_payload(crs, fs)
    ev = _Eval(crs, fs, encoded, crs.engine.match(payload))
    return [ev.rule(cr) for cr in crs.rules]


__all__ = ["InstanceResult", "Missing", "NodeResult", "RuleEval", "engine_payload", "evaluate_facts", "id_keys"]
