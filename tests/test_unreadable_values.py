"""A value present but unreadable is *unknown – present but unreadable*, never missing and never not met: for
every fact kind a rule reads a value from (TMB, MSI, variant allele frequency, pregnancy status, clinical
assessments). Each case is a shipped example with one value made unreadable; the test asserts the decision,
the reason and the data-quality note it points at."""

from __future__ import annotations

import copy
import json
from typing import Any, Callable

import pytest
from example_bundles import FOCUSE, Bundle, example, resource, run, status

MSI_H = "28-colon-msi-high-pembrolizumab-on-label-untried.json"  # MSI-H p28-obs19, TMB 38 p28-obs20
TUMOUR_ONLY = "20-ovarian-tumour-only-brca2-possible-germline.json"  # BRCA2 VAF 0.46 in p20-obs7
NEG_HCG = "41-cholangio-braf-undated-ecog-and-bilirubin-negative-hcg.json"  # hCG negative p41-obs20


def missing(doc: dict[str, Any], rule: str, criterion: str | None = None) -> list[dict[str, Any]]:
    flag = next(f for f in doc["flags"] if f["rule"] == rule)
    every = [m for r in flag["reasons"] for m in r["missing"]] + list(flag["missing"])
    return [m for m in every if criterion is None or m.get("criterion") == criterion]


