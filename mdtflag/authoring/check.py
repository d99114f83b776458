"""``mdtflag rules check``: every problem of a rule directory as diagnostics.

Three passes, each returning :class:`~mdtflag.diagnostics.Diagnostic` data:

1. :func:`~mdtflag.rulemodel.read_ruleset` (YAML and schema: ``Y``, ``S``, ``F`` codes);
2. :func:`~mdtflag.compile.compile_ruleset` for every threshold profile (``C`` codes);
3. a lint pass over the rule model and the compiled plans (``L`` codes, below), plus the rule
   directory's own test files (``T`` codes, :mod:`mdtflag.authoring_tests`).

Lint codes (severity): L001 unknown placeholder (warning) · L002 placeholder never filled where it
stands (warning) · L003 criterion with an id but no text (warning) · L004 rule without a
not_flagged / indeterminate / not_applicable text (info) · L005 blank source (warning) · L006 duplicate
criterion id in a rule (error) · L007 value set never used (warning) · L008 table never used (warning) ·
L009 contradictory conditions (warning) · L010 ``not`` of ``not`` (warning) · L011 criteria that never
matter (warning) · L012 content tagged DA or VERIFY (info) · L013 text shown for "not met" too (info) ·
L014 text that is never shown (info).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Optional, Sequence

from pydantic import BaseModel

import mdtflag.ruleset.model as rm
from mdtflag.compile.compiler import compile_ruleset
from mdtflag.compile.plan import CompiledRuleSet, PBool, PConst, PFact, PNode, TField, TNode, children
from mdtflag.ruleset.diagnostics import Diagnostic, Diagnostics, Pos
from mdtflag.fhir.facts import FACT_MODELS
from mdtflag.ruleset.yamlpos import locate, read_yaml

PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_.]*)\}")
#: Names every text may use (filled by :mod:`mdtflag.decide`).
BASE_NAMES = ("region", "as_of")
#: Tables the engine reads by name, not through a rule.
IMPLICIT_TABLES = ("regions",)
#: Fact kinds of which a patient has at most one fact per value of the given ``where`` field
#: (None: at most one fact of the kind); see the extraction rules in :mod:`mdtflag.facts`.
SINGLE_FACT = {"patient": None, "ecog": None, "lab": "analyte", "assertion": "code"}
ASSUMPTION_TAGS = ("DA", "VERIFY")
SEVERITY_ORDER = {"error": 0, "warning": 1, "info": 2}


@dataclass
class CheckReport:
    """What ``rules check`` found for one rule directory."""

    root: str
    diagnostics: list[Diagnostic]
    ruleset: Optional[rm.RuleSet] = None
    compiled: dict[str, CompiledRuleSet] = field(default_factory=dict)
    profiles: tuple[str, ...] = ()

    def count(self, severity: str) -> int:
        return sum(1 for d in self.diagnostics if d.severity == severity)


# ----------------------------------------------------------------------------- model walking

def walk_criteria(c: Any) -> Iterator[Any]:
    """Every criterion node below (and including) ``c``, in tree order."""
    if c is None:
        return
    yield c
    for ch in children(c):
        yield from walk_criteria(ch)


def rule_nodes(rule: rm.Rule) -> Iterator[Any]:
    yield from walk_criteria(rule.applies_when)
    yield from walk_criteria(rule.criteria)


def walk_models(obj: Any) -> Iterator[BaseModel]:
    """Every pydantic model inside ``obj`` (fields, tuples, lists), depth first."""
    if isinstance(obj, BaseModel):
        yield obj
        for name in type(obj).model_fields:
            yield from walk_models(getattr(obj, name))
    elif isinstance(obj, (list, tuple)):
        for x in obj:
            yield from walk_models(x)


def test_fields(t: Any) -> Iterator[rm.FieldTest]:
    if t is None:
        return
    if isinstance(t, rm.Conditions):
        yield from t.fields
    elif isinstance(t, rm.TestNot):
        yield from test_fields(t.not_)
    else:
        for x in (t.all if isinstance(t, rm.TestAll) else t.any):
            yield from test_fields(x)


def fact_fields(kind: str) -> set[str]:
    model: Any = FACT_MODELS.get(kind)
    return {n for n in model.model_fields if n not in ("evidence", "kind")} if model is not None else set()


def kinds_under(c: Any, rs: rm.RuleSet, seen: frozenset[str] = frozenset()) -> set[str]:
    """Fact kinds whose facts can stand behind a node's outcome (rule references followed)."""
    out: set[str] = set()
    for n in walk_criteria(c):
        if isinstance(n, rm.FactLeaf):
            out.add(n.fact)
        elif isinstance(n, rm.RuleRefLeaf) and n.rule not in seen:
            target = rs.rule(n.rule)
            if target is None:
                continue
            sub: Any = target.criteria
            if n.criterion is not None:
                sub = next((x for x in rule_nodes(target) if getattr(x, "id", None) == n.criterion), None)
            out |= kinds_under(sub, rs, seen | {n.rule})
    return out


