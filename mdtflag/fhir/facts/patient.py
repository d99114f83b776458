"""Patient: age, sex, deceased, and the place of residence (county, municipality, healthcare region)."""

from __future__ import annotations

from datetime import date as Date

import mdtflag.fhir.regions as scb
from mdtflag.fhir.facts.context import MAX_AGE_YEARS, Extraction, Resource
from mdtflag.fhir.facts.models import Evidence, PatientFact
from mdtflag.fhir.facts.parse import as_list, years_between


def read_patient(x: Extraction, p: Resource, name: str) -> PatientFact:
    name = x.name_of(p) if p else "Patient/(missing)"
    ev: list[Evidence] = []
    sex = None
    gender = p.get("gender")
    if gender is not None:
        if type(gender) is str and gender in ("male", "female", "other", "unknown"):
            sex = gender if gender != "unknown" else None
            ev.append(Evidence(resource=name, element="Patient.gender", value=gender))
        else:
            x.note("wrong-type", "Patient.gender is not one of male/female/other/unknown", name, "Patient.gender")
    age = young = None
    if "birthDate" in p:
        span = x.date_span(p["birthDate"], name, "Patient.birthDate")
        if span is not None:
            born, born_hi = span
            if born > x.as_of:
                x.note(
                    "impossible-date",
                    f"Patient.birthDate {born.isoformat()} is after the "
                    f"evaluation date {x.as_of.isoformat()}: age unknown",
                    name,
                    "Patient.birthDate",
                )
            elif years_between(born, x.as_of) > MAX_AGE_YEARS:
                x.note(
                    "impossible-date",
                    f"Patient.birthDate {born.isoformat()} gives an age over {MAX_AGE_YEARS} years: age unknown",
                    name,
                    "Patient.birthDate",
                )
            else:
                x.birth, x.birth_hi = born, min(born_hi, x.as_of)
                age = years_between(born, x.as_of)
                young = years_between(x.birth_hi, x.as_of)
                ev.append(Evidence(resource=name, element="Patient.birthDate", value=p["birthDate"]))
    else:
        x.note("missing-element", "Patient.birthDate is absent: age unknown", name, "Patient.birthDate")
    deceased: bool | None = False
    if "deceasedBoolean" in p:
        flag = p["deceasedBoolean"]
        if type(flag) is bool:
            deceased = flag
            ev.append(Evidence(resource=name, element="Patient.deceasedBoolean", value=str(flag).lower()))
        else:  # present, not understood: whether the patient is alive is unknown, not "alive"
            x.note(
                "wrong-type",
                "Patient.deceasedBoolean is not a boolean: whether the patient is alive is unknown",
                name,
                "Patient.deceasedBoolean",
            )
            deceased = None
            x.unread_field("patient", "deceased", name, "Patient.deceasedBoolean")
    elif "deceasedDateTime" in p:
        raw = p["deceasedDateTime"]
        when = x.date_of(raw, name, "Patient.deceasedDateTime")
        deceased = when is None or when <= x.as_of  # a death date after as_of: alive then
        if when is not None and when > Date.today():
            x.note(
                "impossible-date",
                f"Patient.deceasedDateTime {when.isoformat()} lies in the future: "
                "whether the patient is alive is unknown",
                name,
                "Patient.deceasedDateTime",
            )
            deceased = None
        elif when is not None and x.birth is not None and when < x.birth:
            x.note(
                "impossible-date",
                f"Patient.deceasedDateTime {when.isoformat()} is before the birth "
                "date: whether the patient is alive is unknown",
                name,
                "Patient.deceasedDateTime",
            )
            deceased = None
        ev.append(
            Evidence(
                resource=name, element="Patient.deceasedDateTime", value=raw if type(raw) is str else repr(raw)[:40]
            )
        )
    county, municipality, region = read_address(x, p, name, ev)
    fact = PatientFact(
        age=age,
        sex=sex,
        deceased=deceased,
        county=county,
        municipality=municipality,
        healthcare_region=region,
        evidence=tuple(ev),
    )
    if young != age:  # a partial birthDate that spans a birthday: the youngest possible age too
        x.other_end[id(fact)] = fact.model_copy(update={"age": young})
    return fact


def read_address(
    x: Extraction, p: Resource, name: str, ev: list[Evidence]
) -> tuple[str | None, str | None, str | None]:
    """(county, municipality, healthcare region) of the home address (else the first not old one)."""
    addresses = [(j, a) for j, a in enumerate(as_list(p.get("address"))) if type(a) is dict]
    if "address" in p and type(p["address"]) is not list:
        x.note("wrong-type", "Patient.address is not an array", name, "Patient.address")
    if not addresses:
        x.note("unknown-region", "Patient.address is absent: healthcare region unknown", name, "Patient.address")
        return None, None, None
    idx, chosen = next(
        (ja for ja in addresses if ja[1].get("use") == "home"),
        next((ja for ja in addresses if ja[1].get("use") != "old"), addresses[0]),
    )
    state, district = chosen.get("state"), chosen.get("district")
    county = municipality = None
    if state is not None:
        county = scb.county_code(state)
        if county is not None:
            ev.append(Evidence(resource=name, element=f"Patient.address[{idx}].state", value=str(state)))
        else:
            x.note(
                "unknown-region",
                f"Patient.address.state {str(state)[:40]!r} is not a Swedish county code or name",
                name,
                f"Patient.address[{idx}].state",
            )
    if district is not None:
        municipality = scb.municipality_code(district)
        if municipality is not None:
            ev.append(Evidence(resource=name, element=f"Patient.address[{idx}].district", value=str(district)))
            if county is None:
                county = municipality[:2]
            elif county != municipality[:2]:
                x.note(
                    "unknown-region",
                    f"municipality {municipality} does not lie in county {county}; municipality not used",
                    name,
                    f"Patient.address[{idx}].district",
                )
                municipality = None
    if county is None:
        if state is None:
            x.note(
                "unknown-region",
                "no county (Patient.address.state): healthcare region unknown",
                name,
                f"Patient.address[{idx}].state",
            )
        return None, municipality, None
    region = x.regions.region_for(county, municipality)
    if region is None:
        if county in x.regions.split_counties:
            what = (
                "municipality unknown"
                if municipality is None
                else f"municipality {municipality} not in the region table"
            )
            x.note(
                "unknown-region",
                f"county {county} is split between healthcare regions and the {what}",
                name,
                f"Patient.address[{idx}].district",
            )
        else:
            x.note(
                "unknown-region", f"county {county} is not in the region table", name, f"Patient.address[{idx}].state"
            )
    return county, municipality, region
