"""``mdtflag explain``: why a rule fired, did not fire, or could not be decided, for one patient.

For each rule: the criteria tree with ✓ (met) / ✗ (not met) / ? (unknown), node ids, each test as
written, and the values and resources behind each leaf. For a rule that did not fire, the smallest
set of criteria that blocked it: below an ``all`` the children that are not met (recursively); an
``any``, a ``not`` or a leaf is reported as a whole, since every part of it is needed to fail. For
unknown ones, the data that would decide them. For ``for_each`` rules one row is shown in full — the
rule's chosen row when it is flagged, else the row closest to flagging (fewest blockers) — and the other
rows with their status and what blocked them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from mdtflag.compile.plan import PBool, PConst, PFact, PNode, PRuleRef, TField, TNode
from mdtflag.errors import one_line
from mdtflag.evaluation.decide import criterion_texts
from mdtflag.evaluation.kleene import MET, NOT_MET, UNKNOWN
from mdtflag.evaluation.nodes import NodeResult, RuleEval
from mdtflag.output.render import STATUS_LABEL

MARK = {MET: "✓", NOT_MET: "✗", UNKNOWN: "?"}
LABELS = {
    "en": {
        "applies": "applies when",
        "row": "row",
        "best": "chosen of",
        "closest": "closest to flagging of",
        "rows": "rows",
        "skipped": "skipped (closed)",
        "blocked": "blocked by",
        "decide": "would be decided by",
        "others": "other rows",
        "all": "all of",
        "any": "any of",
        "not": "not",
        "no_rows": "no open rows",
        "absent": "absent",
        "stale": "too old",
        "field": "a field is missing",
        "criteria": "criteria",
    },
    "sv": {
        "applies": "gäller när",
        "row": "rad",
        "best": "vald av",
        "closest": "närmast flaggning av",
        "rows": "rader",
        "skipped": "hoppas över (stängd)",
        "blocked": "blockeras av",
        "decide": "avgörs av",
        "others": "övriga rader",
        "all": "alla av",
        "any": "något av",
        "not": "inte",
        "no_rows": "inga öppna rader",
        "absent": "saknas",
        "stale": "för gammal",
        "field": "en uppgift saknas",
        "criteria": "kriterier",
    },
}


# ----------------------------------------------------------------------------- describing plan nodes


def test_shown(t: TNode, nested: bool = False) -> str:
    if isinstance(t, TField):
        return t.shown
    if t.op == "not":
        return f"not ({test_shown(t.items[0])})"
    text = f" {'and' if t.op == 'all' else 'or'} ".join(test_shown(x, True) for x in t.items)
    return f"({text})" if nested else text


def describe(p: PNode, lang: str = "en") -> str:
    """The test as written: ``lab where analyte = neutrophils, latest: value ≥ 1.5``."""
    if isinstance(p, PFact):
        leaf = p.node
        parts = [p.kind]
        if p.where:
            parts[0] += " where " + ", ".join(w.shown for w in p.where)
        if leaf.latest:
            parts.append("latest")
        if p.window_days is not None:
            parts.append(f"within {p.window_days} days")
        text = ", ".join(parts)
        if p.test is not None:
            text += ": " + test_shown(p.test)
        if leaf.missing != UNKNOWN:
            text += f" [if absent: {leaf.missing}]"
        return text
    if isinstance(p, PBool):
        return LABELS[lang][p.op]
    if isinstance(p, PConst):
        want = p.node.equals if isinstance(p.node.equals, list) else [p.node.equals]
        return f"parameter {p.shown} (wanted {', '.join(str(w) for w in want)})"
    ref = p.node
    if ref.criterion is None:
        return f"rule {ref.rule} is {' or '.join(ref.status or ())}"
    return f"rule {ref.rule} criterion {ref.criterion} is {' or '.join(ref.outcome or ())}"


# ----------------------------------------------------------------------------- blockers


def blockers(r: NodeResult, outcome: str, ancestor: str | None = None) -> list[tuple[NodeResult, str | None]]:
    """The smallest set of nodes that give ``r`` its outcome (not met or unknown), with the nearest id above."""
    if r.outcome != outcome:
        return []
    own = getattr(r.node, "id", None) or ancestor
    if isinstance(r.plan, PBool) and r.plan.op == "all":
        return [b for ch in r.children if ch.outcome == outcome for b in blockers(ch, outcome, own)]
    return [(r, ancestor)]


def label(r: NodeResult, ancestor: str | None, lang: str) -> str:
    cid = getattr(r.node, "id", None)
    if cid:
        return str(cid)
    inside = f" (in {ancestor})" if ancestor else ""
    return f"{describe(r.plan, lang)}{inside}"


# ----------------------------------------------------------------------------- the explanation as data


class Explainer:
    def __init__(self, crs: Any, fs: Any, as_of: dt.date, lang: str):
        self.texts = criterion_texts(crs, fs, as_of)
        self.lang = lang

    def missing(self, r: NodeResult) -> list[str]:
        return list(dict.fromkeys(getattr(t, self.lang) for t in self.texts(r, None).missing))

    def node(self, r: NodeResult, row: Mapping[str, Any] | None) -> dict[str, Any]:
        cid = getattr(r.node, "id", None)
        p = r.plan
        shown = self.texts(r, row)
        evidence = []
        if isinstance(p, PFact):
            for e in shown.evidence:
                evidence.append({"resource": e.resource, "element": e.element, "value": e.value})
        authored = r.node.text or r.node.text_not_met or r.node.text_unknown
        text = getattr(shown.text, self.lang) if shown.text is not None and authored else None
        missing = self.missing(r) if r.outcome == UNKNOWN and not isinstance(p, PBool) else []
        detail = r.detail
        if isinstance(p, PRuleRef):
            detail = f"{p.node.rule}{'/' + p.node.criterion if p.node.criterion else ''}: {r.detail}"
        return {
            "id": cid,
            "op": p.op if isinstance(p, PBool) else {PFact: "fact", PConst: "param", PRuleRef: "rule"}[type(p)],
            "test": describe(p, self.lang),
            "outcome": r.outcome,
            "detail": detail if not isinstance(p, PConst) else "",
            "text": text,
            "evidence": evidence,
            "missing": [m for m in missing if m != text],
            "children": [self.node(ch, row) for ch in r.children],
        }

    def blocked(self, r: NodeResult | None, outcome: str) -> list[dict[str, Any]]:
        if r is None:
            return []
        return [
            {
                "criterion": label(n, anc, self.lang),
                "outcome": n.outcome,
                "missing": self.missing(n) if outcome == UNKNOWN else [],
            }
            for n, anc in blockers(r, outcome)
        ]

    def shown_row(self, ev: RuleEval) -> Any:
        """The rule's chosen row when it is flagged; otherwise the row closest to flagging (fewest blockers)."""
        if ev.best is None or ev.status == "flagged" or ev.rule.for_each is None:
            return ev.best
        rank = {"flagged": 0, "indeterminate": 1, "not_flagged": 2}
        return min(
            ev.instances,
            key=lambda i: (rank[i.status], len(self.blocked(i.result, NOT_MET)), len(self.blocked(i.result, UNKNOWN))),
        )

    def rule(self, ev: RuleEval) -> dict[str, Any]:
        rule = ev.rule
        shown = self.shown_row(ev)
        row = shown.row if shown is not None else None
        out: dict[str, Any] = {
            "rule": rule.id,
            "version": rule.version,
            "title": getattr(rule.title, self.lang),
            "status": ev.status,
            "row": row.get("key") if row is not None else None,
            "row_status": shown.status if shown is not None else None,
            "applies": self.node(ev.applies, row) if ev.applies is not None else None,
            "criteria": self.node(shown.result, row) if shown is not None else None,
            "blocked_by": [],
            "would_decide": [],
            "other_rows": [],
            "skipped_rows": [],
        }
        if ev.status == "not_applicable":
            out["blocked_by"] = self.blocked(ev.applies, NOT_MET)
        elif ev.status == "not_flagged" and shown is not None:
            out["blocked_by"] = self.blocked(shown.result, NOT_MET)
        elif ev.status == "indeterminate":
            out["would_decide"] = self.blocked(ev.applies, UNKNOWN) + (
                self.blocked(shown.result, UNKNOWN) if shown else []
            )
        if rule.for_each is not None:
            for inst in ev.instances:
                if inst is shown:
                    continue
                why = self.blocked(inst.result, NOT_MET if inst.status == "not_flagged" else UNKNOWN)
                out["other_rows"].append(
                    {
                        "key": inst.row.get("key") if inst.row else None,
                        "status": inst.status,
                        "blocked_by": [b["criterion"] for b in why] if inst.status != "flagged" else [],
                    }
                )
            out["skipped_rows"] = [r.get("key") for r in ev.compiled.skipped_rows]
        return out


