"""MedicationStatement, MedicationAdministration and MedicationRequest: drugs given (ATC)."""
from __future__ import annotations

from mdtflag.fhir.facts.codes import ATC_CODE, ATC_SYSTEMS, MED_CURRENT, MED_GIVEN
from mdtflag.fhir.facts.context import Extraction, Resource
from mdtflag.fhir.facts.models import Evidence, MedicationFact
from mdtflag.fhir.facts.parse import codings, status_of


def read_medication(x: Extraction, res: Resource, name: str, i: int) -> None:
    rt = res["resourceType"]
    status = status_of(res)
    if status == "entered-in-error":
        x.note("ignored-status", f"{name} has status {status}; ignored", name, f"{rt}.status")
        return
    cc, element = None, f"{rt}.medicationCodeableConcept"
    if "medicationCodeableConcept" in res:
        cc = res["medicationCodeableConcept"]
    elif "medicationReference" in res:
        target, ref = x.resolve(res["medicationReference"])
        if target is None:
            x.note("unresolved-reference", f"{rt}.medicationReference {str(ref)[:80]!r} "
                   "is not in the bundle: drug unknown", name, f"{rt}.medicationReference")
            return
        cc, element = target.get("code"), f"{x.name_of(target, -1)}: Medication.code"
    else:
        x.note("missing-element", f"{rt} names no medication", name, f"{rt}.medication[x]")
        return
    atc = None
    systems = []
    for s, c, _ in codings(cc):
        if s in ATC_SYSTEMS:
            code = c.upper().replace(" ", "")
            if ATC_CODE.match(code):
                atc = code
                break
            x.note("invalid-code", f"ATC code {c[:20]!r} is not of ATC form", name, element)
        else:
            systems.append(s or "(no system)")
    if atc is None:
        if systems:
            x.note("unknown-code-system", f"{element} has no ATC code (systems: "
                      f"{', '.join(sorted(set(systems)))[:200]})", name, element)
        elif type(cc) is not dict:
            x.note("wrong-type", f"{element} is not a CodeableConcept", name, element)
        return
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
    current = (status in MED_CURRENT and (start is None or start <= x.as_of)
               and (end is None or end >= x.as_of))
    ev = [Evidence(resource=name, element=element, value=f"{atc}")]
    if status:
        ev.append(Evidence(resource=name, element=f"{rt}.status", value=status))
    if start is not None:
        ev.append(Evidence(resource=name, element=start_el, value=start.isoformat()))
    x.add("medication", (i, 0), MedicationFact(
        atc=atc, atc_class=atc[:5], atc_group=atc[:3], status=status, current=current,
        prior=prior, start=start, start_days_ago=x.days_ago(start),
        end_days_ago=x.days_ago(end), evidence=tuple(ev)))