def note(doc: dict[str, Any], code: str, rid: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [
        n for n in doc["data_quality"] if n["code"] == code and n["resource"] == f"Observation/{rid}"
    ]
    assert len(found) == 1, found
    return found[0]


def assert_unreadable(doc: dict[str, Any], rule: str, fact: str, rid: str, element: str) -> None:
    """``rule`` is indeterminate, and what it misses about ``fact`` is unreadable, pointing at the note."""
    assert status(doc)[rule] == "indeterminate", rule
    miss = [m for m in missing(doc, rule) if m["fact"] == fact]
    assert miss and all(m["reason"] == "unreadable" for m in miss), miss
    assert all(m["resource"] == f"Observation/{rid}" for m in miss)
    text = miss[0]["text"]["en"]
    assert "present but unreadable" in text and "see the data-quality note" in text and element in text
    assert "missing" not in text


def set_code(rid: str, code: str) -> Callable[[Bundle], None]:
    def change(b: Bundle) -> None:
        resource(b, rid)["valueCodeableConcept"]["coding"][0]["code"] = code

    return change


# ------------------------------------------------------------------ MSI and TMB


def test_msi_with_an_unknown_code_is_unreadable_not_missing() -> None:
    b = example(MSI_H)
    assert status(run(b))["F-ONLABEL-ANY"] == "flagged"  # MSI-H: on-label pembrolizumab
    set_code("p28-obs19", "LA00000-0")(b)
    doc = run(b)
    assert note(doc, "unknown-code", "p28-obs19")["element"] == "Observation.valueCodeableConcept"
    assert_unreadable(doc, "F-ONLABEL-ANY", "msi", "p28-obs19", "Observation.valueCodeableConcept")
    assert status(doc)["TRIAL-FOCUSE"] == "indeterminate"


@pytest.mark.parametrize(
    "quantity,element",
    [
        (
            {"value": 38.0, "unit": "mut/exome", "system": "http://unitsofmeasure.org", "code": "mut/exome"},
            "valueQuantity",
        ),
        ({"value": "38", "unit": "mut/Mb"}, "valueQuantity"),  # a number given as text
        ({"value": -3, "unit": "mut/Mb"}, "valueQuantity.value"),
    ],
)
def test_tmb_in_an_unknown_unit_or_type_is_unreadable_not_missing(quantity: dict[str, Any], element: str) -> None:
    b = example(MSI_H)
    b["entry"] = [e for e in b["entry"] if e["resource"].get("id") != "p28-obs19"]  # TMB alone decides
    without = copy.deepcopy(b)
    without["entry"] = [e for e in b["entry"] if e["resource"].get("id") != "p28-obs20"]
    assert status(run(b))["F-ACT"] == "flagged" and status(run(without))["F-ACT"] == "not_flagged"
    resource(b, "p28-obs20")["valueQuantity"] = quantity
    doc = run(b)
    assert [n for n in doc["data_quality"] if n["resource"] == "Observation/p28-obs20"]
    assert_unreadable(doc, "F-ACT", "tmb", "p28-obs20", f"Observation.{element}")


def test_an_unreadable_tmb_next_to_a_readable_low_one_is_unknown_not_low() -> None:
    b = example(MSI_H)
    b["entry"] = [e for e in b["entry"] if e["resource"].get("id") != "p28-obs19"]
    low = copy.deepcopy(resource(b, "p28-obs20"))
    low["id"] = "tmb-low"
    low["valueQuantity"]["value"] = 2.0
    b["entry"].append({"resource": low})
    resource(b, "p28-obs20")["valueQuantity"]["code"] = "mut/exome"
    resource(b, "p28-obs20")["valueQuantity"]["unit"] = "mut/exome"
    doc = run(b)
    assert status(doc)["F-ACT"] == "indeterminate"  # the unreadable one could be high
    resource(b, "p28-obs20")["valueQuantity"].update(code="1/1000000{Base}", unit="mut/Mb")
    b["entry"] = [e for e in b["entry"] if e["resource"].get("id") != "p28-obs20"]
    assert status(run(b))["F-ACT"] == "not_flagged"  # a readable low TMB alone decides


# ------------------------------------------------------------------ variant allele frequency


@pytest.mark.parametrize(
    "quantity,element",
    [
        ({"value": 0.46, "unit": "mmol", "system": "http://unitsofmeasure.org", "code": "mmol"}, "valueQuantity.code"),
        ({"value": 46, "unit": "1", "system": "http://unitsofmeasure.org", "code": "1"}, "component[5]"),
        ({"value": "0.46", "unit": "1"}, "component[5]"),
    ],
)
def test_variant_vaf_in_an_unreadable_form_is_unreadable_not_missing(quantity: dict[str, Any], element: str) -> None:
    b = example(TUMOUR_ONLY)
    assert status(run(b))["HER-2"] == "flagged"  # tumour-only BRCA2 with VAF >= 0.30
    comp = next(c for c in resource(b, "p20-obs7")["component"] if "81258-6" in json.dumps(c["code"]))
    comp["valueQuantity"] = quantity
    doc = run(b)
    assert [n for n in doc["data_quality"] if n["resource"] == "Observation/p20-obs7" and element in n["element"]]
    assert_unreadable(doc, "HER-2", "variant", "p20-obs7", element)
    miss = [m for m in missing(doc, "HER-2") if m["fact"] == "variant"]
    assert all(m["field"] == "vaf" for m in miss)
    assert "allele frequency" in miss[0]["text"]["en"].lower() or "vaf" in miss[0]["text"]["en"].lower()
    # a variant without any VAF is still "missing", not "unreadable"
    resource(b, "p20-obs7")["component"].remove(comp)
    miss = [m for m in missing(run(b), "HER-2") if m["fact"] == "variant"]
    assert miss and all(m["reason"] == "field" for m in miss)


# ------------------------------------------------------------------ a variant whose gene cannot be read

BRAF_V600E = "01-cholangio-braf-v600e-focuse-eligible.json"  # BRAF V600E, somatic, in p01-obs20


@pytest.mark.parametrize(
    "gene_coding",
    [
        {"system": "http://www.genenames.org", "code": "HGNC:99999999"},  # an HGNC id not in the table
        None,  # the gene component left out
    ],
    ids=["hgnc-id-not-in-table", "no-gene-component"],
)
def test_a_variant_whose_gene_cannot_be_read_leaves_the_trial_indeterminate_not_unflagged(
    gene_coding: dict[str, str] | None,
) -> None:
    b = example(BRAF_V600E)
    before = status(run(b))
    assert (before["TRIAL-FOCUSE"], before["HER-1"]) == ("flagged", "not_flagged")
    components = resource(b, "p01-obs20")["component"]
    if gene_coding is None:
        del components[0]
    else:
        components[0]["valueCodeableConcept"]["coding"] = [gene_coding]
    doc = run(b)
    assert note(doc, "missing-element", "p01-obs20")["element"] == "Observation.component"
    # the variant could be the BRAF V600E the cohort asks for: unknown, never "no such variant"
    assert_unreadable(doc, "TRIAL-FOCUSE", "variant", "p01-obs20", "Observation.component")
    assert doc["decisions"]["mdk"]["level"] != "national" and status(doc)["MDK-NAT-1"] == "indeterminate"
    # what is known of it still decides: a somatic variant is no germline finding, whatever its gene
    assert status(doc)["HER-1"] == "not_flagged"


def test_a_variant_that_fails_validation_is_unreadable_not_dropped() -> None:
    b = example(BRAF_V600E)
    # an empty display is not valid FHIR: the resource fails validation, and its gene cannot be trusted
    resource(b, "p01-obs20")["component"][0]["valueCodeableConcept"]["coding"][0]["display"] = ""
    doc = run(b)
    assert note(doc, "invalid-resource", "p01-obs20")
    # the BRAF V600E is on file but not to be trusted: the cohort is unknown, not "no such variant"
    assert_unreadable(doc, "TRIAL-FOCUSE", "variant", "p01-obs20", "")
    assert doc["decisions"]["mdk"]["level"] != "national" and status(doc)["MDK-NAT-1"] == "indeterminate"
    # what it says of itself still rules it out where it cannot count: a somatic variant is no germline finding
    assert status(doc)["HER-1"] == "not_flagged"


# ------------------------------------------------------------------ an IHC result not understood

HER2_IHC = "26-bile-duct-her2-ihc3-bilirubin-without-uln.json"  # HER2 IHC 3+ in p26-obs19


def test_an_ihc_result_not_understood_is_unreadable_not_missing() -> None:
    b = example(HER2_IHC)
    assert status(run(b))["F-ACT"] == "flagged"  # HER2 3+: an actionable target
    resource(b, "p26-obs19")["valueCodeableConcept"] = {"coding": [{"system": "http://loinc.org", "code": "LA9633-4"}]}
    doc = run(b)
    assert note(doc, "unknown-code", "p26-obs19")["element"] == "Observation.value[x]"
    assert_unreadable(doc, "F-ACT", "ihc", "p26-obs19", "Observation.value[x]")
    assert status(doc)["MDK-NAT-1"] == "indeterminate"
    # no result at all is missing data, not an unreadable one
    del resource(b, "p26-obs19")["valueCodeableConcept"]
    miss = [m for m in missing(run(b), "F-ACT") if m["fact"] == "ihc"]
    assert all(m["reason"] != "unreadable" for m in miss)


# ------------------------------------------------------------------ a TNM M category not understood

NSCLC_M1 = "29-nsclc-phase3-trial-candidate.json"  # cM1 in p29-obs3, a metastasis condition p29-cond2


def test_a_tnm_m_category_not_understood_is_unreadable_not_no_tnm_on_file() -> None:
    b = example(NSCLC_M1)
    b["entry"] = [e for e in b["entry"] if e["resource"].get("id") != "p29-cond2"]  # the TNM M alone decides
    assert status(run(b))["DQ-5"] == "not_flagged"  # extent on file
    resource(b, "p29-obs3")["valueCodeableConcept"] = {"coding": [{"system": "http://cancerstaging.org", "code": "Q9"}]}
    doc = run(b)
    assert note(doc, "unknown-code", "p29-obs3")["element"] == "Observation.valueCodeableConcept"
    # "no TNM M on file" would be false: it is on file, and unreadable
    assert_unreadable(doc, "DQ-5", "extent", "p29-obs3", "Observation.valueCodeableConcept")


# ------------------------------------------------------------------ pregnancy and clinical assessments


def test_pregnancy_status_with_an_unknown_code_is_unreadable_not_missing() -> None:
    b = example(NEG_HCG)
    assert status(run(b))["DQ-7"] == "not_flagged"
    set_code("p41-obs20", "LA00000-0")(b)
    doc = run(b)
    assert note(doc, "unknown-code", "p41-obs20")["element"] == "Observation.valueCodeableConcept"
    assert_unreadable(doc, "DQ-7", "pregnancy", "p41-obs20", "Observation.valueCodeableConcept")
    e3 = missing(doc, "TRIAL-FOCUSE", "TRIAL-E3")
    assert e3 and all(m["reason"] == "unreadable" for m in e3)  # "no known pregnancy" cannot be said
    # an older readable result does not stand in for the newer unreadable one
    older = copy.deepcopy(resource(b, "p41-obs20"))
    older["id"] = "hcg-older"
    older["effectiveDateTime"] = "2026-10-01"
    older["valueCodeableConcept"]["coding"][0]["code"] = "LA6577-6"
    b["entry"].append({"resource": older})
    assert status(run(b))["DQ-7"] == "indeterminate"


@pytest.mark.parametrize(
    "rid,change,element",
    [
        (
            "p01-obs8",
            {"valueCodeableConcept": {"coding": [{"system": "urn:mdtflag:assertion", "code": "mostly"}]}},
            "Observation.valueCodeableConcept",
        ),
        ("p01-obs8", {"valueString": "exhausted"}, "Observation.valueCodeableConcept"),
        ("p01-obs9", {"valueBoolean": "yes"}, "Observation.valueBoolean"),
    ],
)
def test_assertion_with_an_unknown_value_is_unreadable_not_missing(
    rid: str, change: dict[str, Any], element: str
) -> None:
    b = example(FOCUSE)
    assert status(run(b))["TRIAL-FOCUSE"] == "flagged"
    r = resource(b, rid)
    for key in [k for k in r if k.startswith("value")]:
        del r[key]
    r.update(change)
    doc = run(b)
    assert [n for n in doc["data_quality"] if n["resource"] == f"Observation/{rid}" and n["element"] == element]
    assert_unreadable(doc, "TRIAL-FOCUSE", "assertion", rid, element)


# ------------------------------------------------------------------ whether the patient is alive


@pytest.mark.parametrize("value", ["true", 1, {"value": True}])
def test_a_deceased_flag_not_understood_is_unknown_not_alive(value: Any) -> None:
    b = example()
    assert status(run(b))["TRIAL-FOCUSE"] == "flagged"
    patient = next(e["resource"] for e in b["entry"] if e["resource"]["resourceType"] == "Patient")
    patient["deceasedBoolean"] = value  # "true" may well mean the patient has died
    doc = run(b)
    assert any(n["code"] == "wrong-type" and n["element"] == "Patient.deceasedBoolean" for n in doc["data_quality"])
    for rule in ("TRIAL-FOCUSE", "MDK-NAT-1"):
        assert status(doc)[rule] == "indeterminate", rule
        miss = [m for m in missing(doc, rule) if m["fact"] == "patient"]
        assert miss and all((m["field"], m["reason"]) == ("deceased", "unreadable") for m in miss), miss
        assert all("Patient.deceasedBoolean" in m["text"]["en"] for m in miss)


# ------------------------------------------------------------------ whether a diagnosis is active


def test_a_clinical_status_not_understood_is_unknown_not_active() -> None:
    b = example()
    before = status(run(b))
    assert (before["TRIAL-FOCUSE"], before["MDK-NAT-1"]) == ("flagged", "flagged")
    system = "http://terminology.hl7.org/CodeSystem/condition-clinical"
    resource(b, "p01-cond1")["clinicalStatus"] = {"coding": [{"system": system, "code": "provisional"}]}
    doc = run(b)
    found = [n for n in doc["data_quality"] if n["resource"] == "Condition/p01-cond1" and n["code"] == "unknown-code"]
    assert found and found[0]["element"] == "Condition.clinicalStatus"
    # the primary diagnosis may or may not be active: the rules that need it are open, pointing at the status
    for rule in ("TRIAL-FOCUSE", "MDK-NAT-1"):
        assert status(doc)[rule] == "indeterminate", rule
        miss = [m for m in missing(doc, rule) if m["fact"] == "diagnosis"]
        assert miss and all((m["field"], m["reason"]) == ("active", "unreadable") for m in miss), miss
        assert all(
            m["resource"] == "Condition/p01-cond1" and "Condition.clinicalStatus" in m["text"]["en"] for m in miss
        )
    # a status understood decides: a recurrence is active
    resource(b, "p01-cond1")["clinicalStatus"]["coding"][0]["code"] = "recurrence"
    assert status(run(b)) == before


def test_a_verification_status_not_understood_is_unknown_not_unconfirmed() -> None:
    b = example()
    before = status(run(b))
    assert before["TRIAL-FOCUSE"] == "flagged"
    system = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
    resource(b, "p01-cond1")["verificationStatus"] = {"coding": [{"system": system, "code": "CONFIRMED"}]}
    doc = run(b)
    found = [n for n in doc["data_quality"] if n["resource"] == "Condition/p01-cond1" and n["code"] == "unknown-code"]
    assert found and found[0]["element"] == "Condition.verificationStatus"
    # it may be confirmed, or refuted or entered in error: the diagnosis the cohort and the national MDK rest on
    # is present but unreadable, so they are open
    for rule in ("TRIAL-FOCUSE", "MDK-NAT-1"):
        assert status(doc)[rule] == "indeterminate", rule
    miss = [m for m in missing(doc, "TRIAL-FOCUSE") if m["fact"] == "diagnosis"]
    assert miss and all(m["reason"] == "unreadable" and m["resource"] == "Condition/p01-cond1" for m in miss)
    assert all("Condition.verificationStatus" in m["text"]["en"] for m in miss)
    # a status understood decides either way
    resource(b, "p01-cond1")["verificationStatus"]["coding"][0]["code"] = "confirmed"
    assert status(run(b)) == before
    resource(b, "p01-cond1")["verificationStatus"]["coding"][0]["code"] = "provisional"
    assert status(run(b))["TRIAL-FOCUSE"] == "not_flagged"


# ------------------------------------------------------------------ whether a drug was given

PRIOR_TRASTUZUMAB = "04-rectal-erbb2-amp-prior-trastuzumab.json"  # trastuzumab given before: p04-med7


@pytest.mark.parametrize("value", ["given", 7])
def test_a_medication_status_not_understood_is_unknown_not_never_given(value: Any) -> None:
    b = example(PRIOR_TRASTUZUMAB)
    assert status(run(b))["TRIAL-FOCUSE"] == "not_flagged"  # the cohort's drug was given before
    resource(b, "p04-med7")["status"] = value
    doc = run(b)
    assert any(n["resource"] == "MedicationStatement/p04-med7" for n in doc["data_quality"])
    # it may have been given: the cohort is open, pointing at the medication, never "not given"
    assert status(doc)["TRIAL-FOCUSE"] == "indeterminate"
    miss = [m for m in missing(doc, "TRIAL-FOCUSE") if m["fact"] == "medication"]
    assert miss and all(m["reason"] == "unreadable" for m in miss), miss
    assert all(m["resource"] == "MedicationStatement/p04-med7" for m in miss)
    # a status understood decides: not taken is not given
    resource(b, "p04-med7")["status"] = "not-taken"
    assert status(run(b))["TRIAL-FOCUSE"] != "indeterminate" or not [
        m for m in missing(run(b), "TRIAL-FOCUSE") if m["fact"] == "medication"
    ]


# ------------------------------------------------------------------ whether a molecular report is final

OVARIAN_PANEL = "20-ovarian-tumour-only-brca2-possible-germline.json"  # GMS560 panel report: p20-dr9


@pytest.mark.parametrize("value", ["qqq", "FINAL"])
def test_a_report_status_not_understood_is_unknown_not_preliminary(value: str) -> None:
    b = example(OVARIAN_PANEL)
    before = status(run(b))
    assert before["MDK-REG-1"] == "flagged"  # a broad panel, final, read at the regional MDK
    resource(b, "p20-dr9")["status"] = value
    doc = run(b)
    found = [n for n in doc["data_quality"] if n["resource"] == "DiagnosticReport/p20-dr9"]
    assert [(n["code"], n["element"]) for n in found] == [("unknown-code", "DiagnosticReport.status")]
    # the report may be final: the regional MDK is open, pointing at the report's status, never "no final report"
    assert status(doc)["MDK-REG-1"] == "indeterminate"
    miss = [m for m in missing(doc, "MDK-REG-1") if m["fact"] == "genomic_report"]
    assert miss and all(m["reason"] == "unreadable" and m["resource"] == "DiagnosticReport/p20-dr9" for m in miss)
    assert all("DiagnosticReport.status" in m["text"]["en"] for m in miss)
    # a status understood decides: amended is final, preliminary is not
    resource(b, "p20-dr9")["status"] = "amended"
    assert status(run(b)) == before
    resource(b, "p20-dr9")["status"] = "preliminary"
    assert status(run(b))["MDK-REG-1"] == "not_flagged"


# ------------------------------------------------------------------ a trial candidacy's phase and status

PHASE3_CANDIDATE = "29-nsclc-phase3-trial-candidate.json"  # candidate (p29-rs8) in a phase-3 study (p29-study7)
PHASE = "http://terminology.hl7.org/CodeSystem/research-study-phase"


@pytest.mark.parametrize(
    ("rid", "change", "field", "element"),
    [
        ("p29-study7", {"phase": {"coding": [{"system": PHASE, "code": "phase-3X9"}]}}, "phase", "p29-study7.phase"),
        ("p29-study7", {"phase": {"text": "fas III"}}, "phase", "p29-study7.phase"),
        ("p29-rs8", {"status": "kandidat"}, "status", "ResearchSubject.status"),
    ],
)
def test_a_trial_phase_or_candidacy_not_understood_is_unknown_not_missing(
    rid: str, change: dict[str, Any], field: str, element: str
) -> None:
    b = example(PHASE3_CANDIDATE)
    before = status(run(b))
    assert before["MDK-NAT-2"] == "flagged"
    resource(b, rid).update(change)
    doc = run(b)
    assert any(n["code"] == "unknown-code" and n["resource"].endswith(rid) for n in doc["data_quality"])
    # it may be a phase-3 candidacy: the national MDK is open, pointing at the value on file
    assert status(doc)["MDK-NAT-2"] == "indeterminate"
    miss = [m for m in missing(doc, "MDK-NAT-2") if m["fact"] == "trial_candidacy"]
    assert miss and all((m["field"], m["reason"]) == (field, "unreadable") for m in miss), miss
    assert all(m["resource"] == "ResearchSubject/p29-rs8" and element in m["text"]["en"] for m in miss)
    # a value understood decides: phase 2 and an ineligible candidacy do not count
    resource(b, rid).update(
        {"phase": {"coding": [{"system": PHASE, "code": "phase-2"}]}} if field == "phase" else {"status": "ineligible"}
    )
    assert status(run(b))["MDK-NAT-2"] == "not_flagged"


# ------------------------------------------------------------------ a gene under a component code not understood

NTRK_FUSION = "03-colon-ntrk1-fusion-tumour-agnostic-label.json"  # TPM3-NTRK1 fusion: p03-obs18


@pytest.mark.parametrize("code", [{"system": "http://loinc.org", "code": "48018-6X9"}, {"code": "gene"}])
def test_a_fusion_gene_under_a_code_not_understood_is_unknown_not_dropped(code: dict[str, str]) -> None:
    b = example(NTRK_FUSION)
    assert status(run(b))["F-ACT"] == "flagged"  # an actionable NTRK1 fusion
    ntrk1 = resource(b, "p03-obs18")["component"][1]
    assert ntrk1["valueCodeableConcept"]["coding"][0]["display"] == "NTRK1"
    ntrk1["code"] = {"coding": [code]}
    doc = run(b)
    found = [n for n in doc["data_quality"] if n["resource"] == "Observation/p03-obs18"]
    assert [(n["code"], n["element"]) for n in found] == [("unknown-code", "Observation.component[1].code")]
    # the fusion's second gene is on file but not read: an NTRK fusion is unknown, never "no actionable variant"
    for rule in ("F-ACT", "F-ONLABEL-ANY", "MDK-REG-1"):
        assert status(doc)[rule] == "indeterminate", rule
    miss = [m for m in missing(doc, "F-ACT") if m["fact"] == "variant"]
    assert miss and all(m["reason"] == "unreadable" and m["resource"] == "Observation/p03-obs18" for m in miss)
    assert all("Observation.component[1].code" in m["text"]["en"] for m in miss)


def test_an_absent_variant_with_a_gene_under_a_code_not_understood_changes_nothing() -> None:
    b = example(NTRK_FUSION)
    obs = resource(b, "p03-obs18")
    obs["valueCodeableConcept"]["coding"][0]["code"] = "LA9634-2"  # tested and absent
    before = status(run(b))
    obs["component"][1]["code"] = {"coding": [{"code": "gene"}]}
    assert status(run(b)) == before


# ------------------------------------------------------------------ which assay a molecular report is from

MELANOMA_PANEL = "02-melanoma-braf-v600e-on-label.json"  # GMS560 panel report: p02-dr17


@pytest.mark.parametrize(
    ("coding", "code"),
    [
        ({"system": "urn:mdtflag:assay", "code": "gms560"}, "unknown-code"),  # the assay system, a code not known
        ({"system": "http://lab.example.org/test-codes", "code": "NGS-SOLID-2"}, "unmapped-code"),  # a lab's own
    ],
)
def test_an_assay_code_not_understood_leaves_breadth_unknown_not_narrow(coding: dict[str, str], code: str) -> None:
    b = example(MELANOMA_PANEL)
    before = status(run(b))
    assert (before["MDK-REG-1"], before["DQ-3"]) == ("flagged", "not_flagged")
    resource(b, "p02-dr17")["code"]["coding"][1] = coding
    doc = run(b)
    found = [n for n in doc["data_quality"] if n["resource"] == "DiagnosticReport/p02-dr17"]
    assert [(n["code"], n["element"]) for n in found] == [(code, "DiagnosticReport.code.coding[1]")]
    # the report may be a broad profile: "no broad profile" is unknown, never met; the regional MDK is open
    assert (status(doc)["MDK-REG-1"], status(doc)["DQ-3"]) == ("indeterminate", "indeterminate")
    miss = [m for m in missing(doc, "DQ-3") if m["fact"] == "genomic_report"]
    assert miss and all((m["field"], m["reason"]) == ("broad", "unreadable") for m in miss), miss
    assert all("DiagnosticReport.code.coding[1]" in m["text"]["en"] for m in miss)
    # a code the terminology maps decides
    resource(b, "p02-dr17")["code"]["coding"][1] = {"system": "https://www.gensop.com", "code": "XT.V4"}
    assert status(run(b)) == before


def test_a_report_coded_with_the_gene_it_studies_is_not_an_unknown_test() -> None:
    b = example(MELANOMA_PANEL)
    resource(b, "p02-dr17")["code"]["coding"][1] = {"system": "http://www.genenames.org", "code": "HGNC:1097"}
    doc = run(b)
    assert not [n for n in doc["data_quality"] if n["resource"] == "DiagnosticReport/p02-dr17"]
    assert status(doc)["DQ-3"] == "flagged"  # a single-gene test is no broad profile


# ------------------------------------------------------------------ a protein change that is not HGVS

BRAF_AFTER_TREATMENT = "27-colon-braf-v600e-after-encorafenib-cetuximab.json"  # BRAF V600E: p27-obs21


@pytest.mark.parametrize("text", ["p.V600EX9", "p.V600", "p.v600e"])
def test_a_protein_change_that_is_not_hgvs_is_unreadable_not_another_variant(text: str) -> None:
    b = example(BRAF_AFTER_TREATMENT)
    assert status(run(b))["TRIAL-FOCUSE"] == "flagged"
    comp = next(c for c in resource(b, "p27-obs21")["component"] if c["code"]["coding"][0]["code"] == "48005-3")
    comp["valueCodeableConcept"]["coding"][0]["code"] = text
    doc = run(b)
    found = [n for n in doc["data_quality"] if n["resource"] == "Observation/p27-obs21"]
    assert [n["code"] for n in found] == ["invalid-code"]
    # it may be V600E: the BRAF V600 cohort is open, pointing at the protein change, never "another BRAF variant"
    for rule in ("TRIAL-FOCUSE", "F-ACT"):
        assert status(doc)[rule] == "indeterminate", rule
    miss = [m for m in missing(doc, "TRIAL-FOCUSE") if m["fact"] == "variant"]
    assert miss and all((m["field"], m["reason"]) == ("protein", "unreadable") for m in miss), miss


# ------------------------------------------------------------------ a resource status not understood


@pytest.mark.parametrize(
    ("file", "rid", "rt", "bad", "good", "rule", "fact"),
    [
        (FOCUSE, "p01-obs11", "Observation", "FINAL", "amended", "TRIAL-FOCUSE", "ecog"),
        (
            "19-breast-germline-brca1-already-referred.json",
            "p19-sr5",
            "ServiceRequest",
            "aktiv",
            "completed",
            "HER-1",
            "assertion",
        ),
        (
            "31-breast-family-history-breast-and-ovarian.json",
            "p31-fmh3",
            "FamilyMemberHistory",
            "qqq",
            "partial",
            "HER-3",
            "family_history",
        ),
    ],
)
def test_a_resource_status_not_understood_makes_what_it_says_unreadable(
    file: str, rid: str, rt: str, bad: str, good: str, rule: str, fact: str
) -> None:
    b = example(file)
    before = status(run(b))
    assert before[rule] in ("flagged", "not_flagged")
    resource(b, rid)["status"] = bad  # it may be entered-in-error or cancelled: what it says cannot be relied on
    doc = run(b)
    found = [n for n in doc["data_quality"] if n["resource"] == f"{rt}/{rid}"]
    assert [(n["code"], n["element"]) for n in found] == [("unknown-code", f"{rt}.status")]
    assert status(doc)[rule] == "indeterminate"
    miss = [m for m in missing(doc, rule) if m["fact"] == fact]
    assert miss and all(m["reason"] == "unreadable" and m["resource"] == f"{rt}/{rid}" for m in miss), miss
    resource(b, rid)["status"] = good  # a status understood reads as before
    assert status(run(b)) == before


# ------------------------------------------------------------------ a result's code mistyped, or in another system

HCG_POSITIVE = "37-cholangio-braf-positive-hcg.json"  # a positive hCG (p37-obs20, LOINC 21198-7) excludes the cohort
MET_AMPLIFIED = "07-nsclc-met-amp-brain-mets-stable-treated.json"  # MET copy number 82155-3 in p07-obs9 component[2]


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("code", "21198-7X9", "invalid-code"),  # not a LOINC code, but a LOINC code mdtflag reads at its start
        ("code", "21198-8", "invalid-code"),  # the check digit is wrong
        ("system", "http://loinc.orgX9", "unknown-code-system"),  # the LOINC code under another system
        ("system", None, "unknown-code-system"),  # ... or none
    ],
)
def test_a_result_whose_code_is_mistyped_is_unreadable_not_dropped(field: str, value: str | None, code: str) -> None:
    b = example(HCG_POSITIVE)
    before = status(run(b))
    assert before["TRIAL-FOCUSE"] == "not_flagged"  # excluded: positive pregnancy test
    coding = resource(b, "p37-obs20")["code"]["coding"][0]
    if value is None:
        del coding[field]
    else:
        coding[field] = value
    doc = run(b)
    found = [n for n in doc["data_quality"] if n["resource"] == "Observation/p37-obs20"]
    assert [(n["code"], n["element"]) for n in found] == [(code, "Observation.code.coding[0]")]
    # it may be the positive hCG: the exclusion is unknown, never "no known pregnancy"
    assert status(doc)["TRIAL-FOCUSE"] == "indeterminate"
    miss = [m for m in missing(doc, "TRIAL-FOCUSE") if m["fact"] == "pregnancy"]
    assert miss and all(m["reason"] == "unreadable" and m["resource"] == "Observation/p37-obs20" for m in miss)


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [("code", "82155-3X9", "invalid-code"), ("system", "urn:other:x", "unknown-code-system")],
)
def test_a_variant_component_whose_code_is_mistyped_is_unreadable_not_dropped(
    field: str, value: str, code: str
) -> None:
    b = example(MET_AMPLIFIED)
    assert status(run(b))["F-ACT"] == "flagged"  # MET amplification, copy number on file
    comp = resource(b, "p07-obs9")["component"][2]
    assert comp["code"]["coding"][0]["code"] == "82155-3"
    comp["code"]["coding"][0][field] = value
    doc = run(b)
    found = [n for n in doc["data_quality"] if n["resource"] == "Observation/p07-obs9"]
    assert [(n["code"], n["element"]) for n in found] == [(code, "Observation.component[2].code")]
    assert status(doc)["F-ACT"] == "indeterminate"
    miss = [m for m in missing(doc, "F-ACT") if m["fact"] == "variant"]
    assert miss and all((m["field"], m["reason"]) == ("copy_number", "unreadable") for m in miss), miss


