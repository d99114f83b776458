"""MedicationStatement, MedicationAdministration and MedicationRequest: drugs given (ATC).

The drug is read from an ATC coding, or from any coding the terminology maps to ATC (RxNorm, SNOMED CT
medicinal products; ``medication-atc.json``). A drug that cannot be identified still gives a medication
fact, without ATC: "was a drug of class X given?" is then unknown, never "no"."""

from __future__ import annotations

from mdtflag.fhir.facts.codes import ATC, ATC_CODE, ATC_SYSTEMS, MED_CURRENT, MED_GIVEN
from mdtflag.fhir.facts.context import Extraction, Resource
from mdtflag.fhir.facts.models import Evidence, MedicationFact
from mdtflag.fhir.facts.parse import codings, status_of


def read_medication(x: Extraction, res: Resource, name: str, i: int) -> None:
    rt = res["resourceType"]
    status = status_of(res)
    if status == "entered-in-error":
        x.note("ignored-status", f"{name} has status {status}; ignored", name, f"{rt}.status")
        return
    cc: object = None
    element = f"{rt}.medicationCodeableConcept"
    if "medicationCodeableConcept" in res:
        cc = res["medicationCodeableConcept"]
    elif "medicationReference" in res:
        target, ref = x.resolve(res["medicationReference"])
        if target is None:
            x.note(
                "unresolved-reference",
                f"{rt}.medicationReference {str(ref)[:80]!r} is not in the bundle: drug unknown",
                name,
                f"{rt}.medicationReference",
            )
            element = f"{rt}.medicationReference"
        else:
            cc, element = target.get("code"), f"{x.name_of(target, -1)}: Medication.code"
    else:
        x.note("missing-element", f"{rt} names no medication: drug unknown", name, f"{rt}.medication[x]")
        element = f"{rt}.medication[x]"
    atc, shown = drug_atc(x, cc, name, element) if cc is not None else (None, "(drug unknown)")
    start = end = None
    start_el = ""
    if rt == "MedicationRequest":
        if "authoredOn" in res:
            start = x.date_of(res["authoredOn"], name, "MedicationRequest.authoredOn")
            start_el = "MedicationRequest.authoredOn"
    else:
        if "effectiveDateTime" in res:
            start = x.date_of(res["effectiveDateTime"], name, f"{rt}.effectiveDateTime")
            start_el = f"{rt}.effectiveDateTime"
        elif type(res.get("effectivePeriod")) is dict:
            period = res["effectivePeriod"]
            if "start" in period:
                start = x.date_of(period["start"], name, f"{rt}.effectivePeriod.start")
                start_el = f"{rt}.effectivePeriod.start"
            if "end" in period:
                end = x.date_of(period["end"], name, f"{rt}.effectivePeriod.end")
    given = status in MED_GIVEN if status else True
    prior = given and (start is None or start <= x.as_of)
    current = status in MED_CURRENT and (start is None or start <= x.as_of) and (end is None or end >= x.as_of)
    ev = [Evidence(resource=name, element=element, value=shown)]
    if status:
        ev.append(Evidence(resource=name, element=f"{rt}.status", value=status))
    if start is not None:
        ev.append(Evidence(resource=name, element=start_el, value=start.isoformat()))
    x.add(
        "medication",
        (i, 0),
        MedicationFact(
            atc=atc,
            atc_class=atc[:5] if atc else None,
            atc_group=atc[:3] if atc else None,
            status=status,
            current=current,
            prior=prior,
            start=start,
            start_days_ago=x.days_ago(start),
            end_days_ago=x.days_ago(end),
            evidence=tuple(ev),
        ),
    )


def drug_atc(x: Extraction, cc: object, name: str, element: str) -> tuple[str | None, str]:
    """(ATC code or None, what was seen) of a medication CodeableConcept; a note when None."""
    if type(cc) is not dict:
        x.note("wrong-type", f"{element} is not a CodeableConcept: drug unknown", name, element)
        return None, "(drug unknown)"
    unmapped: list[str] = []
    systems: list[str] = []
    mapped: tuple[str, str] | None = None
    for s, c, _ in codings(cc):
        if s in ATC_SYSTEMS:
            code = c.upper().replace(" ", "")
            if ATC_CODE.match(code):
                return code, code
            x.note("invalid-code", f"ATC code {c[:20]!r} is not of ATC form", name, element)
        elif mapped is None and ATC in x.terms.mapped_systems(s):
            target = x.terms.map_one(s, c, ATC)
            if target is not None and ATC_CODE.match(target):
                mapped = target, f"{s}|{c} -> ATC {target} (terminology map)"
            else:
                unmapped.append(f"{s}|{c}"[:80])
        else:
            systems.append(s or "(no system)")
    if mapped is not None:
        return mapped
    if unmapped:
        x.note(
            "unmapped-code",
            f"{element} {', '.join(unmapped)[:200]} is not in the medication -> ATC "
            "map: which drug was given is unknown",
            name,
            element,
        )
    elif systems:
        x.note(
            "unknown-code-system",
            f"{element} has no ATC code nor a code mapped to ATC (systems: "
            f"{', '.join(sorted(set(systems)))[:200]}): drug unknown",
            name,
            element,
        )
    else:
        x.note("missing-element", f"{element} has no coding: drug unknown", name, element)
    return None, "(drug unknown)"
