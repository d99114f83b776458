"""``mdtflag rules diff``: what a new rule-set version changes for a cohort of patients.

Every patient is evaluated with both rule directories. A patient is reported when a decision
(level, deciding rules, target region), a rule status or a row status (cohort) changes; each change
lists the criteria whose outcomes differ (old → new). Rules that exist in only one version are
listed once, as added or removed, and not per patient.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mdtflag.authoring.casefile import case_bundle, load_test_file
from mdtflag.errors import InputError, one_line
from mdtflag.evaluation.nodes import NodeResult, RuleEval
from mdtflag.fhir.load import iter_inputs, load_bundle
from mdtflag.ruleset.diagnostics import Diagnostics, RuleSetError

ABSENT = "—"


@dataclass
class PatientDiff:
    patient: str
    source: str
    decisions: list[dict[str, Any]] = field(default_factory=list)
    rules: list[dict[str, Any]] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.decisions or self.rules)


def outcomes(r: NodeResult | None, into: dict[str, str] | None = None) -> dict[str, str]:
    """Criterion id → outcome for a result tree."""
    into = {} if into is None else into
    if r is None:
        return into
    cid = getattr(r.node, "id", None)
    if cid and cid not in into:
        into[cid] = r.outcome
    for ch in r.children:
        outcomes(ch, into)
    return into


def rule_outcomes(ev: RuleEval | None) -> dict[str, str]:
    if ev is None:
        return {}
    out = outcomes(ev.applies)
    return outcomes(ev.best.result if ev.best else None, out)


def row_outcomes(ev: RuleEval | None) -> dict[str, tuple[str, dict[str, str]]]:
    """Row key → (status, criterion outcomes) for a for_each rule; closed rows are not_applicable."""
    if ev is None or ev.rule.for_each is None:
        return {}
    out: dict[str, tuple[str, dict[str, str]]] = {
        str(i.row.get("key")): (i.status, outcomes(i.result)) for i in ev.instances if i.row is not None
    }
    for row in ev.compiled.skipped_rows:
        out[str(row.get("key"))] = ("not_applicable", {})
    if ev.status == "not_applicable":  # the applicability condition decided every row
        out = {k: ("not_applicable", {}) for k in out}
    return out


def changed_criteria(old: Mapping[str, str], new: Mapping[str, str]) -> list[dict[str, str]]:
    return [
        {"criterion": c, "old": old.get(c, ABSENT), "new": new.get(c, ABSENT)}
        for c in sorted(set(old) | set(new))
        if old.get(c) != new.get(c)
    ]


def decision_view(result: Any) -> dict[str, tuple[str, tuple[str, ...], str | None]]:
    return {
        g: (d.level, tuple(d.rules), d.target.healthcare_region if d.target is not None else None)
        for g, d in result.decisions.items()
    }


def diff_patient(
    old: tuple[Any, Sequence[RuleEval]], new: tuple[Any, Sequence[RuleEval]], common: set[str]
) -> PatientDiff:
    (r_old, ev_old), (r_new, ev_new) = old, new
    pd = PatientDiff(r_new.patient, "")
    d_old, d_new = decision_view(r_old), decision_view(r_new)
    for g in sorted(set(d_old) | set(d_new)):
        before, after = d_old.get(g), d_new.get(g)
        if before != after:
            pd.decisions.append({"group": g, "old": _decision(before), "new": _decision(after)})
    by_old = {e.rule.id: e for e in ev_old}
    by_new = {e.rule.id: e for e in ev_new}
    for rid in sorted(common):
        a, b = by_old[rid], by_new[rid]
        entry: dict[str, Any] = {
            "rule": rid,
            "old": a.status,
            "new": b.status,
            "criteria": [],
            "rows": [],
            "best_row": None,
        }
        if a.status != b.status:
            if a.rule.for_each is None and b.rule.for_each is None:
                entry["criteria"] = changed_criteria(rule_outcomes(a), rule_outcomes(b))
            else:  # rows are compared row by row below; here only applicability and the best row
                entry["criteria"] = changed_criteria(outcomes(a.applies), outcomes(b.applies))
                entry["best_row"] = {"old": _best_key(a), "new": _best_key(b)}
        rows_a, rows_b = row_outcomes(a), row_outcomes(b)
        for key in sorted(set(rows_a) | set(rows_b)):
            sa, ca = rows_a.get(key, (ABSENT, {}))
            sb, cb = rows_b.get(key, (ABSENT, {}))
            if sa != sb:
                entry["rows"].append({"row": key, "old": sa, "new": sb, "criteria": changed_criteria(ca, cb)})
        if a.status != b.status or entry["rows"]:
            pd.rules.append(entry)
    return pd


def _best_key(ev: RuleEval) -> str | None:
    return str(ev.best.row.get("key")) if ev.best is not None and ev.best.row is not None else None


def _decision(v: tuple[str, tuple[str, ...], str | None] | None) -> dict[str, Any] | None:
    if v is None:
        return None
    return {"level": v[0], "rules": list(v[1]), "target_region": v[2]}


def patients(
    inputs: Iterable[str], as_of: dt.date | None, profile: str | None
) -> Iterator[tuple[Any, str, dt.date, str | None]]:
    """(loaded bundle or InputError, source, as_of, profile) for every patient of the inputs.

    Inputs are bundle files, folders, Bulk Data NDJSON (:func:`mdtflag.load.iter_inputs`) or rule test
    files (``.yaml``: every case, with its own as_of and profile unless given).
    """
    for inp in inputs:
        if inp.endswith((".yaml", ".yml")):
            diags = Diagnostics()
            for tc in load_test_file(Path(inp), inp, diags, {}):
                source = f"{tc.file}:{tc.line} {tc.name}"
                day = as_of or tc.as_of or dt.date.today()
                try:
                    yield load_bundle(case_bundle(tc)), source, day, profile or tc.profile
                except InputError as e:
                    yield e, source, day, profile
            for d in diags.errors:
                yield InputError("not-found", str(d.pos), d.message), str(d.pos), as_of or dt.date.today(), profile
            continue
        for item in iter_inputs(inp):
            yield item, getattr(item, "source", inp), as_of or dt.date.today(), profile


def diff_cohort(
    old_ev: Any, new_ev: Any, inputs: Iterable[str], as_of: dt.date | None, profile: str | None = None
) -> dict[str, Any]:
    """Evaluate every patient of ``inputs`` with both evaluators and collect what changes."""
    old_ids = {r.id for r in old_ev.ruleset.rules}
    new_ids = {r.id for r in new_ev.ruleset.rules}
    common = old_ids & new_ids
    changed: list[PatientDiff] = []
    errors: list[dict[str, str]] = []
    total = 0
    for item, source, day, prof in patients(inputs, as_of, profile):
        total += 1
        if isinstance(item, InputError):
            errors.append({"source": source, "error": f"{item.code}: {item.message}"})
            continue
        try:
            r_old, _, e_old = old_ev.run(item, day, prof)
            r_new, _, e_new = new_ev.run(item, day, prof)
        except InputError as e:
            errors.append({"source": source, "error": f"{e.code}: {e.message}"})
            continue
        except RuleSetError as e:  # e.g. a test case's profile exists in one version only
            errors.append({"source": source, "error": str(e)})
            continue
        pd = diff_patient((r_old, e_old), (r_new, e_new), common)
        pd.source = source
        if pd.changed:
            changed.append(pd)
    by_rule: dict[str, int] = {}
    for p in changed:
        for r in p.rules:
            by_rule[r["rule"]] = by_rule.get(r["rule"], 0) + 1
    return {
        "as_of": as_of.isoformat() if as_of else None,
        "old": {"name": old_ev.ruleset.name, "version": old_ev.ruleset.version, "digest": old_ev.ruleset.digest},
        "new": {"name": new_ev.ruleset.name, "version": new_ev.ruleset.version, "digest": new_ev.ruleset.digest},
        "rules_added": sorted(new_ids - old_ids),
        "rules_removed": sorted(old_ids - new_ids),
        "patients": [
            {"patient": p.patient, "source": p.source, "decisions": p.decisions, "rules": p.rules} for p in changed
        ],
        "errors": errors,
        "summary": {
            "patients": total,
            "changed": len(changed),
            "unchanged": total - len(changed) - len(errors),
            "errors": len(errors),
            "changes_by_rule": dict(sorted(by_rule.items())),
        },
    }


def render_text(data: Mapping[str, Any]) -> str:
    o, n = data["old"], data["new"]
    day = f", as of {data['as_of']}" if data["as_of"] else ""
    out = [
        f"rules diff {o['name']} {o['version']} ({o['digest'][:15]}…) → {n['name']} {n['version']} ({n['digest'][:15]}…){day}"
    ]
    if data["rules_added"]:
        out.append(f"rules added: {', '.join(data['rules_added'])}")
    if data["rules_removed"]:
        out.append(f"rules removed: {', '.join(data['rules_removed'])}")
    for p in data["patients"]:
        out.append("")
        out.append(f"{p['patient']} ({p['source']})")
        for d in p["decisions"]:
            out.append(f"  decision {d['group']}: {_dshow(d['old'])} → {_dshow(d['new'])}")
        for r in p["rules"]:
            if r["old"] != r["new"]:
                best = r.get("best_row")
                moved = (
                    f" (best row {best['old'] or ABSENT} → {best['new'] or ABSENT})"
                    if best and best["old"] != best["new"]
                    else ""
                )
                out.append(f"  {r['rule']}: {r['old']} → {r['new']}{moved}")
                out.extend(_crit(r["criteria"], 4))
            else:
                out.append(f"  {r['rule']}: {r['old']} (unchanged status)")
            for row in r["rows"]:
                out.append(f"    row {row['row']}: {row['old']} → {row['new']}")
                out.extend(_crit(row["criteria"], 6))
    for e in data["errors"]:
        out.append(f"error: {e['source']}: {e['error']}")
    s = data["summary"]
    out.append("")
    by = ", ".join(f"{k} {v}" for k, v in s["changes_by_rule"].items())
    out.append(
        f"{s['patients']} patients: {s['changed']} changed, {s['unchanged']} unchanged, {s['errors']} errors"
        + (f" (changes by rule: {by})" if by else "")
    )
    return "\n".join(map(one_line, out)) + "\n"  # each item is one line: data cannot start another


def _dshow(d: Mapping[str, Any] | None) -> str:
    if d is None:
        return ABSENT
    by = f" by {', '.join(d['rules'])}" if d["rules"] else ""
    region = f", region {d['target_region']}" if d["target_region"] else ""
    return f"{d['level']}{by}{region}"


def _crit(items: Sequence[Mapping[str, str]], indent: int) -> list[str]:
    return [f"{' ' * indent}{c['criterion']}: {c['old']} → {c['new']}" for c in items]