# ----------------------------------------------------------------------------- placeholders

@dataclass(frozen=True)
class TextScope:
    """What :func:`mdtflag.decide.fill` can put into one text."""

    params: Mapping[str, frozenset[str]]  # profile -> parameter names
    row_keys: Optional[Sequence[Mapping[str, Any]]]  # rows of the for_each table; None: no row
    kinds: frozenset[str]
    filled: bool = True  # False: the text is shown as written (no placeholders are filled)


def placeholder_problems(name: str, scope: TextScope) -> Optional[tuple[str, str, str]]:
    """(code, message, help) for a placeholder that stays as written, or None when it is filled."""
    if not scope.filled:
        return ("L002", f"placeholder `{{{name}}}` is never filled: this text is shown as written",
                "only criterion texts and the rule's status texts are filled; write the text without braces")
    if name in BASE_NAMES:
        return None
    if name.startswith("p."):
        pname = name[2:]
        lacking = sorted(p for p, names in scope.params.items() if pname not in names)
        if len(lacking) == len(scope.params):
            return ("L001", f"unknown placeholder `{{{name}}}`: no profile has parameter '{pname}'",
                    "profile parameters: " + ", ".join(sorted(set().union(*scope.params.values()))))
        if lacking:
            return ("L002", f"placeholder `{{{name}}}` stays as written in profile(s) {', '.join(lacking)}",
                    f"add '{pname}' to every profile in profiles.yaml")
        return None
    if name.startswith("row."):
        col = name[4:]
        if scope.row_keys is None:
            return ("L002", f"placeholder `{{{name}}}` is never filled here: no table row is chosen",
                    "row placeholders work in rules with for_each, and not in the not_applicable text")
        without = [str(r.get("key")) for r in scope.row_keys if r.get(col) is None]
        if scope.row_keys and len(without) == len(scope.row_keys):
            cols = sorted({k for r in scope.row_keys for k in r})
            return ("L001", f"unknown placeholder `{{{name}}}`: no row has column '{col}'", "columns: " + ", ".join(cols))
        if without:
            more = f" and {len(without) - 3} more" if len(without) > 3 else ""
            return ("L002", f"placeholder `{{{name}}}` stays as written for row(s) {', '.join(without[:3])}{more}",
                    f"give every row a value for '{col}'")
        return None
    own = set().union(*(fact_fields(k) for k in scope.kinds)) if scope.kinds else set()
    if scope.kinds:
        own.add("resource")
    if name in own:
        return None
    others = sorted(k for k in FACT_MODELS if name in fact_fields(k))
    if others or name == "resource":
        reads = ", ".join(sorted(scope.kinds)) or "no facts"
        return ("L002", f"placeholder `{{{name}}}` is never filled here: it is a field of {', '.join(others) or 'fact'} facts, "
                        f"but this text is about {reads}",
                "fact fields are filled from the first fact behind the outcome")
    hint = ", ".join(sorted(own)) if own else "none (no facts stand behind this text)"
    return ("L001", f"unknown placeholder `{{{name}}}`", f"fields here: {hint}; also {{p.NAME}}, {{row.COLUMN}}, {{region}}, {{as_of}}")