def test_a_code_that_is_not_loinc_and_names_nothing_read_is_only_noted() -> None:
    b = example()
    resource(b, "p01-obs11")["code"]["coding"] = [{"system": "http://loinc.org", "code": "ECOG"}]
    doc = run(b)
    found = [n for n in doc["data_quality"] if n["resource"] == "Observation/p01-obs11"]
    assert [n["code"] for n in found] == ["invalid-code"]
    # nothing says which result it is: it is not read, and the ECOG is missing (absent), not unreadable
    miss = [m for m in missing(doc, "TRIAL-FOCUSE") if m["fact"] == "ecog"]
    assert miss and all(m["reason"] != "unreadable" for m in miss), miss


@pytest.mark.parametrize("code", ["69548-6", "2160-0", "718-7", "48018-6", "94076-7", "21198-7", "51969-4"])
def test_loinc_check_digits(code: str) -> None:
    from mdtflag.fhir.facts.parse import loinc_prefix, loinc_valid

    assert loinc_valid(code)
    stem, digit = code.split("-")
    assert not any(loinc_valid(f"{stem}-{d}") for d in "0123456789" if d != digit)
    assert loinc_prefix(code + "X9") == code and loinc_prefix("X" + code) is None
    assert loinc_prefix(f"{stem}-{(int(digit) + 1) % 10}") == code  # the number with its right check digit


