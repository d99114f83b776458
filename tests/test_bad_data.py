"""Bad data never decides: each case is a shipped example with one thing made wrong, and the test asserts the
decision and the data-quality note (issue: silent wrong decisions)."""

from __future__ import annotations

import copy
import datetime as dt
import json
import random
from typing import Any

import orjson
import pytest
from conftest import ROOT
from example_bundles import AS_OF, EV, EXAMPLES, Bundle, example, notes, resource, run, status
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mdtflag.fhir.load import load_bundle
from mdtflag.output.render import to_json

CHILD = "15-child-neuroblastoma-no-wgs.json"


def add(b: Bundle, res: dict[str, Any]) -> None:
    b["entry"].append({"fullUrl": f"http://example.org/fhir/{res['resourceType']}/{res['id']}", "resource": res})


def clone(b: Bundle, rid: str, new_id: str, **changes: Any) -> dict[str, Any]:
    r = copy.deepcopy(resource(b, rid))
    r["id"] = new_id
    r.update(changes)
    add(b, r)
    return r


def drop(b: Bundle, rid: str) -> None:
    b["entry"] = [e for e in b["entry"] if e["resource"].get("id") != rid]


def facts(b: Bundle, as_of: str = AS_OF) -> Any:
    return EV.facts(load_bundle(b), dt.date.fromisoformat(as_of))


def labs(fs: Any, analyte: str) -> list[Any]:
    return [f for f in fs.facts if f.kind == "lab" and f.analyte == analyte]


HB = "p01-obs13"  # haemoglobin 124 g/L, 2026-10-27
ECOG = "p01-obs11"  # ECOG 1, 2026-10-20


# ------------------------------------------------------------------ 1. same-day values and order


def test_same_day_values_use_the_time_of_day_and_zone() -> None:
    for order in (1, -1):
        b = example()
        hb = [
            clone(
                b,
                HB,
                "hb-morning",
                effectiveDateTime="2026-10-28T08:00:00+01:00",
                valueQuantity={**resource(b, HB)["valueQuantity"], "value": 85},
            ),
            clone(b, HB, "hb-afternoon", effectiveDateTime="2026-10-28T14:00:00+01:00"),
        ]
        b["entry"][-2:] = [{"resource": r} for r in hb[::order]]
        fs = facts(b)
        assert [str(f.value) for f in labs(fs, "haemoglobin")] == ["124"]
        assert labs(fs, "haemoglobin")[0].evidence[0].resource == "Observation/hb-afternoon"
    # 23:30 at +02:00 is earlier than 22:00 UTC the same day
    b = example()
    clone(b, HB, "hb-east", effectiveDateTime="2026-10-28T23:30:00+02:00")
    clone(
        b,
        HB,
        "hb-utc",
        effectiveDateTime="2026-10-28T22:00:00Z",
        valueQuantity={**resource(b, HB)["valueQuantity"], "value": 85},
    )
    assert [str(f.value) for f in labs(facts(b), "haemoglobin")] == ["85"]


def test_conflicting_values_at_the_same_instant_are_unknown() -> None:
    b = example()
    clone(b, ECOG, "ecog-again", valueInteger=4)  # same day as ECOG 1, no time of day
    doc = run(b)
    without = example()
    drop(without, ECOG)
    assert not [f for f in facts(b).facts if f.kind == "ecog"]
    assert status(doc)["TRIAL-FOCUSE"] == status(run(without))["TRIAL-FOCUSE"] != "flagged"
    assert status(doc)["DQ-1"] == "indeterminate"  # an ECOG is there but cannot be read: not "missing"
    (note,) = notes(doc, "conflicting-values")
    assert "ecog-again" in note["message"] and ECOG in note["message"]
    # the same value twice is no conflict
    b = example()
    clone(b, ECOG, "ecog-copy")
    assert status(run(b)) == status(run(example())) and not notes(run(b), "conflicting-values")


def test_same_id_twice_with_different_content_is_unknown() -> None:
    b = example()
    twin = copy.deepcopy(resource(b, ECOG))
    twin["valueInteger"] = 4
    twin["effectiveDateTime"] = "2026-10-10"  # even when dated apart from the first
    b["entry"].insert(3, {"resource": twin})
    doc = run(b)
    assert status(doc)["TRIAL-FOCUSE"] != "flagged" and status(doc)["DQ-1"] == "indeterminate"
    assert notes(doc, "duplicate-id") and notes(doc, "conflicting-values")
    # an exact duplicate is read once, silently
    b = example()
    b["entry"].append(copy.deepcopy(b["entry"][5]))
    assert run(b)["flags"] == run(example())["flags"] and not notes(run(b))


