"""The lint pass of ``mdtflag rules check`` over the rule model (``L`` codes; severities in the registry).

Placeholders in texts, ids and texts of criteria, sources, value sets / tables / fragments that no
rule uses, provenance tags; the analyses of compiled plans are in :mod:`mdtflag.authoring.lint_plans`.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import mdtflag.ruleset.model as rm
from mdtflag.fhir.facts import FACT_MODELS
from mdtflag.ruleset.diagnostics import Diagnostics, Pos
from mdtflag.ruleset.walk import rule_nodes, walk_criteria, walk_models
from mdtflag.ruleset.yamlpos import locate, read_yaml

PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_.]*)\}")
#: Names every text may use (filled by :mod:`mdtflag.evaluation.decide`).
BASE_NAMES = ("region", "as_of")
#: Tables the engine reads by name, not through a rule.
IMPLICIT_TABLES = ("regions",)
ASSUMPTION_TAGS = ("DA", "VERIFY")


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
    row_keys: Sequence[Mapping[str, Any]] | None  # rows of the for_each table; None: no row
    kinds: frozenset[str]
    filled: bool = True  # False: the text is shown as written (no placeholders are filled)


def placeholder_problems(name: str, scope: TextScope) -> tuple[str, str, str] | None:
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
        return ("L002", (f"placeholder `{{{name}}}` is never filled here: it is a field of {', '.join(others) or 'fact'} facts, "
                         f"but this text is about {reads}"),
                "fact fields are filled from the first fact behind the outcome")
    hint = ", ".join(sorted(own)) if own else "none (no facts stand behind this text)"
    return ("L001", f"unknown placeholder `{{{name}}}`", f"fields here: {hint}; also {{p.NAME}}, {{row.COLUMN}}, {{region}}, {{as_of}}")


def lint_text(text: rm.Text | None, label: str, scope: TextScope, diags: Diagnostics) -> None:
    if text is None:
        return
    for lang in ("sv", "en"):
        for name in dict.fromkeys(PLACEHOLDER.findall(getattr(text, lang))):
            got = placeholder_problems(name, scope)
            if got is not None:
                code, msg, help_ = got
                diags.add(code, f"{msg} (in {label}.{lang})", text.pos, severity="warning", help=help_)


def for_each_rows(rule: rm.Rule, rs: rm.RuleSet) -> list[Mapping[str, Any]] | None:
    if rule.for_each is None:
        return None
    table = rs.tables.get(rule.for_each.table)
    return [r for r in table.rows if r.get("state") != "closed"] if table is not None else []


def lint_placeholders(rule: rm.Rule, rs: rm.RuleSet, diags: Diagnostics) -> None:
    params = {name: frozenset(p) for name, p in rs.profiles.profiles.items()}
    rows = for_each_rows(rule, rs)
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


def lint_fragments(rs: rm.RuleSet, diags: Diagnostics) -> None:
    for name, frag in sorted(rs.fragments.items()):
        if name not in rs.fragment_uses:
            diags.add("L015", f"fragment '{name}' is never used by a rule", frag.pos,
                      help=f"use it in a criteria tree with {{use: {name}}}, or delete the file")
