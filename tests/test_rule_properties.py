"""Properties of the shipped rule set over the shipped example patients.

* Equity (S18): changing only where the patient lives changes the routing target, never whether a flag fires.
* Adding an unrelated resource never changes a decision or a status.
* Removing all data of one kind turns a decided fact criterion (missing → unknown) into unknown, never into the opposite.
* Every real FHIR file under ../shared/real-fhir gets a result or a named input error with the shipped rules.
"""
from __future__ import annotations

import copy
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mdtflag.api import Evaluator
from mdtflag.compile.plan import PFact
from mdtflag.errors import InputError
from mdtflag.fhir.load import load_bundle
from mdtflag.output.render import to_json
from mdtflag.fhir.regions import COUNTIES, HALLAND_MUNICIPALITIES

from conftest import REAL_FHIR, ROOT

AS_OF = "2026-11-01"
EXAMPLES = sorted((ROOT / "fhir_examples").glob("*.json"))
BUNDLES = {p.name: json.loads(p.read_text()) for p in EXAMPLES}
NAMES = sorted(BUNDLES)


@pytest.fixture(scope="module")
def ev() -> Evaluator:
    return Evaluator(ROOT / "rules")


# DQ-6 reports that the healthcare region is unknown: its subject is the place of residence itself
ABOUT_REGION = {"DQ-6"}


def _statuses(result: Any) -> dict[str, Any]:
    return {
        "mdk": result.decisions["mdk"].level,
        "flags": {f.rule: (f.status, sorted((c.key, c.status) for c in f.cohorts or []))
                  for f in result.flags if f.rule not in ABOUT_REGION},
    }


def _move(bundle: dict[str, Any], county: str, municipality: str | None) -> dict[str, Any]:
    b = copy.deepcopy(bundle)
    for e in b["entry"]:
        r = e["resource"]
        if r["resourceType"] == "Patient":
            addr: dict[str, Any] = {"use": "home", "state": county}
            if municipality:
                addr["district"] = municipality
            r["address"] = [addr]
    return b


def _county_codes() -> list[str]:
    return sorted(COUNTIES) if isinstance(COUNTIES, dict) else sorted(str(c) for c in COUNTIES)


PLACES = [(c, None) for c in _county_codes()] + [("13", m) for m in sorted(HALLAND_MUNICIPALITIES)] + [("99", None)]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from(NAMES), st.sampled_from(PLACES), st.sampled_from(PLACES))
def test_region_changes_target_never_whether_a_flag_fires(ev: Evaluator, name: str, a: tuple, b: tuple) -> None:
    ra = ev.evaluate(_move(BUNDLES[name], *a), as_of=AS_OF)
    rb = ev.evaluate(_move(BUNDLES[name], *b), as_of=AS_OF)
    assert _statuses(ra) == _statuses(rb)


def test_every_county_routes_to_a_region(ev: Evaluator) -> None:
    name = next(n for n in NAMES if ev.evaluate(BUNDLES[n], as_of=AS_OF).decisions["mdk"].level == "regional")
    seen = set()
    for county, muni in PLACES[:-1]:
        r = ev.evaluate(_move(BUNDLES[name], county, muni), as_of=AS_OF)
        region = r.decisions["mdk"].target.healthcare_region  # type: ignore[union-attr]
        if county == "13" and muni is None:
            assert region is None  # Halland needs the municipality (DQ-6)
        else:
            assert region is not None, (county, muni)
            seen.add(region)
    assert seen == {"norra", "mellansverige", "stockholm-gotland", "sydostra", "sodra", "vastra"}


UNRELATED = [
    {"resourceType": "AllergyIntolerance", "id": "u1", "patient": {"reference": "Patient/PID"},
     "code": {"coding": [{"system": "http://snomed.info/sct", "code": "91936005"}]}},
    {"resourceType": "Observation", "id": "u2", "status": "final", "subject": {"reference": "Patient/PID"},
     "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]}, "effectiveDateTime": "2026-10-01",
     "valueQuantity": {"value": 72, "unit": "/min", "system": "http://unitsofmeasure.org", "code": "/min"}},
    {"resourceType": "Condition", "id": "u3", "subject": {"reference": "Patient/PID"},
     "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]},
     "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-se", "code": "J45.9"}]}, "onsetDateTime": "2010-05-01"},
    {"resourceType": "Immunization", "id": "u4", "status": "completed", "patient": {"reference": "Patient/PID"},
     "vaccineCode": {"coding": [{"system": "http://hl7.org/fhir/sid/cvx", "code": "140"}]}, "occurrenceDateTime": "2025-10-01"},
]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from(NAMES), st.lists(st.sampled_from(range(len(UNRELATED))), min_size=1, max_size=4, unique=True))
def test_unrelated_resources_change_nothing(ev: Evaluator, name: str, which: list[int]) -> None:
    base = BUNDLES[name]
    pid = next(e["resource"]["id"] for e in base["entry"] if e["resource"]["resourceType"] == "Patient")
    b = copy.deepcopy(base)
    for i in which:
        b["entry"].append({"resource": json.loads(json.dumps(UNRELATED[i]).replace("PID", pid))})
    assert _statuses(ev.evaluate(b, as_of=AS_OF)) == _statuses(ev.evaluate(base, as_of=AS_OF))


