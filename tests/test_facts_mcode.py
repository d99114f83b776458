"""mCODE observations read through the terminology (mdtflag.fhir.facts.mcode): cancer disease status,
histologic behaviour and type, Lansky performance status, and the laboratory's TMB call."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mdtflag.authoring.facts_report import facts_document
from mdtflag.fhir.facts import extract_facts
from mdtflag.fhir.facts.terminology import default_terminology, read_terminology_files
from mdtflag.fhir.load import load_bundle
from tests.test_facts import AS_OF, ASSERT, LOINC, SNOMED, bundle, cc, codes, cond, extract, kind, obs, one, qty

ICD10 = "http://hl7.org/fhir/sid/icd-10"
ICDO3 = "http://terminology.hl7.org/CodeSystem/icd-o-3"
NCIT = "http://ncicb.nci.nih.gov/xml/owl/EVS/Thesaurus.owl"
V3 = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
STATUS_MAP = default_terminology().maps[(SNOMED, "urn:mdtflag:disease-status")]
CALLS = {
    code
    for (_, target), table in default_terminology().maps.items()
    if target == "urn:mdtflag:tmb-interpretation"
    for code in table
}


def status(code: str, loinc: str = "97509-4", when: str = "2024-05-01", **kw) -> dict:
    return obs(LOINC, loinc, effectiveDateTime=when, valueCodeableConcept=cc(SNOMED, code), **kw)


def assessment(value: str, when: str = "2024-05-01") -> dict:
    return obs(ASSERT, "disease-status", effectiveDateTime=when, valueCodeableConcept=cc(ASSERT, value))


def statuses(fs) -> list[str | None]:
    return [f.value for f in kind(fs, "assertion") if f.code == "disease-status"]


def unread_status(fs) -> bool:
    return any(k == "assertion" and f == {"code": "disease-status"} for k, f, _, _ in fs.unreadable)


# ---------------------------------------------------------------------------------------------
# disease status


def test_full_remission_in_both_loinc_codes_gives_the_assessment_remission() -> None:
    for loinc in ("97509-4", "88040-1"):
        for code in ("550991000124107", "103338009"):
            fs = extract(status(code, loinc))
            fact = one(fs, "assertion")
            assert (fact.code, fact.value, fact.date) == ("disease-status", "remission", date(2024, 5, 1))
            assert code in fact.evidence[0].value and "mCODE" in fact.evidence[0].value
            assert not unread_status(fs)


def test_a_trend_is_not_a_disease_status_it_is_unknown_with_a_note() -> None:
    for code in ("268910001", "359746009", "271299001", "709137006", "551001000124108", "103337004"):
        fs = extract(status(code))
        assert statuses(fs) == [], code
        assert unread_status(fs), code
        note = next(n for n in fs.notes if n.code == "unmapped-code")
        assert code in note.message and note.element == "Observation.valueCodeableConcept"


def test_an_unknown_answer_or_no_answer_is_unknown_never_a_value() -> None:
    fs = extract(status("123456789"))
    assert statuses(fs) == [] and unread_status(fs) and "unmapped-code" in codes(fs)
    fs = extract(obs(LOINC, "97509-4", effectiveDateTime="2024-05-01"))
    assert statuses(fs) == [] and unread_status(fs) and "missing-element" in codes(fs)
    fs = extract(obs(LOINC, "97509-4", effectiveDateTime="2024-05-01", valueCodeableConcept=cc(ASSERT, "relapsed")))
    assert statuses(fs) == [] and unread_status(fs)


def test_the_latest_status_counts_and_an_unmappable_latest_one_makes_it_unknown() -> None:
    older, newer = status("550991000124107", when="2024-01-01"), status("271299001", when="2024-05-01")
    fs = extract(older, newer)
    assert statuses(fs) == [] and unread_status(fs)
    fs = extract(status("271299001", when="2024-01-01"), status("550991000124107", when="2024-05-01"))
    assert statuses(fs) == ["remission"] and not unread_status(fs)


def test_the_projects_own_assessment_takes_precedence_over_the_mcode_status() -> None:
    # earlier or later, readable or not: the assessment is the explicit source
    for when in ("2024-01-01", "2024-05-20"):
        fs = extract(assessment("relapsed", when), status("550991000124107"))
        assert statuses(fs) == ["relapsed"]
    # an assessment present but unreadable is still the explicit source: the status is unknown (unread),
    # and the mCODE status does not stand in for it
    fs = extract(assessment("no-such-value"), status("550991000124107"))
    assert statuses(fs) == [] and unread_status(fs)
    fs = extract(assessment("refractory"), status("271299001"))
    assert statuses(fs) == ["refractory"] and not unread_status(fs)


def test_distant_metastasis_present_gives_the_extent_metastatic() -> None:
    fs = extract(status("399409002"))
    ext = one(fs, "extent")
    assert (ext.value, ext.source, ext.date) == ("metastatic", "disease-status", date(2024, 5, 1))
    assert statuses(fs) == [] and unread_status(fs)  # an extent says nothing of relapse or remission


def test_a_status_after_as_of_or_entered_in_error_is_not_used() -> None:
    fs = extract(status("550991000124107", when="2024-07-01"))
    assert statuses(fs) == [] and "after-as-of" in codes(fs) and not unread_status(fs)
    fs = extract(status("550991000124107", status="entered-in-error"))
    assert statuses(fs) == [] and "ignored-status" in codes(fs)


def test_a_site_map_changes_the_reading_without_code() -> None:
    site = {
        "resourceType": "ConceptMap",
        "url": "urn:site:disease-status",
        "version": "1",
        "date": "2026-12-01",
        "publisher": "a site",
        "meta": {"tag": [{"system": "urn:mdtflag:provenance", "code": "site"}]},
        "group": [
            {
                "source": SNOMED,
                "target": "urn:mdtflag:disease-status",
                "element": [{"code": "271299001", "target": [{"code": "relapsed", "equivalence": "inexact"}]}],
            }
        ],
    }
    terms, problems = read_terminology_files([("site.json", json.dumps(site).encode())])
    assert problems == []
    loaded = load_bundle(bundle(status("271299001")), validate="facts")
    fs = extract_facts(loaded, AS_OF, terminology=default_terminology().layered(terms))
    assert statuses(fs) == ["relapsed"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.from_regex(r"[1-9][0-9]{5,17}", fullmatch=True))
def test_an_answer_outside_the_map_never_gives_a_disease_status(code: str) -> None:
    fs = extract(status(code))
    values = statuses(fs)
    if code in STATUS_MAP:
        assert values in ([], [STATUS_MAP[code][0]] if STATUS_MAP[code] else [])
    else:
        assert values == [] and unread_status(fs)


# ---------------------------------------------------------------------------------------------
# histology (LOINC 31206-6)


def colon(**kw) -> dict:
    return cond(ICD10, "C18.7", id="c1", onsetDateTime="2024-01-10", **kw)


def histology(value: dict, **kw) -> dict:
    kw.setdefault("effectiveDateTime", "2024-01-20")
    return obs(LOINC, "31206-6", valueCodeableConcept=value, **kw)


def test_histology_by_focus_gives_morphology_and_histological_confirmation() -> None:
    fs = extract(colon(), histology(cc(SNOMED, "35917007"), focus=[{"reference": "Condition/c1"}]))
    d = one(fs, "diagnosis")
    assert (d.morphology, d.histology_confirmed, d.cancer) == ("8140/3", True, True)
    assert any("ICD-O-3 8140/3" in e.value for e in d.evidence)


def test_histology_by_the_related_condition_extension_in_icd_o_3() -> None:
    ext = [
        {
            "url": "http://hl7.org/fhir/us/mcode/StructureDefinition/mcode-related-condition",
            "valueReference": {"reference": "Condition/c1"},
        }
    ]
    fs = extract(colon(), histology(cc(ICDO3, "8500/3"), extension=ext))
    assert (one(fs, "diagnosis").morphology, one(fs, "diagnosis").histology_confirmed) == ("8500/3", True)


def test_without_histology_or_confirmation_the_diagnosis_is_not_histologically_confirmed() -> None:
    assert one(extract(colon()), "diagnosis").histology_confirmed is False
    provisional = colon(
        verificationStatus=cc("http://terminology.hl7.org/CodeSystem/condition-ver-status", "provisional")
    )
    fs = extract(provisional, histology(cc(ICDO3, "8140/3"), focus=[{"reference": "Condition/c1"}]))
    assert one(fs, "diagnosis").histology_confirmed is False


def test_unmapped_histology_is_noted_and_leaves_the_morphology_unknown() -> None:
    fs = extract(colon(), histology(cc(SNOMED, "999999999"), focus=[{"reference": "Condition/c1"}]))
    d = one(fs, "diagnosis")
    assert d.morphology is None and d.histology_confirmed is True
    assert any(n.code == "unmapped-code" and "999999999" in n.message for n in fs.notes)


def test_histology_that_refers_to_no_condition_is_noted_and_not_attributed() -> None:
    fs = extract(colon(), histology(cc(ICDO3, "8140/3")))
    d = one(fs, "diagnosis")
    assert d.morphology is None and d.histology_confirmed is False
    assert any(n.code == "missing-element" and n.element == "Observation.focus" for n in fs.notes)
    # with no Condition in the bundle at all the Observation is still noted
    assert "missing-element" in codes(extract(histology(cc(ICDO3, "8140/3"))))


def test_histology_after_as_of_or_entered_in_error_is_not_used() -> None:
    late = histology(cc(ICDO3, "8140/3"), focus=[{"reference": "Condition/c1"}], effectiveDateTime="2024-08-01")
    assert one(extract(colon(), late), "diagnosis").morphology is None
    late = histology(
        cc(ICDO3, "8140/3"), focus=[{"reference": "Condition/c1"}], effectivePeriod={"start": "2024-08-01"}
    )
    late.pop("effectiveDateTime")
    assert one(extract(colon(), late), "diagnosis").morphology is None
    err = histology(cc(ICDO3, "8140/3"), focus=[{"reference": "Condition/c1"}], status="entered-in-error")
    assert one(extract(colon(), err), "diagnosis").morphology is None


def test_the_morphology_on_the_condition_comes_first() -> None:
    ext = [
        {
            "url": "http://hl7.org/fhir/us/mcode/StructureDefinition/mcode-histology-morphology-behavior",
            "valueCodeableConcept": cc(ICDO3, "8500/3"),
        }
    ]
    fs = extract(colon(extension=ext), histology(cc(ICDO3, "8140/3"), focus=[{"reference": "Condition/c1"}]))
    assert one(fs, "diagnosis").morphology == "8500/3"


# ---------------------------------------------------------------------------------------------
# Lansky performance status


def lansky(**kw) -> dict:
    kw.setdefault("effectiveDateTime", "2024-05-01")
    return obs(NCIT, "C38144", **kw)


def test_lansky_from_the_integer_and_from_the_answer_code() -> None:
    fs = extract(lansky(valueInteger=80, interpretation=[cc(NCIT, "C69424")]))
    p = one(fs, "performance")
    assert (p.scale, p.value, p.date, p.age_days) == ("lansky", 80, date(2024, 5, 1), 31)
    assert kind(fs, "ecog") == []  # never converted to ECOG
    assert one(extract(lansky(valueCodeableConcept=cc(NCIT, "C70540"))), "performance").value == 20


def test_unreadable_or_conflicting_lansky_is_unknown_with_a_note() -> None:
    for bad, note in (
        (lansky(valueInteger=80, interpretation=[cc(NCIT, "C70540")]), "conflicting-values"),
        (lansky(valueInteger=130), "implausible-value"),
        (lansky(valueString="eighty"), "wrong-type"),
        (lansky(valueCodeableConcept=cc(NCIT, "C00000")), "unknown-code"),
        (lansky(), "missing-element"),
        (lansky(valueQuantity=qty(72.5, "{score}")), "wrong-type"),
    ):
        fs = extract(bad)
        assert kind(fs, "performance") == [] and note in codes(fs), note
        assert any(k == "performance" for k, _, _, _ in fs.unreadable)


def test_the_latest_lansky_counts() -> None:
    fs = extract(
        lansky(valueInteger=40, effectiveDateTime="2024-01-01"), lansky(valueInteger=90, effectiveDateTime="2024-04-01")
    )
    assert one(fs, "performance").value == 90


# ---------------------------------------------------------------------------------------------
# TMB interpretation


def call(system: str, code: str) -> dict:
    return obs(LOINC, "94077-5", effectiveDateTime="2024-05-01", valueCodeableConcept=cc(system, code))


def test_the_laboratorys_call_is_a_tmb_fact_without_a_number() -> None:
    for system, code, want in ((SNOMED, "75540009", "high"), (SNOMED, "62482003", "low"), (V3, "H", "high")):
        t = one(extract(call(system, code)), "tmb")
        assert (t.value, t.interpretation, t.date) == (None, want, date(2024, 5, 1))


def test_a_call_that_is_neither_high_nor_low_is_unknown_with_a_note() -> None:
    for system, code in ((V3, "N"), (SNOMED, "10828004"), ("urn:other", "H")):
        fs = extract(call(system, code))
        assert kind(fs, "tmb") == [] and "unmapped-code" in codes(fs)
        assert any(k == "tmb" for k, _, _, _ in fs.unreadable)


def test_a_number_with_its_own_interpretation_gives_both_facts() -> None:
    t = obs(
        LOINC,
        "94076-7",
        effectiveDateTime="2024-05-01",
        valueQuantity=qty(6, "1/1000000{Base}"),
        interpretation=[cc(V3, "H")],
    )
    facts = {(f.value, f.interpretation) for f in kind(extract(t), "tmb")}
    assert facts == {(None, "high"), (Decimal("6"), None)}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=1, max_size=12))
def test_a_call_outside_the_map_never_gives_a_tmb_fact(code: str) -> None:
    fs = extract(call(SNOMED, code), call(V3, code))
    if code not in CALLS:
        assert kind(fs, "tmb") == [] and sum(k == "tmb" for k, _, _, _ in fs.unreadable) == 2


def test_mdtflag_facts_reports_lansky_and_the_unmapped_status() -> None:
    fs = extract(lansky(valueInteger=70), status("359746009"))
    doc = facts_document(fs, AS_OF.isoformat(), default_terminology())
    assert doc["counts"]["performance"] == 1 and doc["facts"]["performance"][0]["scale"] == "lansky"
    assert [n["code"] for n in doc["not_understood"]] == ["unmapped-code"]
    assert {s["file"] for s in doc["terminology"]} >= {
        "nci-lansky.json",
        "snomed-ct-disease-status.json",
        "tmb-interpretation.json",
    }