def _shuffled(b: Bundle, rnd: random.Random) -> Bundle:
    def keys(x: Any) -> Any:
        if isinstance(x, dict):
            items = list(x.items())
            rnd.shuffle(items)
            return {k: keys(v) for k, v in items}
        if isinstance(x, list):
            return [keys(v) for v in x]
        return x

    out: Bundle = keys(b)
    rnd.shuffle(out["entry"])
    return out


_NAMES = sorted(p.name for p in EXAMPLES.glob("*.json"))


def _without_ids(b: Bundle, rnd: random.Random) -> None:
    """Copies of some of the bundle's Observations, Conditions and medications without id (some with a
    fullUrl), one of them twice, one conflicting with another in value: names of id-less resources must
    not depend on the entry order either."""
    kinds = ("Observation", "Condition", "MedicationStatement", "MedicationRequest")
    pool = [e["resource"] for e in b["entry"] if e["resource"]["resourceType"] in kinds]
    for k, r in enumerate(rnd.sample(pool, min(4, len(pool)))):
        twin = copy.deepcopy(r)
        twin.pop("id", None)
        if "valueQuantity" in twin:
            twin["valueQuantity"]["value"] = rnd.choice([1, 500, twin["valueQuantity"].get("value")])
        if k in (1, 2):  # an element no fact reads, invalid: a loader note naming the id-less resource
            twin["category"] = {"text": f"not an array {k}"}
        entry: dict[str, Any] = {"resource": twin}
        if k == 3:
            entry["fullUrl"] = f"urn:uuid:5e1f0000-0000-4000-8000-00000000000{k}"
        b["entry"].append(entry)
        if k == 0:
            b["entry"].append({"resource": copy.deepcopy(twin)})  # the same content twice: one resource


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(_NAMES), st.integers(0, 2**32 - 1), st.booleans(), st.booleans())
def test_entry_and_key_order_never_change_an_output_byte(name: str, seed: int, conflict: bool, idless: bool) -> None:
    b = example(name)
    if conflict:  # same-day values of one analyte, one ECOG twice: the tie-breaks must not depend on order
        obs = [e["resource"] for e in b["entry"] if e["resource"]["resourceType"] == "Observation"]
        for k, r in enumerate(obs[:3]):
            twin = copy.deepcopy(r)
            twin["id"] = f"twin-{k}"
            b["entry"].append({"resource": twin})
            if "valueQuantity" in twin:
                twin["valueQuantity"]["value"] = 1
    if idless:
        _without_ids(b, random.Random(seed))
    expected = to_json(EV.evaluate(orjson.dumps(b), as_of=AS_OF))
    got = to_json(EV.evaluate(orjson.dumps(_shuffled(b, random.Random(seed))), as_of=AS_OF))
    assert got == expected


# ------------------------------------------------------------------ 2. dates that cannot be true


def test_birth_after_as_of_is_unknown_not_paediatric() -> None:
    b = example()
    resource(b, "p01")["birthDate"] = "2027-03-01"
    doc = run(b)
    assert doc["decisions"]["mdk"]["level"] != "paediatric"
    assert status(doc)["MDK-PED-1"] == status(doc)["MDK-NAT-1"] == "indeterminate"
    assert notes(doc, "impossible-date")[0]["element"] == "Patient.birthDate"


def test_absurd_age_is_unknown() -> None:
    b = example()
    resource(b, "p01")["birthDate"] = "0001-01-01"
    doc = run(b)
    assert status(doc)["MDK-NAT-1"] == "indeterminate" and notes(doc, "impossible-date")


def test_onset_before_birth_does_not_flag_paediatric_wgs() -> None:
    b = example()
    resource(b, "p01-cond1")["onsetDateTime"] = "1960-01-01"  # born 1968
    doc = run(b)
    assert status(doc)["PED-WGS-1"] != "flagged"
    fs = facts(b)
    d = next(f for f in fs.facts if f.kind == "diagnosis" and f.icd10 == "C22.1")
    assert d.onset is None and d.age_at_onset is None
    assert any(n.code == "impossible-date" and n.resource == "Condition/p01-cond1" for n in fs.notes)


