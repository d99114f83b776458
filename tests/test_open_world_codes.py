"""Open world for codes: replacing a code the readers use (any coding of a Condition, a medication, a coded
Observation value or a gene, in every shipped example bundle) by a code no terminology holds never makes a
fact more certain and never goes without a note naming the resource. At rule level every rule stays as it was
or becomes indeterminate, and no unknown criterion is decided; the two exceptions are by design and checked as
such: a decision group's default level shown with the undecided higher level pending (MDK-LOC-1), and a rule
that asks whether another rule is *possible* (its reference lists ``indeterminate``) when that rule became
indeterminate."""

from __future__ import annotations

import copy
from datetime import date
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mdtflag.api import Evaluator
from mdtflag.fhir.load import load_bundle
from mdtflag.output.render import to_json

EXAMPLES = sorted((Path(__file__).resolve().parent.parent / "fhir_examples").glob("*.json"))
AS_OF = "2026-11-01"
UNKNOWN_CODE = "zz-not-in-any-terminology"
_MED = ("MedicationStatement", "MedicationRequest", "MedicationAdministration", "Medication")


def _codings(resource: dict[str, Any]) -> list[dict[str, Any]]:
    """The codings whose code a fact depends on: Condition / FamilyMemberHistory codes, medication codes,
    Observation values and component values (genes, changes, significance, ...)."""
    rt = resource.get("resourceType")
    ccs: list[Any] = []
    if rt == "Condition":
        ccs.append(resource.get("code"))
    elif rt == "FamilyMemberHistory":
        ccs += [c.get("code") for c in resource.get("condition", []) if isinstance(c, dict)]
    elif rt in _MED:
        ccs += [resource.get("medicationCodeableConcept"), resource.get("code") if rt == "Medication" else None]
    elif rt == "Observation":
        ccs.append(resource.get("valueCodeableConcept"))
        ccs += [c.get("valueCodeableConcept") for c in resource.get("component", []) if isinstance(c, dict)]
    return [
        c for cc in ccs if isinstance(cc, dict) for c in cc.get("coding", []) if isinstance(c, dict) and "code" in c
    ]


def _targets(bundle: dict[str, Any]) -> list[tuple[int, int]]:
    out = []
    for i, entry in enumerate(bundle.get("entry", [])):
        out += [(i, j) for j in range(len(_codings(entry.get("resource", {}))))]
    return out


BUNDLES = [orjson.loads(p.read_bytes()) for p in EXAMPLES]
TARGETS = [(b, t) for b in range(len(BUNDLES)) for t in _targets(BUNDLES[b])]


@pytest.fixture(scope="module")
def evaluator() -> Evaluator:
    return Evaluator()


def _outcomes(ev: Evaluator, bundle: dict[str, Any]) -> tuple[dict[str, str], dict[tuple[str, str], str]]:
    doc = orjson.loads(to_json(ev.evaluate(bundle, as_of=AS_OF)))
    rules = {f["rule"]: f["status"] for f in doc["flags"] if f["kind"] != "data-quality"}
    crit = {(f["rule"], r["criterion"]): r["outcome"] for f in doc["flags"] for r in f["reasons"] if r.get("criterion")}
    return rules, crit


def _possible_refs() -> dict[str, set[str]]:
    """Rule -> the rules it references with ``indeterminate`` among the wanted statuses."""
    import yaml

    out: dict[str, set[str]] = {}

    def walk(node: Any, rule: str) -> None:
        if isinstance(node, dict):
            if "rule" in node and "indeterminate" in (node.get("status") or []):
                out.setdefault(rule, set()).add(node["rule"])
            for v in node.values():
                walk(v, rule)
        elif isinstance(node, list):
            for v in node:
                walk(v, rule)

    for path in (Path(__file__).resolve().parent.parent / "rules" / "criteria").rglob("*.yaml"):
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        walk(doc, doc["id"])
    return out


POSSIBLE = _possible_refs()