def lint_text(text: Optional[rm.Text], label: str, scope: TextScope, diags: Diagnostics) -> None:
    if text is None:
        return
    for lang in ("sv", "en"):
        for name in dict.fromkeys(PLACEHOLDER.findall(getattr(text, lang))):
            got = placeholder_problems(name, scope)
            if got is not None:
                code, msg, help_ = got
                diags.add(code, f"{msg} (in {label}.{lang})", text.pos, severity="warning", help=help_)


def _rows(rule: rm.Rule, rs: rm.RuleSet) -> Optional[list[Mapping[str, Any]]]:
    if rule.for_each is None:
        return None
    table = rs.tables.get(rule.for_each.table)
    return [r for r in table.rows if r.get("state") != "closed"] if table is not None else []


def lint_placeholders(rule: rm.Rule, rs: rm.RuleSet, diags: Diagnostics) -> None:
    params = {name: frozenset(p) for name, p in rs.profiles.profiles.items()}
    rows = _rows(rule, rs)
    none = frozenset()  # type: frozenset[str]
    root_kinds = frozenset(kinds_under(rule.criteria, rs))
    for status in ("flagged", "not_flagged", "indeterminate"):
        lint_text(getattr(rule.texts, status), f"texts.{status}", TextScope(params, rows, root_kinds), diags)
    lint_text(rule.texts.not_applicable, "texts.not_applicable", TextScope(params, None, none), diags)
    shown_as_written = TextScope(params, rows, none, filled=False)
    lint_text(rule.title, "title", shown_as_written, diags)
    lint_text(rule.description, "description", shown_as_written, diags)
    if rule.target is not None:
        lint_text(rule.target.fixed, "target.fixed", shown_as_written, diags)
    for node in rule_nodes(rule):
        scope = TextScope(params, rows, frozenset(kinds_under(node, rs)))
        for attr in ("text", "text_not_met", "text_unknown"):
            lint_text(getattr(node, attr), attr, scope, diags)
        lint_text(node.missing_text, "missing_text", shown_as_written, diags)


def lint_absent_fills(rule: rm.Rule, diags: Diagnostics) -> None:
    """Fact placeholders in a text that is shown when no fact exists (a leaf's ``missing`` outcome)."""
    neg = {"met": "not_met", "not_met": "met", "unknown": "unknown"}
    for node in rule_nodes(rule):
        leaf, outcome = node, None
        if isinstance(node, rm.NotNode) and isinstance(node.not_, rm.FactLeaf):
            leaf = node.not_
            outcome = neg[leaf.missing]
        elif isinstance(node, rm.FactLeaf):
            outcome = leaf.missing
        if outcome is None:
            continue
        attr = {"met": "text", "not_met": "text_not_met" if node.text_not_met else "text", "unknown": "text_unknown"}[outcome]
        text = getattr(node, attr)
        if text is None:
            continue
        fields = fact_fields(leaf.fact) | {"resource"}
        for lang in ("sv", "en"):
            names = [n for n in dict.fromkeys(PLACEHOLDER.findall(getattr(text, lang))) if n in fields]
            for name in names:
                diags.add("L002", f"placeholder `{{{name}}}` stays as written when the patient has no {leaf.fact} fact "
                                  f"(missing: {leaf.missing} makes the criterion {outcome.replace('_', ' ')}) (in {attr}.{lang})",
                          text.pos, severity="warning",
                          help="write this text without fact fields, or give the absent case its own wording")


# ----------------------------------------------------------------------------- texts, ids, sources