def test_death_date_in_the_future_is_unknown_not_alive() -> None:
    b = example()
    resource(b, "p01")["deceasedDateTime"] = "2999-01-01"
    doc = run(b)
    assert status(doc)["MDK-NAT-1"] == "indeterminate" and status(doc)["TRIAL-FOCUSE"] != "flagged"
    assert notes(doc, "impossible-date")[0]["element"] == "Patient.deceasedDateTime"


# ------------------------------------------------------------------ 3. partial dates are intervals


@pytest.mark.parametrize(
    "birth,level",
    [
        ("2008", "undetermined"),  # 17 or 18 on 2026-11-01
        ("2008-11", "undetermined"),  # 18 only if born on 1 November
        ("2008-10", "national"),  # 18 whatever the day
        ("2008-12", "paediatric"),  # 17 whatever the day
        ("2007", "national"),
        ("2009", "paediatric"),
    ],
)
def test_partial_birth_date_decides_only_when_the_whole_interval_agrees(birth: str, level: str) -> None:
    b = example()
    resource(b, "p01")["birthDate"] = birth
    doc = run(b)
    assert doc["decisions"]["mdk"]["level"] == level
    assert notes(doc, "partial-date")[0]["element"] == "Patient.birthDate"


def test_partial_onset_diagnosed_before_18_is_unknown_when_the_year_spans_the_birthday() -> None:
    b = example()
    resource(b, "p01")["birthDate"] = "2000-06-15"
    resource(b, "p01-cond1")["onsetDateTime"] = "2018"  # 17 until 14 June, 18 from 15 June
    assert status(run(b))["PED-WGS-1"] == "indeterminate"
    resource(b, "p01-cond1")["onsetDateTime"] = "2018-03"  # 17 the whole month
    assert status(run(b))["PED-WGS-1"] == "flagged"


def _completions(text: str, rnd: random.Random) -> list[str]:
    first = dt.date(int(text[:4]), int(text[5:7]) if len(text) > 4 else 1, 1)
    last = (
        dt.date(first.year, 12, 31)
        if len(text) == 4
        else dt.date(first.year + (first.month == 12), first.month % 12 + 1, 1) - dt.timedelta(days=1)
    )
    days = [first, last] + [first + dt.timedelta(days=rnd.randint(0, (last - first).days)) for _ in range(2)]
    return [d.isoformat() for d in days]


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.integers(1990, 2026), st.integers(0, 12), st.integers(2000, 2026), st.integers(0, 12), st.integers(0, 2**32 - 1)
)
def test_a_partial_date_never_gives_a_decision_a_completion_contradicts(
    by: int, bm: int, oy: int, om: int, seed: int
) -> None:
    birth = f"{by}" if bm == 0 else f"{by}-{bm:02d}"
    onset = f"{oy}" if om == 0 else f"{oy}-{om:02d}"
    b = example()
    resource(b, "p01")["birthDate"] = birth
    resource(b, "p01-cond1")["onsetDateTime"] = onset
    partial = status(run(b))
    rnd = random.Random(seed)
    for bc, oc in zip(_completions(birth, rnd), _completions(onset, rnd)):
        if oc < bc:  # a completion with the onset before birth is not a possible truth
            continue
        if oc > AS_OF:  # nor is a diagnosis on record at as_of with its onset after as_of
            continue
        resource(b, "p01")["birthDate"] = bc
        resource(b, "p01-cond1")["onsetDateTime"] = oc
        full = status(run(b))
        for rule, s in partial.items():
            # "does not fire" is one decision: not met, or not applicable (e.g. an adult rule whose criteria
            # fail whatever the age, for a patient who may be 17 or 18)
            fires = {"flagged": True, "not_flagged": False, "not_applicable": False}
            if s in ("flagged", "not_flagged"):
                assert fires.get(full[rule]) == fires[s], (rule, birth, onset, bc, oc, full[rule])


# ------------------------------------------------------------------ 4. look-ahead


