"""Condition: diagnoses, extent from secondary neoplasms and stage groups, pregnancy conditions;
and the pathology DiagnosticReports that confirm a diagnosis histologically."""

from __future__ import annotations

from datetime import date as Date
from decimal import Decimal
from typing import Any, Optional

from mdtflag.fhir.facts.codes import (
    CLINICAL_STATUS,
    ICD10,
    ICD10_OIDS,
    ICDO3,
    IGNORED_STATUS,
    INACTIVE_CLINICAL,
    LOINC,
    NON_MALIGNANT_VS,
    PATHOLOGY_LOINC,
    PATHOLOGY_SECTIONS,
    SNOMED,
    V2_0074,
    VERIFICATION_STATUS,
)
from mdtflag.fhir.facts.context import MAX_AGE_YEARS, Extraction, Resource
from mdtflag.fhir.facts.mcode import histology_index
from mdtflag.fhir.facts.models import DiagnosisFact, Evidence, ExtentFact, PregnancyFact
from mdtflag.fhir.facts.parse import (
    as_dict,
    as_list,
    codings,
    icd10_classes,
    icdo3,
    normalise_icd10,
    number,
    parse_date,
    stage_iv_value,
    status_code,
    status_of,
    string,
    years_between,
)


def prepare_report(x: Extraction, res: Resource, name: str, i: int) -> None:
    """Mark pathology reports and the Conditions they refer to (for histology_confirmed)."""
    pathology = any(
        s == V2_0074 and c in PATHOLOGY_SECTIONS for cat in as_list(res.get("category")) for s, c, _ in codings(cat)
    )
    pathology = pathology or any(s == LOINC and c in PATHOLOGY_LOINC for s, c, _ in codings(res.get("code")))
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
        x.note(
            "wrong-type",
            "Condition.verificationStatus is not a CodeableConcept: whether the diagnosis is confirmed is unknown",
            name,
            "Condition.verificationStatus",
        )
    vs = status_code(vs_raw)
    vs_unread = vs_raw is not None and vs not in VERIFICATION_STATUS  # present, not understood: confirmed unknown
    if vs_unread and type(vs_raw) is dict:
        x.note(
            "unknown-code",
            f"Condition.verificationStatus {str(vs)[:40]!r} is not a condition-ver-status code: it may be "
            "refuted or entered in error, so what the diagnosis says is present but unreadable",
            name,
            "Condition.verificationStatus",
        )
        x.distrust(name, "Condition.verificationStatus")
    if vs in ("refuted", "entered-in-error"):
        x.note("ignored-status", f"{name} has verificationStatus {vs}; ignored", name, "Condition.verificationStatus")
        return
    cs_raw = res.get("clinicalStatus")
    cs = status_code(cs_raw)
    cs_unread = cs_raw is not None and cs not in CLINICAL_STATUS  # present, not understood: active unknown
    if cs_raw is not None and type(cs_raw) is not dict:
        x.note(
            "wrong-type",
            "Condition.clinicalStatus is not a CodeableConcept: whether the diagnosis is active is unknown",
            name,
            "Condition.clinicalStatus",
        )
    elif cs_unread:
        x.note(
            "unknown-code",
            f"Condition.clinicalStatus {str(cs)[:40]!r} is not a condition-clinical code: "
            "whether the diagnosis is active is unknown",
            name,
            "Condition.clinicalStatus",
        )
    code = read_condition_code(x, res.get("code"), name, "Condition.code")
    icd10, snomed, topo, morph, ev = code
    known_benign = icd10 is None and snomed is not None and x.terms.has(NON_MALIGNANT_VS, SNOMED, snomed)
    has_histology_ext = False
    for j, ext in enumerate(as_list(res.get("extension"))):
        url = as_dict(ext).get("url")
        if type(url) is str and url.endswith("mcode-histology-morphology-behavior"):
            has_histology_ext = True
            element = f"Condition.extension[{j}].valueCodeableConcept"
            for s, c, _ in codings(ext.get("valueCodeableConcept")):
                if "icd-o" in s and morph is None:
                    _, morph = icdo3(c)
                elif s == SNOMED and morph is None:
                    target = x.terms.map_one(SNOMED, c, ICDO3)
                    if target is None:
                        x.note(
                            "unmapped-code",
                            f"histology {s}|{c[:20]} is not in the SNOMED CT -> ICD-O-3 map: morphology unknown",
                            name,
                            element,
                        )
                    else:
                        _, morph = icdo3(target)
                        c = f"{c} -> ICD-O-3 {target}"
                ev.append(Evidence(resource=name, element=element, value=f"{s}|{c}"))
    unread_histology = None  # a histology Observation whose status is not understood (noted by its reader)
    for hist_morph, hist_ev, readable in histology_index(x).get(id(res), ()):  # LOINC 31206-6 Observations
        if not readable:
            unread_histology = unread_histology or f"{hist_ev.resource}.status"
            continue
        has_histology_ext = True
        morph = morph or hist_morph
        ev.append(hist_ev)
    # open world: a diagnosis whose code is not understood (a SNOMED CT concept in neither the cancer
    # map nor the non-malignant value set, or only a topography) leaves "is this a cancer?" unknown
    cancer: bool | None = False if (icd10 or known_benign) else None
    secondary: bool | None = False if (icd10 or known_benign) else None  # a metastasis? unknown likewise
    pregnancy = False
    site = None
    if icd10:
        cancer, secondary, pregnancy = icd10_classes(icd10)
        if secondary:
            site = "liver" if icd10.startswith("C78.7") else "brain" if icd10.startswith("C79.3") else None
    behaviour = morph[-1] if morph else None
    if behaviour in ("3", "6"):
        cancer = True
    if behaviour == "6":
        secondary = True
    if secondary and site is None:
        site = "other"
    active: bool | None
    if cs is None and (
        "abatementDateTime" in res or "abatementPeriod" in res or "abatementAge" in res or "abatementString" in res
    ):
        active = False
    else:
        active = None if cs_unread else cs not in INACTIVE_CLINICAL
    confirmed = None if vs_unread else vs == "confirmed"
    pathology = id(res) in x.pathology_conditions or condition_has_pathology_evidence(x, res)
    histology = (has_histology_ext or behaviour == "3" or pathology) and confirmed
    if histology is False and confirmed and unread_histology:  # the only histology on file cannot be relied on
        histology = None
    if "recordedDate" in res and type(res["recordedDate"]) is str:
        recorded, _ = parse_date(res["recordedDate"])
        if x.after_as_of(recorded, name, "Condition.recordedDate"):
            return
    span, ages = condition_onset(x, res, name, ev)
    if span is not None and x.after_as_of(span[0], name, "Condition.onset[x]"):
        return
    if span is not None and x.birth is not None and span[1] < x.birth:
        x.note(
            "impossible-date",
            f"the onset {span[1].isoformat()} is before the birth date {x.birth.isoformat()}: diagnosis date unknown",
            name,
            "Condition.onset[x]",
        )
        span = ages = None
    onset = span[0] if span is not None else None
    if span is not None and ages is None and x.birth is not None and x.birth_hi is not None:
        ages = (years_between(x.birth, span[1]), max(0, years_between(x.birth_hi, span[0])))
    if vs:
        ev.append(Evidence(resource=name, element="Condition.verificationStatus", value=vs))
    if cs:
        ev.append(Evidence(resource=name, element="Condition.clinicalStatus", value=cs))
    evidence = tuple(ev)
    fact = DiagnosisFact(
        icd10=icd10,
        icd10_3=icd10[:3] if icd10 else None,
        snomed=snomed,
        icdo3_topography=topo,
        morphology=morph,
        cancer=cancer,
        secondary=secondary,
        metastasis_site=site,
        active=active,
        confirmed=confirmed,
        histology_confirmed=histology,
        onset=onset,
        onset_days_ago=x.days_ago(onset),
        age_at_onset=ages[0] if ages else None,
        evidence=evidence,
    )
    x.add("diagnosis", (i, 0), fact)
    if active is None:
        x.unread_field("diagnosis", "active", name, "Condition.clinicalStatus")
    if confirmed is None:
        x.unread_field("diagnosis", "confirmed", name, "Condition.verificationStatus")
    if histology is None:
        where = "Condition.verificationStatus" if confirmed is None else str(unread_histology)
        x.unread_field("diagnosis", "histology_confirmed", name, where)
    # a code that is present but not understood leaves what it would have said unknown (not absent): a rule
    # asking "a cancer?" / "which tumour group?" of this diagnosis cannot pass over it
    if res.get("code") is not None:
        known = {"cancer": cancer, "secondary": secondary, "icd10": icd10, "icd10_3": icd10}
        for f in [f for f, v in known.items() if v is None or v == ""]:
            x.unread_field("diagnosis", f, name, "Condition.code")
    if span is not None and (span[0] != span[1] or (ages is not None and ages[0] != ages[1])):
        x.other_end[id(fact)] = fact.model_copy(
            update={"onset": span[1], "onset_days_ago": x.days_ago(span[1]), "age_at_onset": ages[1] if ages else None}
        )
    if secondary:
        x.add(
            "extent",
            (i, 0),
            ExtentFact(value="metastatic", source="secondary-condition", date=onset, evidence=evidence),
        )
    for j, stage in enumerate(as_list(res.get("stage"))):
        summary = as_dict(stage).get("summary")
        hit = stage_iv_value(summary)
        if hit:
            x.add(
                "extent",
                (i, 1 + j),
                ExtentFact(
                    value="metastatic",
                    source="stage-group",
                    date=None,
                    evidence=(Evidence(resource=name, element=f"Condition.stage[{j}].summary", value=hit),),
                ),
            )
    if pregnancy and active:
        x.add(
            "pregnancy",
            (i, 0),
            PregnancyFact(
                status="pregnant", source="condition", date=onset, age_days=x.days_ago(onset), evidence=evidence
            ),
        )