# ------------------------------------------------------------------ a relative's relationship not understood

FAMILY_BREAST_OVARIAN = "31-breast-family-history-breast-and-ovarian.json"  # mother with ovarian cancer: p31-fmh3
ROLE = "http://terminology.hl7.org/CodeSystem/v3-RoleCode"


@pytest.mark.parametrize(
    ("coding", "code"),
    [
        ({"system": ROLE, "code": "MTHX9"}, "unknown-code"),  # not a RoleCode family-member code
        ({"system": ROLE, "code": "FAMMEMB"}, "unknown-code"),  # a family member, degree not stated
        ({"system": "urn:example:relatives", "code": "mor"}, "unknown-code-system"),  # another code system
    ],
)
def test_a_relationship_not_understood_leaves_the_degree_unknown_not_distant(coding: dict[str, str], code: str) -> None:
    b = example(FAMILY_BREAST_OVARIAN)
    assert status(run(b))["HER-3"] == "flagged"
    resource(b, "p31-fmh3")["relationship"]["coding"] = [coding]
    doc = run(b)
    found = [n for n in doc["data_quality"] if n["resource"] == "FamilyMemberHistory/p31-fmh3"]
    assert [(n["code"], n["element"]) for n in found] == [(code, "FamilyMemberHistory.relationship")]
    # the relative may be a close one: the hereditary referral is open, pointing at the relationship
    assert status(doc)["HER-3"] == "indeterminate"
    miss = [m for m in missing(doc, "HER-3") if m["fact"] == "family_history"]
    assert miss and all((m["field"], m["reason"]) == ("degree", "unreadable") for m in miss), miss