def test_data_after_as_of_is_ignored_with_a_note() -> None:
    b = example()
    clone(b, ECOG, "ecog-later", valueInteger=4, effectiveDateTime="2026-11-20")
    clone(
        b,
        HB,
        "hb-later",
        effectiveDateTime="2026-11-20",
        valueQuantity={**resource(b, HB)["valueQuantity"], "value": 60},
    )
    doc = run(b)
    assert status(doc) == status(run(example()))
    assert {n["resource"] for n in notes(doc, "after-as-of")} == {"Observation/ecog-later", "Observation/hb-later"}
    # retrospective: at an earlier as_of the same data is read as it was then
    later = run(b, as_of="2026-12-01")
    assert status(later)["TRIAL-FOCUSE"] != "flagged" and not notes(later, "after-as-of")


_DATED = [
    ("Observation", "effectiveDateTime"),
    ("Condition", "onsetDateTime"),
    ("MedicationStatement", "effectivePeriod"),
    ("DiagnosticReport", "effectiveDateTime"),
]


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(
        [
            "01-cholangio-braf-v600e-focuse-eligible.json",
            "06-pancreas-kras-g12c-ast-above-limit-no-liver-mets.json",
            "15-child-neuroblastoma-no-wgs.json",
        ]
    ),
    st.integers(0, 2**32 - 1),
    st.integers(1, 400),
)
def test_moving_a_date_past_as_of_acts_as_removing_the_resource(name: str, seed: int, days: int) -> None:
    b = example(name)
    rnd = random.Random(seed)
    dated = [
        e["resource"]
        for e in b["entry"]
        if any(e["resource"]["resourceType"] == t and k in e["resource"] for t, k in _DATED)
    ]
    target = rnd.choice(dated)
    when = (dt.date.fromisoformat(AS_OF) + dt.timedelta(days=days)).isoformat()
    for t, k in _DATED:
        if target["resourceType"] == t and k in target:
            target[k] = {"start": when} if k == "effectivePeriod" else when
    moved = status(run(b))
    drop(b, target["id"])
    assert moved == status(run(b))


# ------------------------------------------------------------------ 7. identity


def test_unresolvable_urn_uuid_subject_is_not_attributed() -> None:
    b = example()
    resource(b, ECOG)["subject"] = {"reference": "urn:uuid:7d9e7e2c-0000-4000-8000-000000000000"}
    doc = run(b)
    assert status(doc)["DQ-1"] == "flagged"  # the ECOG is not the patient's
    assert notes(doc, "unresolved-subject")[0]["resource"] == f"Observation/{ECOG}"
    # the patient's own urn:uuid, relative and absolute references all resolve alike
    for ref in (
        "urn:uuid:0b1c2d3e-0000-4000-8000-000000000001",
        "Patient/p01",
        "http://example.org/fhir/Patient/p01",
        "https://elsewhere.example/fhir/Patient/p01",
    ):
        b = example()
        b["entry"][0]["fullUrl"] = "urn:uuid:0b1c2d3e-0000-4000-8000-000000000001"
        for e in b["entry"][1:]:
            if "subject" in e["resource"]:
                e["resource"]["subject"] = {"reference": ref}
        assert status(run(b)) == status(run(example())), ref


@pytest.mark.parametrize("outer", ["message", "collection"])
def test_nested_bundle_is_unwrapped(outer: str) -> None:
    inner = example()
    wrapper: Bundle = {
        "resourceType": "Bundle",
        "id": "w",
        "type": outer,
        "entry": [
            {
                "fullUrl": "urn:uuid:6f1e0000-0000-4000-8000-000000000001",
                "resource": {
                    "resourceType": "MessageHeader",
                    "id": "mh",
                    "eventCoding": {"system": "urn:example", "code": "x"},
                    "source": {"endpoint": "urn:example"},
                },
            },
            {"fullUrl": "urn:uuid:6f1e0000-0000-4000-8000-000000000002", "resource": inner},
        ],
    }
    doc = run(wrapper)
    plain = run(example())
    assert doc["patient"] == "Patient/p01" and status(doc) == status(plain)


# ------------------------------------------------------------------ 8. choice types


def test_condition_onset_age_is_read() -> None:
    b = example(CHILD)
    base = status(run(b))
    cond = next(e["resource"] for e in b["entry"] if e["resource"]["resourceType"] == "Condition")
    patient = next(e["resource"] for e in b["entry"] if e["resource"]["resourceType"] == "Patient")
    born = dt.date.fromisoformat(patient["birthDate"])
    onset = dt.date.fromisoformat(cond.pop("onsetDateTime")[:10])
    years = onset.year - born.year - ((onset.month, onset.day) < (born.month, born.day))
    cond["onsetAge"] = {"value": years, "unit": "a", "system": "http://unitsofmeasure.org", "code": "a"}
    fs = facts(b)
    d = next(f for f in fs.facts if f.kind == "diagnosis")
    assert d.age_at_onset == years and d.onset is not None
    assert status(run(b))["PED-WGS-1"] == base["PED-WGS-1"] == "flagged"