def _pending(ev: Evaluator, bundle: dict[str, Any]) -> set[str]:
    """Rules chosen by a decision that also lists a pending (undecided) higher level."""
    doc = orjson.loads(to_json(ev.evaluate(bundle, as_of=AS_OF)))
    return {r for d in doc["decisions"].values() if d.get("pending") for r in d["rules"]}


def test_there_are_codes_to_replace() -> None:
    assert len(TARGETS) > 100


def _replaced(b: int, i: int, j: int) -> tuple[dict[str, Any], dict[str, Any]]:
    changed = copy.deepcopy(BUNDLES[b])
    coding = _codings(changed["entry"][i]["resource"])[j]
    coding["code"] = UNKNOWN_CODE
    return changed, coding


def _facts(ev: Evaluator, bundle: dict[str, Any]) -> tuple[dict[tuple[str, str], list[dict[str, Any]]], set[str]]:
    fs = ev.facts(load_bundle(bundle), date.fromisoformat(AS_OF))
    out: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for f in fs.facts:
        d = f.model_dump(mode="json", exclude={"evidence"})
        out.setdefault((d["kind"], f.evidence[0].resource if f.evidence else ""), []).append(d)
    return out, {n.resource for n in fs.notes if n.resource}


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from(TARGETS))
def test_an_unknown_code_never_makes_a_fact_more_certain_and_never_goes_unnoted(
    evaluator: Evaluator, target: tuple[int, tuple[int, int]]
) -> None:
    """Reader level: after the replacement, every fact of the changed resource either stays as it was or
    is replaced by facts with no field known that was unknown before, and a note names the resource."""
    b, (i, j) = target
    before, _ = _facts(evaluator, BUNDLES[b])
    changed, coding = _replaced(b, i, j)
    after, noted = _facts(evaluator, changed)
    for key, facts in before.items():
        if after.get(key) == facts:
            continue
        assert key[1] in noted, (EXAMPLES[b].name, coding, key, "changed without a note")
        for old, new in zip(facts, after.get(key, [])):
            gained = [k for k, v in new.items() if v is not None and old.get(k) is None]
            assert not gained, (EXAMPLES[b].name, coding, key, gained)


# A fact leaf's `where` that is unknown for some fact (a code not understood: "is this a cancer?") makes the
# leaf unknown unless the outcome is the same whether or not that fact counts (docs/rule-format.md).
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from(TARGETS))
def test_an_unknown_code_never_makes_a_rule_more_certain(
    evaluator: Evaluator, target: tuple[int, tuple[int, int]]
) -> None:
    _check_rule_level(evaluator, *target)


def test_every_code_replaced_in_turn_never_makes_a_rule_more_certain(evaluator: Evaluator) -> None:
    """The same check for every one of the codes, not a sample: the examples are few enough."""
    for b, target in TARGETS:
        _check_rule_level(evaluator, b, target)


def _check_rule_level(evaluator: Evaluator, b: int, target: tuple[int, int]) -> None:
    i, j = target
    before, before_crit = _outcomes(evaluator, BUNDLES[b])
    changed, coding = _replaced(b, i, j)
    after, after_crit = _outcomes(evaluator, changed)
    pending = _pending(evaluator, changed)
    for rule, status in before.items():
        if rule in pending and after.get(rule) == "flagged":
            continue  # a decision group's default level, shown with the undecided higher level as pending
        if after.get(rule) == "flagged" and any(
            after.get(ref) == "indeterminate" != before.get(ref) for ref in POSSIBLE.get(rule, ())
        ):
            continue  # "possibly a trial candidate": the referenced rule became possible
        assert after.get(rule) in (status, "indeterminate"), (EXAMPLES[b].name, coding, rule, status, after.get(rule))
    for key, outcome in before_crit.items():
        if outcome == "unknown" and key in after_crit:
            assert after_crit[key] == "unknown", (EXAMPLES[b].name, coding, key, after_crit[key])