_AGE_UNITS = {"a": 1, "yr": 1, "year": 1, "years": 1, "mo": 12, "month": 12, "months": 12}


def condition_onset(
    x: Extraction, res: Resource, name: str, ev: list[Evidence]
) -> tuple[tuple[Date, Date] | None, tuple[int, int] | None]:
    """((first, last) day of the onset, (oldest, youngest) age at onset in whole years) from
    onsetDateTime, onsetPeriod (start, else end), onsetAge, onsetRange (ages), else recordedDate. An age
    gives the dates through the birth date; onsetString is text: a note, no date."""
    for key in ("onsetDateTime", "onsetPeriod"):
        if key in res:
            raw = res[key]
            element = f"Condition.{key}"
            if key == "onsetPeriod":
                period = as_dict(raw)
                part = "start" if "start" in period else "end"
                raw, element = period.get(part), f"Condition.onsetPeriod.{part}"
            span = x.date_span(raw, name, element)
            if span is not None:
                ev.append(Evidence(resource=name, element=element, value=str(raw)))
                return span, None
            return None, None
    for key in ("onsetAge", "onsetRange"):
        if key in res:
            element = f"Condition.{key}"
            q = as_dict(res[key])
            ends = (q.get("low"), q.get("high")) if key == "onsetRange" else (q, q)
            years = [_age_years(x, e, name, element) for e in ends]
            lo_age, hi_age = years
            if lo_age is None or hi_age is None:
                return None, None
            ev.append(Evidence(resource=name, element=element, value=f"{lo_age[0]}..{hi_age[1]} years"))
            ages = (int(hi_age[1]), int(lo_age[0]))
            if x.birth is None or x.birth_hi is None:
                return None, ages
            first = _add_years(x.birth, lo_age[0])
            last = Date.fromordinal(_add_years(x.birth_hi, hi_age[1] + 1).toordinal() - 1)
            return (first, max(first, last)), ages
    if "onsetString" in res:
        x.note(
            "invalid-date",
            "Condition.onsetString is text, not a date: diagnosis date unknown",
            name,
            "Condition.onsetString",
        )
        return None, None
    if "recordedDate" in res:
        raw = res["recordedDate"]
        span = x.date_span(raw, name, "Condition.recordedDate")
        if span is not None:
            ev.append(Evidence(resource=name, element="Condition.recordedDate", value=str(raw)))
        return span, None
    return None, None