def lint_texts_and_ids(rule: rm.Rule, diags: Diagnostics) -> None:
    seen: dict[str, Pos] = {}
    roots = {id(rule.criteria), id(rule.applies_when)}
    for node in rule_nodes(rule):
        cid = node.id
        if cid:
            if cid in seen:
                diags.add("L006", f"criterion id '{cid}' is used twice in rule {rule.id} (also {seen[cid]})", node.pos,
                          help="criterion ids name reasons and test expectations; make each unique within the rule")
            seen.setdefault(cid, node.pos)
            if node.text is None:
                diags.add("L003", f"criterion '{cid}' has no text: results show only '{cid}: met'", node.pos,
                          severity="warning", help="add text: {sv: ..., en: ...} (and text_not_met)")
            elif node.text_not_met is None and not isinstance(node, rm.ParamLeaf):
                diags.add("L013", f"criterion '{cid}' has no text_not_met: its text is shown when it is not met too",
                          node.pos, severity="info", help="add text_not_met so a failed criterion does not read as met")
        elif id(node) not in roots and (node.text or node.text_not_met or node.text_unknown):
            diags.add("L014", "this criterion has a text but no id: the text is never shown", node.pos, severity="info",
                      help="give it an id to show it as a reason, or remove the text")
        if isinstance(node, rm.NotNode) and isinstance(node.not_, rm.NotNode):
            diags.add("L010", "`not` of `not`: the two cancel out", node.pos, severity="warning",
                      help="use the inner criterion directly")
    missing = [s for s in ("not_flagged", "indeterminate") if getattr(rule.texts, s) is None]
    if rule.applies_when is not None and rule.texts.not_applicable is None:
        missing.append("not_applicable")
    if missing:
        diags.add("L004", f"rule {rule.id} has no texts.{', texts.'.join(missing)}: a generic text is shown",
                  rule.texts.pos, severity="info", help="write what the clinician should read for each status")


def lint_sources(rs: rm.RuleSet, diags: Diagnostics) -> None:
    items: list[tuple[str, Any]] = [(f"rule {r.id}", r) for r in rs.rules]
    items += [(f"value set {v.id}", v) for v in rs.valuesets.values()]
    items += [(f"table {t.id}", t) for t in rs.tables.values()]
    items.append(("profiles", rs.profiles))
    for what, obj in items:
        if any(not s.strip() for s in obj.sources):
            diags.add("L005", f"{what} has a blank source", obj.pos, severity="warning",
                      help="every source names a document, section or URL")


# ----------------------------------------------------------------------------- usage of value sets and tables

def _flat(values: Iterable[Any]) -> list[Any]:
    out: list[Any] = []
    for v in values:
        out.extend(v if isinstance(v, (list, tuple)) else [v])
    return out


def param_values(ref: rm.ParamRef, rule: rm.Rule, rs: rm.RuleSet) -> list[Any]:
    """Every value a parameter can take, over all profiles or all rows (lookups applied)."""
    if ref.param.startswith("row."):
        table = rs.tables.get(rule.for_each.table) if rule.for_each is not None else None
        vals = _flat(r.get(ref.param[4:]) for r in (table.rows if table else ()))
    else:
        vals = _flat(p.get(ref.param) for p in rs.profiles.profiles.values())
    lk = ref.lookup
    if lk is not None:
        table = rs.tables.get(lk.table)
        vals = _flat(r.get(lk.column) for r in (table.rows if table else ()) if r.get(lk.match) in vals)
    return [v for v in vals if v is not None]


def used_names(rs: rm.RuleSet) -> tuple[set[str], set[str]]:
    """(value set ids, table ids) that rules use, directly, through parameters or lookups."""
    vsets: set[str] = set()
    tables: set[str] = set(IMPLICIT_TABLES)
    for rule in rs.rules:
        for t in (rule.for_each, rule.target, rule.suggest):
            name = getattr(t, "table", None)
            if isinstance(name, str):
                tables.add(name)
        for m in walk_models(rule):
            if isinstance(m, rm.ValueSetRef):
                vsets.add(m.valueset)
            elif isinstance(m, rm.ValueSetsRef):
                ids = m.valuesets
                vsets.update(str(v) for v in (param_values(ids, rule, rs) if isinstance(ids, rm.ParamRef) else ids))
            elif isinstance(m, rm.ParamRef) and m.lookup is not None:
                tables.add(m.lookup.table)
    return vsets, tables


def lint_usage(rs: rm.RuleSet, diags: Diagnostics) -> None:
    vsets, tables = used_names(rs)
    for vid, vs in sorted(rs.valuesets.items()):
        if vid not in vsets:
            diags.add("L007", f"value set '{vid}' is never used by a rule", vs.pos, severity="warning",
                      help="refer to it with {valueset: ID}, or delete the file")
    for tid, tb in sorted(rs.tables.items()):
        if tid not in tables:
            diags.add("L008", f"table '{tid}' is never used by a rule", tb.pos, severity="warning",
                      help="tables are used by for_each, target, suggest and lookup")


# ----------------------------------------------------------------------------- provenance tags

