"""FamilyMemberHistory: relatives' diagnoses and onset ages."""

from __future__ import annotations

from mdtflag.fhir.facts.codes import DEGREE, FAMILY_ROLES_NOT_CLOSE, ROLE_SYSTEMS
from mdtflag.fhir.facts.condition import read_condition_code
from mdtflag.fhir.facts.context import Extraction, Resource
from mdtflag.fhir.facts.models import Evidence, FamilyHistoryFact
from mdtflag.fhir.facts.parse import as_dict, as_list, codings, number, status_of, string


def read_family(x: Extraction, res: Resource, name: str, i: int) -> None:
    status = status_of(res)
    if status == "entered-in-error":
        x.note("ignored-status", f"{name} has status {status}; ignored", name, "FamilyMemberHistory.status")
        return
    x.status_not_understood(res, name)
    relationship = None
    for s, c, _ in codings(res.get("relationship")):
        if s in ROLE_SYSTEMS:
            relationship = c.upper()
            break
    # a relative whose relationship cannot be read is still a relative: the degree is unknown, not "not close"
    degree = DEGREE.get(relationship) if relationship else None
    degree_unread = relationship is None or (degree is None and relationship not in FAMILY_ROLES_NOT_CLOSE)
    if relationship is None:
        x.note(
            "unknown-code-system" if codings(res.get("relationship")) else "missing-element",
            "FamilyMemberHistory.relationship has no v3-RoleCode: the degree of relationship is unknown",
            name,
            "FamilyMemberHistory.relationship",
        )
    elif degree_unread:
        x.note(
            "unknown-code",
            f"FamilyMemberHistory.relationship {relationship[:30]} is not a v3 family-member code of a known "
            "degree: the degree of relationship is unknown",
            name,
            "FamilyMemberHistory.relationship",
        )
    relationship = relationship or "unknown"
    rel_ev = Evidence(resource=name, element="FamilyMemberHistory.relationship", value=relationship)
    conditions = [c for c in as_list(res.get("condition")) if type(c) is dict]
    if degree_unread:
        x.unread_field("family_history", "degree", name, "FamilyMemberHistory.relationship")
    if not conditions:
        x.add("family_history", (i, 0), FamilyHistoryFact(relationship=relationship, degree=degree, evidence=(rel_ev,)))
        return
    for j, cond in enumerate(conditions):
        element = f"FamilyMemberHistory.condition[{j}]"
        code = read_condition_code(x, cond.get("code"), name, f"{element}.code")
        icd10, snomed, _, _, ev = code
        if not icd10 and cond.get("code") is not None:  # a code present but not read: the disease is unknown
            x.unread_field("family_history", "icd10", name, f"{element}.code")
            x.unread_field("family_history", "icd10_3", name, f"{element}.code")
        onset_age = None
        if "onsetAge" in cond:
            onset_age = read_onset_age(x, cond["onsetAge"], name, f"{element}.onsetAge", ev)
        x.add(
            "family_history",
            (i, j),
            FamilyHistoryFact(
                relationship=relationship,
                degree=degree,
                icd10=icd10,
                icd10_3=icd10[:3] if icd10 else None,
                snomed=snomed,
                onset_age=onset_age,
                evidence=(rel_ev, *ev),
            ),
        )


def read_onset_age(x: Extraction, q: object, name: str, element: str, ev: list[Evidence]) -> int | None:
    value = number(as_dict(q).get("value"))
    if value is None:
        x.note("wrong-type", f"{element} is not an Age with a number", name, element)
        return None
    unit = string(as_dict(q).get("code")) or string(as_dict(q).get("unit"))
    if unit not in (None, "a", "yr", "year", "years"):
        x.note("unknown-unit", f"{element} unit {unit!r} is not years (a)", name, element)
        return None
    if value < 0 or value > 150:
        x.note("out-of-range", f"{element} {value} is not a plausible age", name, element)
        return None
    ev.append(Evidence(resource=name, element=element, value=f"{value} {unit or ''}".strip()))
    return int(value)
