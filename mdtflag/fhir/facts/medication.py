"""MedicationStatement, MedicationAdministration and MedicationRequest: drugs given (ATC).

The drug is read from an ATC coding, or from any coding the terminology maps to ATC (RxNorm, SNOMED CT
medicinal products; ``medication-atc.json``). A drug that cannot be identified still gives a medication
fact, without ATC: "was a drug of class X given?" is then unknown, never "no"."""

from __future__ import annotations

from datetime import date as Date

from mdtflag.fhir.facts.codes import ATC, ATC_CODE, ATC_SYSTEMS, MED_CURRENT, MED_GIVEN, MED_STATUSES
from mdtflag.fhir.facts.context import Extraction, Resource
from mdtflag.fhir.facts.models import Evidence, MedicationFact
from mdtflag.fhir.facts.parse import codings, status_of

#: Statuses of a course that has ended: when its end is after as_of, it was ongoing at as_of.
MED_ENDED = frozenset({"completed", "stopped"})


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
            cc, element = target.get("code"), f"{x.name_of(target)}: Medication.code"
    else:
        x.note("missing-element", f"{rt} names no medication: drug unknown", name, f"{rt}.medication[x]")
        element = f"{rt}.medication[x]"
    atc, shown = drug_atc(x, cc, name, element) if cc is not None else (None, "(drug unknown)")
    start, start_el, end, end_hi = med_dates(x, res, name)
    if x.after_as_of(start, name, start_el):  # not started at as_of: not known then
        return
    # a status present but not understood (another code, not a string): given or not is unknown
    unread = "status" in res and status not in MED_STATUSES
    if unread:
        shown = repr(res["status"])[:40]
        x.note(
            "unknown-code",
            f"{rt}.status {shown} is not a {rt} status: whether the drug was given is unknown",
            name,
            f"{rt}.status",
        )
    given = status in MED_GIVEN if status else True
    prior: bool | None = given and (start is None or start <= x.as_of)

    def current_at(last: Date | None, later: bool) -> bool:
        """Whether the drug was current at as_of for an end ``last`` (``later``: ends after as_of,
        which was not known at as_of: the drug was ongoing then, whatever the status says now)."""
        ongoing = status in MED_CURRENT or (later and status in MED_ENDED)
        return ongoing and (start is None or start <= x.as_of) and (last is None or last >= x.as_of)

    current: bool | None = current_at(end, end is None and end_hi is not None)
    ev = [Evidence(resource=name, element=element, value=shown)]
    if status:
        ev.append(Evidence(resource=name, element=f"{rt}.status", value=status))
    if start is not None:
        ev.append(Evidence(resource=name, element=start_el, value=start.isoformat()))
    if unread:
        prior = current = None
    fact = MedicationFact(
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
    )
    x.add("medication", (i, 0), fact)
    if unread:
        for field in ("prior", "current"):
            x.unread_field("medication", field, name, f"{rt}.status")
        return
    if end_hi is not None and end is not None:  # a partial end: the same fact at its last day too
        base = x.other_end.get(id(fact), fact)
        later = end_hi > x.as_of
        x.other_end[id(fact)] = base.model_copy(
            update={
                "current": current_at(None if later else end_hi, later),
                "end_days_ago": None if later else x.days_ago(end_hi),
            }
        )


def med_dates(x: Extraction, res: Resource, name: str) -> tuple[Date | None, str, Date | None, Date | None]:
    """(start, its element, end, the last day of a partial end or of an end after as_of) of a medication:
    the start from ``authoredOn`` or ``effective[x]``, the end from ``effectivePeriod.end``. An end wholly
    after ``as_of`` was not known at ``as_of``: it is not used (note ``after-as-of``; end None, last day
    after as_of)."""
    rt = res["resourceType"]
    start = end = last = None
    start_el = ""
    if rt == "MedicationRequest":
        if "authoredOn" in res:
            start_el = "MedicationRequest.authoredOn"
            start = x.dated(res["authoredOn"], name, start_el)
        return start, start_el, None, None
    if "effectiveDateTime" in res:
        start_el = f"{rt}.effectiveDateTime"
        start = x.dated(res["effectiveDateTime"], name, start_el)
    elif type(res.get("effectivePeriod")) is dict:
        period = res["effectivePeriod"]
        if "start" in period:
            start_el = f"{rt}.effectivePeriod.start"
            start = x.dated(period["start"], name, start_el)
        if "end" in period and (start is None or start <= x.as_of):  # else the whole statement is later
            span = x.date_span(period["end"], name, f"{rt}.effectivePeriod.end")
            if span is not None:
                if x.after_as_of(span[0], name, f"{rt}.effectivePeriod.end"):
                    last = span[1]
                else:
                    end, last = span[0], (span[1] if span[1] > span[0] else None)
    return start, start_el, end, last


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
