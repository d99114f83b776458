"""Condition: diagnoses, extent from secondary neoplasms and stage groups, pregnancy conditions;
and the pathology DiagnosticReports that confirm a diagnosis histologically."""
from __future__ import annotations

from typing import Any, Optional

from mdtflag.fhir.facts.codes import (
    ICD10_OIDS,
    IGNORED_STATUS,
    INACTIVE_CLINICAL,
    LOINC,
    MALIGNANT_SNOMED,
    PATHOLOGY_LOINC,
    PATHOLOGY_SECTIONS,
    PREGNANCY_SNOMED,
    SECONDARY_SNOMED,
    SNOMED,
    SNOMED_SITE,
    V2_0074,
)
from mdtflag.fhir.facts.context import Extraction, Resource
from mdtflag.fhir.facts.models import DiagnosisFact, Evidence, ExtentFact, PregnancyFact
from mdtflag.fhir.facts.parse import (
    as_dict,
    as_list,
    codings,
    icd10_classes,
    icdo3,
    normalise_icd10,
    stage_iv_value,
    status_code,
    status_of,
    years_between,
)


def prepare_report(x: Extraction, res: Resource, name: str, i: int) -> None:
    """Mark pathology reports and the Conditions they refer to (for histology_confirmed)."""
    pathology = any(s == V2_0074 and c in PATHOLOGY_SECTIONS
                    for cat in as_list(res.get("category")) for s, c, _ in codings(cat))
    pathology = pathology or any(s == LOINC and c in PATHOLOGY_LOINC
                                 for s, c, _ in codings(res.get("code")))
    if not pathology or status_of(res) in IGNORED_STATUS:
        return
    x.pathology_reports.add(id(res))
    # references from the report to conditions (extensions, supportingInfo, ...)
    stack: list[Any] = [v for k, v in res.items() if k not in ("subject", "performer", "result")]
    while stack:
        node = stack.pop()
        if type(node) is dict:
            target, _ = x.resolve(node)
            if target is not None and target.get("resourceType") == "Condition":
                x.pathology_conditions.add(id(target))
            stack.extend(v for v in node.values() if type(v) is dict or type(v) is list)
        elif type(node) is list:
            stack.extend(node)


def read_condition(x: Extraction, res: Resource, name: str, i: int) -> None:
    vs_raw = res.get("verificationStatus")
    if vs_raw is not None and type(vs_raw) is not dict:
        x.note("wrong-type", "Condition.verificationStatus is not a CodeableConcept",
               name, "Condition.verificationStatus")
    vs = status_code(vs_raw)
    if vs in ("refuted", "entered-in-error"):
        x.note("ignored-status", f"{name} has verificationStatus {vs}; ignored", name,
               "Condition.verificationStatus")
        return
    cs_raw = res.get("clinicalStatus")
    if cs_raw is not None and type(cs_raw) is not dict:
        x.note("wrong-type", "Condition.clinicalStatus is not a CodeableConcept", name,
               "Condition.clinicalStatus")
    cs = status_code(cs_raw)
    code = read_condition_code(x, res.get("code"), name, "Condition.code")
    if code is None:
        return
    icd10, snomed, topo, morph, ev = code
    has_histology_ext = False
    for j, ext in enumerate(as_list(res.get("extension"))):
        url = as_dict(ext).get("url")
        if type(url) is str and url.endswith("mcode-histology-morphology-behavior"):
            has_histology_ext = True
            element = f"Condition.extension[{j}].valueCodeableConcept"
            for s, c, _ in codings(ext.get("valueCodeableConcept")):
                if "icd-o" in s and morph is None:
                    _, morph = icdo3(c)
                ev.append(Evidence(resource=name, element=element, value=f"{s}|{c}"))
    cancer = secondary = pregnancy = False
    site = None
    if icd10:
        cancer, secondary, pregnancy = icd10_classes(icd10)
        if secondary:
            site = ("liver" if icd10.startswith("C78.7") else
                    "brain" if icd10.startswith("C79.3") else None)
    if snomed:
        if snomed in SECONDARY_SNOMED:
            cancer = secondary = True
            site = site or SNOMED_SITE.get(snomed)
        elif snomed in MALIGNANT_SNOMED:
            cancer = True
        pregnancy = pregnancy or snomed in PREGNANCY_SNOMED
    behaviour = morph[-1] if morph else None
    if behaviour in ("3", "6"):
        cancer = True
    if behaviour == "6":
        secondary = True
    if secondary and site is None:
        site = "other"
    if cs is None and ("abatementDateTime" in res or "abatementPeriod" in res
                       or "abatementAge" in res or "abatementString" in res):
        active = False
    else:
        active = cs not in INACTIVE_CLINICAL
    confirmed = vs == "confirmed"
    pathology = (id(res) in x.pathology_conditions
                 or condition_has_pathology_evidence(x, res))
    histology = confirmed and (has_histology_ext or behaviour == "3" or pathology)
    onset, onset_el = None, None
    for key in ("onsetDateTime", "onsetPeriod", "recordedDate"):
        if key in res:
            raw = res[key]
            if key == "onsetPeriod":
                raw = as_dict(raw).get("start")
                key = "onsetPeriod.start"
            onset = x.date_of(raw, name, f"Condition.{key}")
            if onset is not None:
                onset_el = f"Condition.{key}"
                ev.append(Evidence(resource=name, element=onset_el, value=str(raw)))
                break
    if vs:
        ev.append(Evidence(resource=name, element="Condition.verificationStatus", value=vs))
    if cs:
        ev.append(Evidence(resource=name, element="Condition.clinicalStatus", value=cs))
    evidence = tuple(ev)
    x.add("diagnosis", (i, 0), DiagnosisFact(
        icd10=icd10, icd10_3=icd10[:3] if icd10 else None, snomed=snomed,
        icdo3_topography=topo, morphology=morph, cancer=cancer, secondary=secondary,
        metastasis_site=site, active=active, confirmed=confirmed,
        histology_confirmed=histology, onset=onset, onset_days_ago=x.days_ago(onset),
        age_at_onset=years_between(x.birth, onset) if x.birth and onset else None,
        evidence=evidence))
    if secondary:
        x.add("extent", (i, 0), ExtentFact(value="metastatic", source="secondary-condition",
                                           date=onset, evidence=evidence))
    for j, stage in enumerate(as_list(res.get("stage"))):
        summary = as_dict(stage).get("summary")
        hit = stage_iv_value(summary)
        if hit:
            x.add("extent", (i, 1 + j), ExtentFact(
                value="metastatic", source="stage-group", date=None, evidence=(Evidence(
                    resource=name, element=f"Condition.stage[{j}].summary", value=hit),)))
    if pregnancy and active:
        x.add("pregnancy", (i, 0), PregnancyFact(
            status="pregnant", source="condition", date=onset,
            age_days=x.days_ago(onset), evidence=evidence))