def _fact_leaves(results: Any) -> list[Any]:
    out = []

    def walk(r: Any) -> None:
        if isinstance(r.plan, PFact) and getattr(r.node, "id", None) and r.node.missing == "unknown" and r.node.stale == "unknown":
            out.append(r)
        for ch in r.children:
            walk(ch)

    for r in results:
        walk(r)
    return out


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from(NAMES), st.sampled_from(["ecog", "lab", "variant", "genomic_report", "assertion", "extent", "medication"]))
def test_removing_data_makes_criteria_unknown_never_opposite(ev: Evaluator, name: str, kind: str) -> None:
    bundle = BUNDLES[name]
    day = dt.date.fromisoformat(AS_OF)
    fs = ev.facts(load_bundle(bundle), day)
    sources = {e.resource for f in fs.facts if f.kind == kind for e in f.evidence}
    if not sources:
        return
    reduced = copy.deepcopy(bundle)
    reduced["entry"] = [e for e in reduced["entry"]
                        if f"{e['resource']['resourceType']}/{e['resource'].get('id')}" not in sources or e["resource"]["resourceType"] == "Patient"]
    _, _, before = ev.run(load_bundle(bundle), day)
    _, _, after = ev.run(load_bundle(reduced), day)
    for b_eval, a_eval in zip(before, after):
        if b_eval.best is None or a_eval.best is None or b_eval.best.row != a_eval.best.row:
            continue
        old = {r.node.id: r.outcome for r in _fact_leaves([b_eval.best.result]) if r.plan.kind == kind}
        new = {r.node.id: r.outcome for r in _fact_leaves([a_eval.best.result]) if r.plan.kind == kind}
        for cid, outcome in new.items():
            if cid in old and old[cid] != outcome:
                assert outcome == "unknown", (name, kind, b_eval.rule.id, cid, old[cid], outcome)


@pytest.mark.skipif(not REAL_FHIR.is_dir(), reason="../shared/real-fhir is not present")
def test_every_real_fhir_file_gets_a_result_or_a_named_error(ev: Evaluator) -> None:
    results = errors = 0
    for p in sorted(REAL_FHIR.rglob("*.json")):
        try:
            r = ev.evaluate(p, as_of=AS_OF)
        except InputError as e:
            assert e.code in {"not-json", "not-utf8", "not-bundle", "no-patient", "several-patients", "too-large", "too-deep"}
            errors += 1
            continue
        assert r.decisions["mdk"].level in {"national", "regional", "local", "paediatric", "undetermined"}
        results += 1
    assert results >= 40 and results + errors == len(list(REAL_FHIR.rglob("*.json")))


JUNK = st.one_of(st.none(), st.booleans(), st.integers(-10**20, 10**20), st.floats(allow_nan=True), st.text(max_size=20),
                 st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=5), st.integers(), max_size=3))


def _paths(obj: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += _paths(v, prefix + (i,))
    return out


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.sampled_from(NAMES), st.data())
def test_mutated_bundles_end_as_result_or_input_error(ev: Evaluator, name: str, data: Any) -> None:
    """The whole pipeline on damaged input: a result or the typed input error, never anything else."""
    b = copy.deepcopy(BUNDLES[name])
    paths = [p for p in _paths(b) if p]
    for _ in range(data.draw(st.integers(1, 6))):
        path = data.draw(st.sampled_from(paths))
        parent = b
        try:
            for k in path[:-1]:
                parent = parent[k]
            if data.draw(st.booleans()):
                parent[path[-1]] = data.draw(JUNK)
            elif isinstance(parent, dict):
                parent.pop(path[-1], None)
        except (KeyError, IndexError, TypeError):
            continue
    try:
        r = ev.evaluate(b, as_of=AS_OF)
    except InputError:
        return
    json.loads(to_json(r))