def _age_years(x: Extraction, q: object, name: str, element: str) -> tuple[Decimal, Decimal] | None:
    """(value, value) in years of an Age quantity; None with a note when unreadable."""
    d = as_dict(q)
    value = number(d.get("value"))
    unit = string(d.get("code")) or string(d.get("unit"))
    per_year = _AGE_UNITS.get(unit or "a")
    if value is None or per_year is None or value < 0 or value > MAX_AGE_YEARS * per_year:
        x.note("wrong-type", f"{element} is not an age in years or months", name, element)
        return None
    years = value / per_year
    return years, years


def _add_years(d: Date, years: Decimal) -> Date:
    whole = int(years)
    months = int((years - whole) * 12)
    y, m = d.year + whole + (d.month - 1 + months) // 12, (d.month - 1 + months) % 12 + 1
    try:
        return Date(y, m, d.day)
    except ValueError:
        return Date(y, m, 28)


def condition_has_pathology_evidence(x: Extraction, res: Resource) -> bool:
    for ev in as_list(res.get("evidence")):
        for detail in as_list(as_dict(ev).get("detail")):
            target, _ = x.resolve(detail)
            if target is not None and id(target) in x.pathology_reports:
                return True
    return False


#: (ICD-10, SNOMED CT, ICD-O-3 topography, ICD-O-3 morphology, evidence) of a diagnosis code.
ConditionCode = tuple[Optional[str], Optional[str], Optional[str], Optional[str], list[Evidence]]