@pytest.mark.parametrize("element", ["effectivePeriod", "effectiveInstant"])
def test_observation_effective_choice_types_are_read(element: str) -> None:
    b = example()
    r = resource(b, ECOG)
    day = r.pop("effectiveDateTime")
    r[element] = {"start": day} if element == "effectivePeriod" else f"{day}T09:00:00Z"
    fs = facts(b)
    (ecog,) = [f for f in fs.facts if f.kind == "ecog"]
    assert ecog.date == dt.date.fromisoformat(day) and status(run(b)) == status(run(example()))


# ------------------------------------------------------------------ 5. implausible values


def test_negative_haemoglobin_is_unknown_not_low() -> None:
    b = example()
    clone(
        b,
        HB,
        "hb-negative",
        effectiveDateTime="2026-10-30",
        valueQuantity={**resource(b, HB)["valueQuantity"], "value": -85},
    )
    doc = run(b)
    fs = facts(b)
    assert not labs(fs, "haemoglobin")  # the latest haemoglobin is unreadable; the older one does not count
    (note,) = notes(doc, "implausible-value")
    assert note["resource"] == "Observation/hb-negative" and note["element"] == "Observation.valueQuantity.value"
    assert status(doc)["TRIAL-FOCUSE"] == "indeterminate"


def test_ecog_99_is_unknown_and_hides_no_older_value() -> None:
    b = example()
    clone(b, ECOG, "ecog-99", valueInteger=99, effectiveDateTime="2026-10-25")
    doc = run(b)
    assert not [f for f in facts(b).facts if f.kind == "ecog"]
    assert status(doc)["DQ-1"] == status(doc)["TRIAL-FOCUSE"] == "indeterminate"
    assert notes(doc, "implausible-value")[0]["resource"] == "Observation/ecog-99"


def test_uln_zero_is_implausible_not_missing() -> None:
    b = example()
    ast = resource(b, "p01-obs17")
    ast["referenceRange"] = [{"high": {**ast["valueQuantity"], "value": 0}}]
    fs = facts(b)
    (fact,) = labs(fs, "ast")
    assert fact.uln is None and fact.x_uln is None
    (note,) = [n for n in fs.notes if n.code == "implausible-value"]
    assert note.resource == "Observation/p01-obs17" and note.element == "Observation.referenceRange[0].high"
    assert status(run(b))["TRIAL-FOCUSE"] == "indeterminate"


def test_plausible_ranges_are_data_with_sources() -> None:
    from importlib import resources

    table = json.loads((resources.files("mdtflag") / "data" / "plausible-ranges.json").read_text("utf-8"))
    from mdtflag.fhir.facts.observation import accepted_units
    from mdtflag.fhir.facts.terminology import default_terminology

    terms = default_terminology()
    labs = json.loads((ROOT / "rules" / "terminology" / "loinc-laboratory.json").read_text("utf-8"))
    canonical = set()
    for concept in labs["concept"]:
        props = {x["code"]: x.get("valueCode") for x in concept.get("property", [])}
        if props.get("analyte") and props.get("quantity"):
            canonical |= {(props["analyte"], c) for _, c in accepted_units(terms, props["quantity"]).values()}
    assert canonical
    assert canonical <= {(r["analyte"], r["unit"]) for r in table["lab"]}
    assert all(r["source"] and r["min"] < r["max"] for r in table["lab"] + table["score"])


# ------------------------------------------------------------------ 6. duplicate JSON keys


def test_duplicate_json_key_is_flagged_and_not_read() -> None:
    raw = orjson.dumps(example())
    one = b'"valueInteger":1'
    assert raw.count(one) == 1
    doc = run(raw.replace(one, b'"valueInteger":1,"valueInteger":4'))  # orjson alone would read 4
    (note,) = notes(doc, "duplicate-key")
    assert note["resource"] == f"Observation/{ECOG}" and note["element"] == "Observation.valueInteger"
    assert status(doc)["TRIAL-FOCUSE"] != "flagged" and status(doc)["DQ-1"] == "indeterminate"
    # a key spaced from its colon, and a string value holding '":', are no duplicates
    spaced = raw.replace(b'"valueInteger":1', b'"valueInteger" : 1').replace(
        b'"status":"final"', b'"status":"final","note":[{"text":"a \\":b"}]', 1
    )
    assert status(run(spaced)) == status(run(raw)) and not notes(run(spaced), "duplicate-key")