def lint_tags(rs: rm.RuleSet, diags: Diagnostics) -> None:
    def note(what: str, tag: str, pos: Pos) -> None:
        diags.add("L012", f"{what} is tagged {tag}", pos, severity="info",
                  help="DA: a design assumption; VERIFY: to be checked against its source before clinical use")

    for r in rs.rules:
        if r.tag in ASSUMPTION_TAGS:
            note(f"rule {r.id}", r.tag, r.pos)
    for vs in rs.valuesets.values():
        if vs.tag in ASSUMPTION_TAGS:
            note(f"value set {vs.id}", vs.tag, vs.pos)
        for code, tag in sorted((vs.tags or {}).items()):
            if tag in ASSUMPTION_TAGS:
                note(f"code {code} of value set {vs.id}", tag, _pos_in(rs, vs.pos.file, ("tags", code), vs.pos))
    for tb in rs.tables.values():
        if tb.tag in ASSUMPTION_TAGS:
            note(f"table {tb.id}", tb.tag, tb.pos)
        for i, row in enumerate(tb.rows):
            if row.get("tag") in ASSUMPTION_TAGS and row.get("tag") != tb.tag:
                note(f"row {row['key']} of table {tb.id}", row["tag"], _pos_in(rs, tb.pos.file, ("rows", i), tb.pos))
    prof = rs.profiles
    for name, params in sorted(prof.profiles.items()):
        here = _pos_in(rs, prof.pos.file, ("profiles", name), prof.pos)
        ptag = params.get("tag")
        if isinstance(ptag, str) and ptag in ASSUMPTION_TAGS and ptag != prof.tag:
            note(f"profile {name}", ptag, here)
        tags = params.get("tags")
        if isinstance(tags, dict):
            for pname, ptag in sorted(tags.items()):
                if ptag in ASSUMPTION_TAGS:
                    note(f"parameter {pname} of profile {name}", str(ptag), _pos_in(rs, prof.pos.file, ("profiles", name, "tags", pname), here))


@lru_cache(maxsize=64)
def _parsed(file: str, text: str) -> Any:
    return read_yaml(text, file, Diagnostics())


def _pos_in(rs: rm.RuleSet, file: str, path: tuple[Any, ...], default: Pos) -> Pos:
    """The position of a path inside a rule-directory file (models keep positions only down to mappings)."""
    text = rs.sources.get(file)
    if text is None:
        return default
    line, col = locate(_parsed(file, text), path)
    return Pos(file, line, col)


# ----------------------------------------------------------------------------- compiled-plan analyses

@dataclass
class FieldRange:
    """What a conjunction of conditions allows for one field (encoded values: ints, strings, bools)."""

    allowed: Optional[set[Any]] = None
    excluded: set[Any] = field(default_factory=set)
    lo: Optional[int] = None
    hi: Optional[int] = None
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


def _conjuncts(t: Optional[TNode]) -> list[TField]:
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


def _contradiction(tfields: Sequence[TField], crs: CompiledRuleSet) -> Optional[str]:
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


def _plans(crs: CompiledRuleSet) -> Iterator[tuple[rm.Rule, Optional[Mapping[str, Any]], PNode]]:
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
                    found.setdefault((id(p.node),), (p.node.pos, f"the conditions on this {p.kind} fact can never all hold: {why}; "
                                                                 "the criterion can never be met"))
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
                                a.node.pos, f"this criterion and the one on line {line_b} test the same {a.kind} fact "
                                            f"and can never both be met: {why}"))
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
        rows = _rows(rule, rs) or []
        vals = [r.get(name[4:]) for r in rows]
    else:
        vals = [p.get(name) for p in rs.profiles.profiles.values()]
    return sorted({str(v) for v in vals})


def lint_dead_branches(rs: rm.RuleSet, compiled: Mapping[str, CompiledRuleSet], diags: Diagnostics) -> None:
    relevant: set[int] = set()
    for crs in compiled.values():
        relevant |= relevant_nodes(crs)
    for rule in rs.rules:
        if rule.for_each is not None and not _rows(rule, rs) and rule.for_each.table in rs.tables:
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


# ----------------------------------------------------------------------------- the check