def read_condition_code(x: Extraction, cc: object, name: str, element: str) -> ConditionCode:
    """(icd10, snomed, topography, morphology, evidence); all None (with a note) when the code is absent or
    cannot be read."""
    # a code that is absent or cannot be read still gives a fact whose disease is unknown: the
    # resource is there, so "is there a cancer?" must not read as "no"
    unknown: ConditionCode = (
        None,
        None,
        None,
        None,
        [Evidence(resource=name, element=element, value="(code not understood)")],
    )
    if cc is None:
        x.note("missing-element", f"{element} is absent: disease unknown", name, element)
        return unknown
    if type(cc) is not dict:
        x.note("wrong-type", f"{element} is not a CodeableConcept: disease unknown", name, element)
        return unknown
    icd10 = snomed = topo = morph = None
    snomed_el = element
    ev: list[Evidence] = []
    other: list[str] = []
    for j, (s, c, _) in enumerate(codings(cc)):
        el = f"{element}.coding[{j}]"
        if "icd-10" in s or s in ICD10_OIDS:
            norm = normalise_icd10(c)
            if norm is None:
                x.note("invalid-code", f"{element} ICD-10 code {c[:20]!r} is not of ICD-10 form", name, el)
            elif icd10 is None:
                icd10 = norm
                ev.append(Evidence(resource=name, element=el, value=f"{s}|{c}"))
        elif s == SNOMED:
            if c.isdigit():
                if snomed is None:
                    snomed = c
                    ev.append(Evidence(resource=name, element=el, value=f"{s}|{c}"))
                    snomed_el = el
            else:
                x.note("invalid-code", f"SNOMED CT code {c[:20]!r} is not numeric", name, el)
        elif "icd-o" in s:
            t, m = icdo3(c)
            if t is None and m is None:
                x.note("invalid-code", f"ICD-O-3 code {c[:20]!r} is neither a topography nor a morphology", name, el)
            topo = topo or t
            morph = morph or m
            if t or m:
                ev.append(Evidence(resource=name, element=el, value=f"{s}|{c}"))
        else:
            other.append(s or "(no system)")
    if icd10 is None and snomed is not None:
        target = x.terms.map_one(SNOMED, snomed, ICD10)
        mapped = normalise_icd10(target) if target else None
        if mapped is not None:
            icd10 = mapped
            ev.append(
                Evidence(
                    resource=name, element=snomed_el, value=f"{SNOMED}|{snomed} -> ICD-10 {target} (terminology map)"
                )
            )
        elif not x.terms.has(NON_MALIGNANT_VS, SNOMED, snomed):
            x.note(
                "unmapped-code",
                f"SNOMED CT {snomed} is neither in the SNOMED CT -> ICD-10 map nor "
                "known to be non-malignant: whether it is a cancer, and its tumour group, are unknown",
                name,
                snomed_el,
            )
    if not (icd10 or snomed or topo or morph):
        if other:
            x.note(
                "unknown-code-system",
                f"{element} has no ICD-10, SNOMED CT or ICD-O-3 code (systems: {', '.join(sorted(set(other)))[:200]})",
                name,
                element,
            )
        else:
            x.note("missing-element", f"{element} has no usable coding: disease unknown", name, element)
        return unknown
    return icd10, snomed, topo, morph, ev