@settings(max_examples=30, deadline=None)
@given(st.dictionaries(st.text(max_size=4), st.integers(), max_size=5), st.integers(0, 5))
def test_duplicate_key_check_agrees_with_a_full_parse(obj: dict[str, int], extra: int) -> None:
    from mdtflag.fhir.load import _parse_checked

    keys = list(obj)
    body = [json.dumps(k) + ":" + str(v) for k, v in obj.items()]
    if keys and extra:
        body.append(json.dumps(keys[extra % len(keys)]) + " : 0")
    text = ("{" + ",".join(body) + "}").encode()
    _, pruned = _parse_checked(text, "<t>")
    assert bool(pruned) == (bool(keys) and extra > 0)


# ------------------------------------------------------------------ 10. one bad element


def test_bad_element_that_no_fact_reads_keeps_the_resource() -> None:
    b = example()
    resource(b, ECOG)["category"] = {"text": "not an array"}  # Observation.category: 0..*
    resource(b, "p01-cond1")["category"] = {"text": "not an array"}
    doc = run(b)
    assert status(doc) == status(run(example()))
    assert {n["resource"] for n in notes(doc, "invalid-element")} == {f"Observation/{ECOG}", "Condition/p01-cond1"}
    assert not notes(doc, "invalid-resource")
    # an element the facts read makes the resource's facts unreadable, with the note saying so:
    # an ECOG is on file but cannot be trusted, so "ECOG missing" is unknown, not flagged
    resource(b, ECOG)["valueString"] = "1"  # two value[x]
    doc = run(b)
    assert notes(doc, "invalid-resource")[0]["resource"] == f"Observation/{ECOG}"
    assert status(doc)["DQ-1"] == "indeterminate"
    assert status(doc)["TRIAL-FOCUSE"] != "flagged"


# ------------------------------------------------------------------ 9. present but unreadable is not missing


def _missing(doc: dict[str, Any], rule: str) -> list[dict[str, Any]]:
    flag = next(f for f in doc["flags"] if f["rule"] == rule)
    return [m for r in flag["reasons"] for m in r["missing"]] + list(flag["missing"])


@pytest.mark.parametrize("keep_older", [False, True])
def test_haemoglobin_in_an_unaccepted_unit_is_unreadable_not_missing(keep_older: bool) -> None:
    b = example()
    clone(
        b,
        HB,
        "hb-mmol",
        effectiveDateTime="2026-10-30",
        valueQuantity={"value": 7.7, "unit": "mmol/L", "system": "http://unitsofmeasure.org", "code": "mmol/L"},
    )
    if not keep_older:
        drop(b, HB)
    doc = run(b)
    assert status(doc)["TRIAL-FOCUSE"] == "indeterminate"
    miss = [m for m in _missing(doc, "TRIAL-FOCUSE") if m["fact"] == "lab" and "hb-mmol" in str(m["resource"])]
    assert miss and all(m["reason"] == "unreadable" for m in miss)
    assert "unreadable" in miss[0]["text"]["en"] and "Observation.valueQuantity" in miss[0]["text"]["en"]
    assert not any(m["reason"] == "absent" and "haemoglobin" in m["text"]["en"] for m in _missing(doc, "TRIAL-FOCUSE"))
    (note,) = notes(doc, "unknown-unit")
    assert note["resource"] == "Observation/hb-mmol"


def test_unreadable_value_of_another_analyte_leaves_the_criterion_absent() -> None:
    b = example()
    drop(b, HB)
    clone(
        b,
        "p01-obs14",
        "plt-bad",
        valueQuantity={"value": 7.7, "unit": "mmol/L", "system": "http://unitsofmeasure.org", "code": "mmol/L"},
    )
    miss = _missing(run(b), "TRIAL-FOCUSE")
    hb = [m for m in miss if m["fact"] == "lab" and "haemoglobin" in m["text"]["en"]]
    assert hb and all(m["reason"] == "absent" for m in hb)