def condition_has_pathology_evidence(x: Extraction, res: Resource) -> bool:
    for ev in as_list(res.get("evidence")):
        for detail in as_list(as_dict(ev).get("detail")):
            target, _ = x.resolve(detail)
            if target is not None and id(target) in x.pathology_reports:
                return True
    return False


#: (ICD-10, SNOMED CT, ICD-O-3 topography, ICD-O-3 morphology, evidence) of a diagnosis code.
ConditionCode = tuple[Optional[str], Optional[str], Optional[str], Optional[str], list[Evidence]]


def read_condition_code(x: Extraction, cc: object, name: str, element: str) -> ConditionCode | None:
    """(icd10, snomed, topography, morphology, evidence) or None (with a note)."""
    if cc is None:
        x.note("missing-element", f"{element} is absent", name, element)
        return None
    if type(cc) is not dict:
        x.note("wrong-type", f"{element} is not a CodeableConcept", name, element)
        return None
    icd10 = snomed = topo = morph = None
    ev: list[Evidence] = []
    other: list[str] = []
    for j, (s, c, _) in enumerate(codings(cc)):
        el = f"{element}.coding[{j}]"
        if "icd-10" in s or s in ICD10_OIDS:
            norm = normalise_icd10(c)
            if norm is None:
                x.note("invalid-code", f"{element} ICD-10 code {c[:20]!r} is not of ICD-10 "
                       f"form", name, el)
            elif icd10 is None:
                icd10 = norm
                ev.append(Evidence(resource=name, element=el, value=f"{s}|{c}"))
        elif s == SNOMED:
            if c.isdigit():
                if snomed is None:
                    snomed = c
                    ev.append(Evidence(resource=name, element=el, value=f"{s}|{c}"))
            else:
                x.note("invalid-code", f"SNOMED CT code {c[:20]!r} is not numeric", name, el)
        elif "icd-o" in s:
            t, m = icdo3(c)
            if t is None and m is None:
                x.note("invalid-code", f"ICD-O-3 code {c[:20]!r} is neither a topography "
                       f"nor a morphology", name, el)
            topo = topo or t
            morph = morph or m
            if t or m:
                ev.append(Evidence(resource=name, element=el, value=f"{s}|{c}"))
        else:
            other.append(s or "(no system)")
    if not (icd10 or snomed or topo or morph):
        if other:
            x.note("unknown-code-system", f"{element} has no ICD-10, SNOMED CT or ICD-O-3 "
                   f"code (systems: {', '.join(sorted(set(other)))[:200]})", name, element)
        else:
            x.note("missing-element", f"{element} has no usable coding", name, element)
        return None
    return icd10, snomed, topo, morph, ev