def lint_ruleset(rs: rm.RuleSet, compiled: Mapping[str, CompiledRuleSet]) -> Diagnostics:
    diags = Diagnostics()
    for rule in rs.rules:
        lint_texts_and_ids(rule, diags)
        lint_placeholders(rule, rs, diags)
        lint_absent_fills(rule, diags)
    lint_sources(rs, diags)
    lint_usage(rs, diags)
    lint_tags(rs, diags)
    lint_plans(rs, compiled, diags)
    return diags


def check_ruleset(path: str | Path, profiles: Optional[Sequence[str]] = None, *, with_tests: bool = True) -> CheckReport:
    """Read, compile for every profile (or those named) and lint one rule directory.

    Unknown profile names are reported as C005 errors. Diagnostics are sorted, with snippets.
    """
    root = str(path)
    rs, read_diags = rm.read_ruleset(path)
    if rs is None:
        return CheckReport(root, list(read_diags))
    diags = Diagnostics(list(read_diags))
    names = tuple(profiles) if profiles else tuple(sorted(rs.profiles.profiles))
    compiled: dict[str, CompiledRuleSet] = {}
    for name in names:
        crs, cdiags = compile_ruleset(rs, name)
        diags.items.extend(cdiags)
        if crs is not None:
            compiled[name] = crs
    diags.items.extend(lint_ruleset(rs, compiled).items)
    sources = dict(rs.sources)
    if with_tests:
        from mdtflag.authoring.cases import check_rule_tests

        tdiags, tsources = check_rule_tests(rs)
        diags.items.extend(tdiags)
        sources.update(tsources)
    # sorted() also drops duplicates: compile diagnostics that every profile repeats are shown once
    return CheckReport(root, diags.sorted(sources), rs, compiled, names)


def prefixed(d: Diagnostic, root: str) -> Diagnostic:
    """The diagnostic with its file shown relative to the working directory (``rules/criteria/x.yaml``)."""
    if not d.pos.file or Path(d.pos.file).is_absolute() or d.pos.file == root:
        return d
    file = (Path(root) / d.pos.file).as_posix()
    return Diagnostic(d.code, d.severity, d.message, Pos(file, d.pos.line, d.pos.col), d.snippet, d.help)


# ----------------------------------------------------------------------------- rendering

def summary(reports: Sequence[CheckReport]) -> dict[str, Any]:
    return {
        "errors": sum(r.count("error") for r in reports),
        "warnings": sum(r.count("warning") for r in reports),
        "infos": sum(r.count("info") for r in reports),
        "rule_sets": [
            {"path": r.root, "valid": r.ruleset is not None and r.count("error") == 0,
             "rules": len(r.ruleset.rules) if r.ruleset else 0, "profiles": list(r.profiles),
             "profiles_with_errors": [p for p in r.profiles if p not in r.compiled]}
            for r in reports
        ],
    }


def visible(reports: Sequence[CheckReport], min_severity: str) -> list[Diagnostic]:
    limit = SEVERITY_ORDER[min_severity]
    return [prefixed(d, r.root) for r in reports for d in r.diagnostics if SEVERITY_ORDER[d.severity] <= limit]


def render_text(reports: Sequence[CheckReport], min_severity: str = "info") -> str:
    out = [d.format() for d in visible(reports, min_severity)]
    s = summary(reports)
    for r in reports:
        failed = [p for p in r.profiles if p not in r.compiled]
        profiles = ", ".join(r.profiles) + (f" ({', '.join(failed)} with errors)" if failed else "")
        rules = len(r.ruleset.rules) if r.ruleset else 0
        out.append(f"{r.root}: {_n(rules, 'rule')}, profiles {profiles or '-'}")
    out.append(f"{_n(s['errors'], 'error')}, {_n(s['warnings'], 'warning')}, {_n(s['infos'], 'note')}")
    return "\n".join(out) + "\n"


def render_json(reports: Sequence[CheckReport], min_severity: str = "info") -> dict[str, Any]:
    return {"diagnostics": [d.to_dict() for d in visible(reports, min_severity)], "summary": summary(reports)}


def _n(n: int, word: str, many: Optional[str] = None) -> str:
    return f"{n} {word if n == 1 else (many or word + 's')}"