@pytest.mark.parametrize(("code", "flagged"), [("TWINSIS", True), ("HSIS", True), ("STPMTH", False), ("COUSN", False)])
def test_a_known_relationship_decides_the_degree(code: str, flagged: bool) -> None:
    b = example(FAMILY_BREAST_OVARIAN)
    resource(b, "p31-fmh3")["relationship"]["coding"][0]["code"] = code
    doc = run(b)
    assert not [n for n in doc["data_quality"] if n["resource"] == "FamilyMemberHistory/p31-fmh3"]
    assert status(doc)["HER-3"] == ("flagged" if flagged else "not_flagged")


# ------------------------------------------------------------------ a referral coded almost as mdtflag reads it

ALREADY_REFERRED = "19-breast-germline-brca1-already-referred.json"  # referral on file: p19-sr5


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("system", "urn:example:orders"),
        ("code", "CANCER-GENETICS-REFERRAL"),
        ("system", None),
        ("code", "cancer-genetics-referal"),  # an assertion code mdtflag does not know
    ],
)
def test_a_referral_coded_in_another_case_or_system_is_unknown_not_absent(field: str, value: str | None) -> None:
    b = example(ALREADY_REFERRED)
    before = status(run(b))
    assert before["HER-1"] == "not_flagged"  # already referred: no new referral flag
    coding = resource(b, "p19-sr5")["code"]["coding"][0]
    if value is None:
        del coding[field]
    else:
        coding[field] = value
    doc = run(b)
    found = [n for n in doc["data_quality"] if n["resource"] == "ServiceRequest/p19-sr5"]
    assert [(n["code"], n["element"]) for n in found] == [("unknown-code", "ServiceRequest.code")]
    assert status(doc)["HER-1"] == "indeterminate"
    miss = [m for m in missing(doc, "HER-1") if m["fact"] == "assertion"]
    assert miss and all(m["reason"] == "unreadable" and m["resource"] == "ServiceRequest/p19-sr5" for m in miss)
    # another order altogether is not a referral
    coding.update({"system": "urn:example:orders", "code": "ct-thorax"})
    assert status(run(b))["HER-1"] == "flagged"