def explain(
    evaluator: Any, bundle: Any, as_of: dt.date, profile: str | None, rule_ids: Sequence[str], lang: str = "en"
) -> dict[str, Any]:
    """The explanation of the named rules (all when none are named) for one loaded bundle."""
    result, fs, evals = evaluator.run(bundle, as_of, profile)
    crs = evaluator.compiled(profile)
    ex = Explainer(crs, fs, as_of, lang)
    chosen = [ev for ev in evals if not rule_ids or ev.rule.id in rule_ids]
    chosen.sort(key=lambda ev: ev.rule.id)
    return {
        "patient": result.patient,
        "as_of": as_of.isoformat(),
        "profile": crs.profile,
        "rules": [ex.rule(ev) for ev in chosen],
    }


# ----------------------------------------------------------------------------- text


def render_text(data: Mapping[str, Any], lang: str = "en") -> str:
    lab = LABELS[lang]
    out = [f"{data['patient']} — as of {data['as_of']} — profile {data['profile']}", ""]
    for r in data["rules"]:
        out.append(f"{r['rule']} v{r['version']} — {r['title']}: {STATUS_LABEL[lang][r['status']]}")
        if r["applies"] is not None:
            out.append(f"  {lab['applies']}:")
            out.extend(_tree(r["applies"], 2, lang))
        if r["criteria"] is not None:
            if r["row"] is not None:
                n = len(r["other_rows"]) + 1
                skipped = f"; {len(r['skipped_rows'])} {lab['skipped']}" if r["skipped_rows"] else ""
                which = lab["best"] if r["status"] == "flagged" else lab["closest"]
                out.append(f"  {lab['row']} {r['row']} ({which} {n} {lab['rows']}{skipped}):")
            else:
                out.append(f"  {lab['criteria']}:")
            out.extend(_tree(r["criteria"], 2, lang))
        elif r["status"] != "not_applicable":
            out.append(f"  {lab['no_rows']}")
        if r["blocked_by"]:
            out.append(f"  {lab['blocked']}:")
            out.extend(f"    {MARK[b['outcome']]} {b['criterion']}" for b in r["blocked_by"])
        if r["would_decide"]:
            out.append(f"  {lab['decide']}:")
            for b in r["would_decide"]:
                out.append(f"    ? {b['criterion']}" + (f": {'; '.join(b['missing'])}" if b["missing"] else ""))
        if r["other_rows"] or r["skipped_rows"]:
            out.append(f"  {lab['others']}:")
            for o in r["other_rows"]:
                why = f" — {lab['blocked']} {', '.join(o['blocked_by'])}" if o["blocked_by"] else ""
                out.append(f"    {o['key']}: {STATUS_LABEL[lang][o['status']]}{why}")
            out.extend(f"    {k}: {lab['skipped']}" for k in r["skipped_rows"])
        out.append("")
    return "\n".join(map(one_line, out))  # each item is one line: data cannot start another


def _tree(n: Mapping[str, Any], depth: int, lang: str) -> list[str]:
    pad = "  " * depth
    head = f"{pad}{MARK[n['outcome']]} "
    if n["id"]:
        head += f"{n['id']}  "
    head += n["test"]
    if n["detail"]:
        head += f"  — {LABELS[lang].get(n['detail'], n['detail'])}"
    out = [head]
    if n["text"]:
        out.append(f"{pad}    “{n['text']}”")
    for e in n["evidence"][:5]:
        out.append(f"{pad}    ← {e['resource']} {e['element']} = {e['value']}")
    if len(n["evidence"]) > 5:
        out.append(f"{pad}    ← … {len(n['evidence']) - 5} more")
    out.extend(f"{pad}    ? {m}" for m in n["missing"])
    for ch in n["children"]:
        out.extend(_tree(ch, depth + 1, lang))
    return out
