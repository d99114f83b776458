"""Rule model + threshold profile → engine atoms and an evaluation plan.

Every leaf condition becomes one or more *atoms* (fact kind + one single-field test) that the
durable-rules engine evaluates; the boolean structure above atoms becomes a plan that
:mod:`mdtflag.evaluation.match` evaluates in three-valued (Kleene) logic. Compilation checks everything the
engine would otherwise get wrong: unknown fact fields, constants of the wrong type, ordering
comparisons on text, the engine's static limits.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Optional, TypeVar, Union, cast

import mdtflag.ruleset.model as rm
from mdtflag.compile.engine import Atom, EngineError, EngineLimitError, Test, fact_engine
from mdtflag.compile.plan import (
    CompiledRule,
    CompiledRuleSet,
    Instance,
    PBool,
    PConst,
    PFact,
    PNode,
    PRuleRef,
    TBool,
    TField,
    TNode,
)
from mdtflag.fhir.facts import FACT_MODELS, FACT_SCHEMA
from mdtflag.fhir.facts.encoding import encode_constant
from mdtflag.ruleset.diagnostics import Diagnostics, Pos, RuleSetError
from mdtflag.ruleset.walk import children, criterion_ids

CLOSED_STATE = "closed"


class _Unset:
    """A parameter that the profile or row sets to null: comparisons with it are never met."""

    def __repr__(self) -> str:
        return "null"


UNSET = _Unset()
_P = TypeVar("_P", PFact, PBool, PRuleRef, PConst)
_T = TypeVar("_T")


# ----------------------------------------------------------------- compiler


class _Compiler:
    def __init__(self, rs: rm.RuleSet, profile: str, diags: Diagnostics):
        self.rs = rs
        self.profile = profile
        self.params: dict[str, Any] = dict(rs.profiles.profiles.get(profile, {}))
        self.diags = diags
        self._same = {}
        self.atoms: dict[Atom, int] = {}
        self.atom_list: list[Atom] = []
        self.atom_pos: list[Pos] = []  # where each atom was first made
        self.used_valuesets: set[str] = set()
        self.plans: dict[tuple[Any, ...], PNode] = {}

    # ---- plan nodes are shared: identical sub-plans of different rows are one object,
    # so the matcher evaluates each of them once per patient
    _same: dict[Any, Any]

    def intern(self, p: _P) -> _P:
        key: tuple[Any, ...]
        if isinstance(p, PBool):
            key = (id(p.node), p.op, tuple(id(x) for x in p.items))
        elif isinstance(p, PFact):
            key = (id(p.node), p.where, p.window, p.window_days, p.test, p.date_field)
        elif isinstance(p, PConst):
            key = (id(p.node), p.outcome, p.shown)
        else:
            key = (id(p.node),)
        got = self.plans.get(key)
        if got is None:
            got = self.plans[key] = p
        return cast(_P, got)

    # ---- atoms
    def atom(self, a: Atom, pos: Pos) -> int:
        idx = self.atoms.get(a)
        if idx is None:
            idx = self.atoms[a] = len(self.atom_list)
            self.atom_list.append(a)
            self.atom_pos.append(pos)
        return idx

    def limit_pos(self, message: str) -> Pos:
        """Where an engine limit was crossed: the atom the message names; else, of the fact kind it names, the
        leaf that made the most atoms (a long value list, many thresholds); else the last atom made."""
        m = re.search(r"\batom (\d+)\b", message)
        if m and int(m.group(1)) < len(self.atom_pos):
            return self.atom_pos[int(m.group(1))]
        m = re.search(r"\bkind eq '([^']*)'", message)
        if m:
            made: dict[Pos, int] = {}
            for a, pos in zip(self.atom_list, self.atom_pos):
                if a.kind == m.group(1):
                    made[pos] = made.get(pos, 0) + 1
            if made:
                return max(made, key=lambda p: made[p])
        return self.atom_pos[-1] if self.atom_pos else Pos("ruleset.yaml")

    # ---- values
    def param(self, name: str, row: Mapping[str, Any] | None, pos: Pos) -> Any:
        if name.startswith("row."):
            col = name[4:]
            if row is None:
                self.diags.add("C005", f"parameter '{name}' refers to a table row, but the rule has no for_each", pos)
                return None
            if col not in row:
                self.diags.add("C005", f"table row '{row.get('key')}' has no column '{col}'", pos)
                return None
            return UNSET if row[col] is None else row[col]
        if name not in self.params:
            self.diags.add(
                "C005",
                f"unknown parameter '{name}' in profile '{self.profile}'",
                pos,
                help="parameters: " + ", ".join(sorted(self.params)),
            )
            return None
        return UNSET if self.params[name] is None else self.params[name]

    def resolve(self, v: Any, row: Mapping[str, Any] | None, pos: Pos) -> Any:
        if isinstance(v, rm.ParamRef):
            got = self.param(v.param, row, pos)
            if got is not None and got is not UNSET and v.lookup is not None:
                return self.lookup(v.lookup, got, pos)
            return got
        return v

    def lookup(self, lk: rm.Lookup, value: Any, pos: Pos) -> list[Any] | None:
        table = self.rs.tables.get(lk.table)
        if table is None:
            self.diags.add("C011", f"unknown table '{lk.table}' in lookup", pos)
            return None
        keys = value if isinstance(value, (list, tuple)) else [value]
        out: list[Any] = []
        for r in table.rows:
            if lk.match not in r:
                self.diags.add("C011", f"table '{lk.table}' row '{r['key']}' has no column '{lk.match}'", pos)
                return None
            if r[lk.match] in keys:
                got = r.get(lk.column)
                for x in got if isinstance(got, list) else [] if got is None else [got]:
                    if x not in out:
                        out.append(x)
        return out

    def resolve_set(self, v: Any, field_name: str, row: Mapping[str, Any] | None, pos: Pos) -> list[Any] | None:
        if isinstance(v, rm.ParamRef):
            return self.resolve_list(v, row, pos)
        if isinstance(v, rm.ValueSetRef):
            return self.valueset_values([v.valueset], field_name, pos)
        if isinstance(v, rm.ValueSetsRef):
            ids = self.resolve_list(v.valuesets, row, pos) if isinstance(v.valuesets, rm.ParamRef) else v.valuesets
            return None if ids is None else self.valueset_values(list(ids), field_name, pos)
        return list(v)

    def resolve_list(self, v: rm.ParamRef, row: Mapping[str, Any] | None, pos: Pos) -> list[Any] | None:
        """A parameter as a list: a scalar becomes one item, null an empty list, an error None."""
        val = self.resolve(v, row, pos)
        if val is None:
            return None
        if val is UNSET:
            return []
        return list(val) if isinstance(val, (list, tuple)) else [val]

    def valueset_values(self, ids: list[str], field_name: str, pos: Pos) -> list[Any] | None:
        out: list[Any] = []
        for vid in ids:
            vs = self.rs.valuesets.get(vid) if isinstance(vid, str) else None
            if vs is None:
                self.diags.add(
                    "C004",
                    f"unknown value set '{vid}'",
                    pos,
                    help="value sets are files under valuesets/; the id is the file name",
                )
                return None
            self.used_valuesets.add(vid)
            if vs.field != field_name:
                self.diags.add(
                    "C012", f"value set '{vid}' holds '{vs.field}' codes but is compared with field '{field_name}'", pos
                )
            out.extend(vs.values)
        return out

    def encode(self, kind: str, field_name: str, value: Any, pos: Pos) -> Optional[Union[str, int, bool]]:
        ftype = FACT_SCHEMA[kind][field_name]
        enc = encode_constant(ftype, value)
        bad = enc is None
        if bad:
            self.diags.add("C003", f"field '{kind}.{field_name}' holds {ftype} values; {value!r} is not one", pos)
            return None
        return enc

    # ---- tests
    def field_test(self, kind: str, ft: rm.FieldTest, row: Mapping[str, Any] | None) -> TField | None:
        pos = ft.pos
        schema = FACT_SCHEMA.get(kind, {})
        if ft.field not in schema:
            self.diags.add(
                "C002", f"fact '{kind}' has no field '{ft.field}'", pos, help="fields: " + ", ".join(sorted(schema))
            )
            return None
        ftype = schema[ft.field]
        op, raw = ft.cond.op, ft.cond.value
        if op == "in" or op == "not_in":
            values = self.resolve_set(raw, ft.field, row, pos)
            if values is None:
                return None
            if not values and not _from_param(raw):
                self.diags.add("C003", f"'{op}' needs at least one value", pos)
                return None
            atoms = []
            for v in values:
                enc = self.encode(kind, ft.field, v, pos)
                if enc is None:
                    return None
                atoms.append(self.atom(Atom(kind, (Test(ft.field, "eq", enc),)), pos))
            shown_vals = ", ".join(_shown(v) for v in values[:6]) + (" …" if len(values) > 6 else "")
            return TField(
                ft.field,
                op,
                tuple(sorted(set(atoms))),
                op == "not_in",
                f"{ft.field} {'in' if op == 'in' else 'not in'} {{{shown_vals}}}",
            )
        value = self.resolve(raw, row, pos)
        if value is None:
            return None
        if value is UNSET:
            return TField(
                ft.field, op, (), False, f"{ft.field} {op} null (not set in profile '{self.profile}')", const="not_met"
            )
        if ftype in ("str", "bool") and op not in ("eq", "ne"):
            self.diags.add(
                "C009", f"'{op}' cannot compare {ftype} field '{kind}.{ft.field}'; use eq, ne, in or not_in", pos
            )
            return None
        enc = self.encode(kind, ft.field, value, pos)
        if enc is None:
            return None
        sym = {"eq": "=", "ne": "≠", "lt": "<", "lte": "≤", "gt": ">", "gte": "≥"}[op]
        return TField(
            ft.field,
            op,
            (self.atom(Atom(kind, (Test(ft.field, op, enc),)), pos),),
            False,
            f"{ft.field} {sym} {_shown(value)}",
        )

    def test_expr(self, kind: str, t: Any, row: Mapping[str, Any] | None) -> TNode | None:
        if isinstance(t, rm.Conditions):
            fields = [self.field_test(kind, ft, row) for ft in t.fields]
            tests = [i for i in fields if i is not None]
            if len(tests) < len(fields):
                return None
            return tests[0] if len(tests) == 1 else TBool("all", tuple(tests))
        if isinstance(t, rm.TestNot):
            inner = self.test_expr(kind, t.not_, row)
            return None if inner is None else TBool("not", (inner,))
        op = "all" if isinstance(t, rm.TestAll) else "any"
        items = [self.test_expr(kind, x, row) for x in (t.all if op == "all" else t.any)]
        nodes = [i for i in items if i is not None]
        if len(nodes) < len(items):
            return None
        return TBool(op, tuple(nodes))

    # ---- criteria
    def criterion(self, c: Any, row: Mapping[str, Any] | None) -> PNode | None:
        if isinstance(c, (rm.AllNode, rm.AnyNode)):
            op = "all" if isinstance(c, rm.AllNode) else "any"
            found = [_through(self.criterion(x, row)) for x in (c.all if isinstance(c, rm.AllNode) else c.any)]
            items = [i for i in found if i is not None]
            if len(items) < len(found):
                return None
            # Branches decided when compiling (parameter leaves, and nodes made only of them):
            # one that decides the node (not met under all, met under any) hides its siblings; one that
            # cannot change it (met under all, not met under any) is hidden. Hidden nodes are neither
            # evaluated nor reported: they do not apply to this profile or table row.
            deciding = "not_met" if op == "all" else "met"
            for i in items:
                if const_outcome(i) == deciding:
                    return self.intern(PBool(c, op, (i,)))
            kept = [i for i in items if const_outcome(i) is None]
            return self.intern(PBool(c, op, tuple(kept or items[:1])))
        if isinstance(c, rm.NotNode):
            inner = _through(self.criterion(c.not_, row))
            return None if inner is None else self.intern(PBool(c, "not", (inner,)))
        if isinstance(c, rm.RuleRefLeaf):
            target = self.rs.rule(c.rule)
            if target is None:
                self.diags.add("C006", f"reference to unknown rule '{c.rule}'", c.pos)
                return None
            if c.criterion is not None and c.criterion not in criterion_ids(target):
                self.diags.add("C008", f"rule '{c.rule}' has no criterion '{c.criterion}'", c.pos)
                return None
            return self.intern(PRuleRef(c))
        if isinstance(c, rm.ParamLeaf):
            got = self.param(c.param, row, c.pos)
            if got is UNSET:
                got = None
            want = c.equals if isinstance(c.equals, list) else [c.equals]
            return self.intern(PConst(c, "met" if got in want else "not_met", f"{c.param} = {got}"))
        return self.fact_leaf(c, row)

    def fact_leaf(self, c: rm.FactLeaf, row: Mapping[str, Any] | None) -> PFact | None:
        if c.fact not in FACT_SCHEMA:
            self.diags.add(
                "C001", f"unknown fact kind '{c.fact}'", c.pos, help="kinds: " + ", ".join(sorted(FACT_SCHEMA))
            )
            return None
        where: list[TField] = []
        if c.where is not None:
            for ft in c.where.fields:
                tf = self.field_test(c.fact, ft, row)
                if tf is None:
                    return None
                where.append(tf)
        date_field = FACT_MODELS[c.fact].date_field
        if c.latest and (c.min_count or 1) > 1:
            self.diags.add("C015", "'latest' keeps one fact, so 'min_count' above 1 can never be met", c.pos)
            return None
        if c.latest and date_field is None:
            self.diags.add("C013", f"'latest' needs a date; fact '{c.fact}' has none", c.pos)
            return None
        window = None
        days = None
        if c.max_age_days is not None:
            age_field = FACT_MODELS[c.fact].age_field
            days = self.resolve(c.max_age_days, row, c.pos)
            if days is UNSET:
                days = None
        if days is not None:
            if age_field is None:
                self.diags.add("C013", f"'max_age_days' needs an age field; fact '{c.fact}' has none", c.pos)
                return None
            if not isinstance(days, int) or isinstance(days, bool) or days < 0:
                self.diags.add("C003", f"max_age_days must be a whole number of days ≥ 0, got {days!r}", c.pos)
                return None
            window = TField(
                age_field,
                "lte",
                (self.atom(Atom(c.fact, (Test(age_field, "lte", days),)), c.pos),),
                False,
                f"{age_field} ≤ {days}",
            )
        test = None
        if c.test is not None:
            test = self.test_expr(c.fact, c.test, row)
            if test is None:
                return None
        # equal tests share one object: evaluation caches per-patient work by identity
        return self.intern(
            PFact(
                c,
                c.fact,
                self.same(tuple(self.same(w) for w in where)),
                self.same(window) if window is not None else None,
                days,
                self.same(test) if test is not None else None,
                date_field,
            )
        )

    def same(self, t: _T) -> _T:
        """The one shared instance of an equal test, condition tuple or test tree."""
        if isinstance(t, TBool):
            t = cast(_T, TBool(t.op, tuple(self.same(x) for x in t.items)))
        return cast(_T, self._same.setdefault(t, t))


def _through(p: PNode | None) -> PNode | None:
    """A child position: an anonymous ``all``/``any`` left with one item (after compile-time pruning)
    is that item (same outcome, facts and missing data; it reports nothing of its own)."""
    while isinstance(p, PBool) and p.own is None and p.op != "not" and len(p.items) == 1:
        p = p.items[0]
    return p


def _conjunct(p: Any, gate: str | None) -> Any | None:
    """The plan node with id ``gate`` reached from ``p`` through ``all`` nodes only."""
    if gate is None:
        return None
    if getattr(p.node, "id", None) == gate:
        return p
    if isinstance(p, PBool) and p.op == "all":
        for ch in p.items:
            got = _conjunct(ch, gate)
            if got is not None:
                return got
    return None


def _is_conjunct(c: Any, gate: str) -> bool:
    if getattr(c, "id", None) == gate:
        return True
    return isinstance(c, rm.AllNode) and any(_is_conjunct(ch, gate) for ch in c.all)


def const_outcome(p: Any) -> str | None:
    """The outcome of a plan node that was decided when compiling, else None."""
    if isinstance(p, PConst):
        return p.outcome
    if isinstance(p, PBool):
        if p.op == "not":
            inner = const_outcome(p.items[0])
            return None if inner is None else {"met": "not_met", "not_met": "met"}[inner]
        outs = [const_outcome(i) for i in p.items]
        if any(o is None for o in outs):
            return None
        if p.op == "all":
            return "not_met" if "not_met" in outs else "met"
        return "met" if "met" in outs else "not_met"
    return None


def _shown(v: Any) -> str:
    """A constant as rule authors write it (YAML spelling for booleans)."""
    return ("true" if v else "false") if isinstance(v, bool) else str(v)


def _from_param(v: Any) -> bool:
    """Sets from a parameter or table may be empty (an empty set matches nothing); literal ones may not."""
    return isinstance(v, rm.ParamRef) or (isinstance(v, rm.ValueSetsRef) and isinstance(v.valuesets, rm.ParamRef))


def rule_refs(c: Any) -> set[str]:
    if c is None:
        return set()
    if isinstance(c, rm.RuleRefLeaf):
        return {c.rule}
    out: set[str] = set()
    for ch in children(c):
        out |= rule_refs(ch)
    return out


def _order(rs: rm.RuleSet, diags: Diagnostics) -> list[rm.Rule]:
    """Topological order of rules by references; cycles are errors."""
    deps = {r.id: (rule_refs(r.criteria) | rule_refs(r.applies_when)) for r in rs.rules}
    done: list[str] = []
    state: dict[str, int] = {}

    def visit(rid: str, stack: list[str]) -> None:
        if state.get(rid) == 2 or rid not in deps:
            return
        if state.get(rid) == 1:
            cyc = " → ".join(stack[stack.index(rid) :] + [rid])
            rule = rs.rule(rid)
            diags.add("C007", f"rules refer to each other in a cycle: {cyc}", rule.pos if rule else Pos(""))
            return
        state[rid] = 1
        for d in sorted(deps[rid]):
            visit(d, stack + [rid])
        state[rid] = 2
        done.append(rid)

    for r in rs.rules:
        visit(r.id, [])
    ordered = [rs.rule(i) for i in done]
    return [r for r in ordered if r is not None]


def compile_ruleset(rs: rm.RuleSet, profile: str | None = None) -> tuple[CompiledRuleSet | None, list[Any]]:
    """Compile for one threshold profile; returns (compiled or None, diagnostics)."""
    diags = Diagnostics()
    profile = profile or rs.profiles.default
    if profile not in rs.profiles.profiles:
        diags.add(
            "C005",
            f"unknown profile '{profile}'",
            rs.profiles.pos,
            help="profiles: " + ", ".join(sorted(rs.profiles.profiles)),
        )
        return None, diags.sorted(dict(rs.sources))
    comp = _Compiler(rs, profile, diags)
    compiled: list[CompiledRule] = []
    for rule in _order(rs, diags):
        applies = comp.criterion(rule.applies_when, None) if rule.applies_when is not None else None
        instances: list[Instance] = []
        skipped: list[Mapping[str, Any]] = []
        if rule.for_each is not None:
            table = rs.tables.get(rule.for_each.table)
            if table is None:
                diags.add("C011", f"unknown table '{rule.for_each.table}'", rule.for_each.pos)
                continue
            for row in table.rows:
                if row.get("state") == CLOSED_STATE:
                    skipped.append(row)
                    continue
                plan = comp.criterion(rule.criteria, row)
                if plan is not None:
                    instances.append(Instance(row, plan, _conjunct(plan, rule.for_each.gate)))
            if rule.for_each.gate is not None:
                plain = rule.criteria
                if not _is_conjunct(plain, rule.for_each.gate):
                    diags.add(
                        "C014",
                        f"gate '{rule.for_each.gate}' is not a criterion reached from the root through 'all' nodes only",
                        rule.for_each.pos,
                        help="a gate must be required for the rule to fire, so skipping rows where it fails changes nothing",
                    )
        else:
            plan = comp.criterion(rule.criteria, None)
            if plan is not None:
                instances.append(Instance(None, plan))
        _check_outputs(rule, rs, diags)
        compiled.append(CompiledRule(rule, applies, tuple(instances), tuple(skipped)))
    if diags.errors:
        return None, diags.sorted(dict(rs.sources))
    try:
        engine = fact_engine(comp.atom_list)
    except EngineLimitError as e:
        diags.add(
            "C010",
            f"the rule set exceeds an engine limit: {e}",
            comp.limit_pos(str(e)),
            help="split value sets or reduce distinct thresholds on one fact kind",
        )
        return None, diags.sorted(dict(rs.sources))
    except EngineError as e:
        diags.add("C010", f"the engine refused the compiled rules: {e}", comp.limit_pos(str(e)))
        return None, diags.sorted(dict(rs.sources))
    sent: dict[str, set[str]] = {}
    for a in comp.atom_list:
        sent.setdefault(a.kind, set()).update(t.field for t in a.tests)
    return (
        CompiledRuleSet(
            rs, profile, dict(comp.params), engine, tuple(compiled), {k: frozenset(v) for k, v in sent.items()}
        ),
        diags.sorted(dict(rs.sources)),
    )


def _check_outputs(rule: rm.Rule, rs: rm.RuleSet, diags: Diagnostics) -> None:
    t = rule.target
    if t is not None and t.table is not None:
        table = rs.tables.get(t.table)
        if table is None:
            diags.add("C011", f"unknown table '{t.table}'", t.pos)
        elif t.column is not None and not all(t.column in row for row in table.rows):
            diags.add("C011", f"table '{t.table}' has rows without column '{t.column}'", t.pos)
        elif t.value is not None and table.text(t.value) is None:
            diags.add("C011", f"table '{t.table}' has no text '{t.value}'", t.pos)
    s = rule.suggest
    if s is not None:
        table = rs.tables.get(s.table)
        if table is None:
            diags.add("C011", f"unknown table '{s.table}'", s.pos)


def compile_or_raise(rs: rm.RuleSet, profile: str | None = None) -> CompiledRuleSet:
    crs, diags = compile_ruleset(rs, profile)
    if crs is None:
        raise RuleSetError(diags)
    return crs