def test_an_assay_code_not_understood_leaves_which_assay_unknown() -> None:
    b = example("16-child-medulloblastoma-wgs-done.json")
    assert status(run(b))["PED-WGS-1"] == "not_flagged"  # WGS done
    resource(b, "p16-dr2")["code"]["coding"][1]["code"] = "wgs"
    doc = run(b)
    assert status(doc)["PED-WGS-1"] == "indeterminate"  # it may be the WGS: never "no WGS reported"
    miss = [m for m in missing(doc, "PED-WGS-1") if m["fact"] == "genomic_report"]
    assert miss and all((m["field"], m["reason"]) == ("assay", "unreadable") for m in miss), miss


def test_a_histology_observation_whose_status_is_not_understood_does_not_confirm_histology() -> None:
    def with_histology_observation(obs_status: str) -> Bundle:
        b = example()
        del resource(b, "p01-cond1")["extension"]  # the morphology now comes only from the Observation
        obs = {
            "resourceType": "Observation",
            "id": "p01-histo",
            "status": obs_status,
            "code": {"coding": [{"system": "http://loinc.org", "code": "31206-6"}]},
            "subject": {"reference": "Patient/p01"},
            "focus": [{"reference": "Condition/p01-cond1"}],
            "effectiveDateTime": "2025-02-19",
            "valueCodeableConcept": {
                "coding": [{"system": "http://terminology.hl7.org/CodeSystem/icd-o-3", "code": "8160/3"}]
            },
        }
        b["entry"].append({"fullUrl": "urn:uuid:5f0c7e4e-histology", "resource": obs})
        return b

    assert status(run(with_histology_observation("final")))["TRIAL-FOCUSE"] == "flagged"
    doc = run(with_histology_observation("FINAL"))
    assert [n["code"] for n in doc["data_quality"] if n["resource"] == "Observation/p01-histo"] == ["unknown-code"]
    assert status(doc)["TRIAL-FOCUSE"] == "indeterminate"
    miss = [m for m in missing(doc, "TRIAL-FOCUSE") if m["fact"] == "diagnosis"]
    assert miss and all((m["field"], m["reason"]) == ("histology_confirmed", "unreadable") for m in miss), miss
    assert all("Observation/p01-histo.status" in m["text"]["en"] for m in miss)


def test_a_negative_copy_number_is_unreadable_not_below_the_threshold() -> None:
    b = example(PRIOR_TRASTUZUMAB)  # ERBB2 amplification, copy number 14 in p04-obs19 component[2]
    assert status(run(b))["F-ACT"] == "flagged"
    quantity = resource(b, "p04-obs19")["component"][2]["valueQuantity"]
    assert quantity["value"] == 14
    quantity["value"] = -14
    doc = run(b)
    found = [n for n in doc["data_quality"] if n["resource"] == "Observation/p04-obs19"]
    assert [(n["code"], n["element"]) for n in found] == [("out-of-range", "Observation.component[2].valueQuantity")]
    assert status(doc)["F-ACT"] == "indeterminate"
    miss = [m for m in missing(doc, "F-ACT") if m["fact"] == "variant"]
    assert miss and all((m["field"], m["reason"]) == ("copy_number", "unreadable") for m in miss), miss
