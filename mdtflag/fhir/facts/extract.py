"""The dispatch from resource type to reader, and one extraction run from start to end."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date as Date
from datetime import datetime
from types import MappingProxyType
from typing import Any

from mdtflag.fhir.facts.assertions import read_referral
from mdtflag.fhir.facts.condition import prepare_report, read_condition
from mdtflag.fhir.facts.context import Extraction, Handler
from mdtflag.fhir.facts.family import read_family
from mdtflag.fhir.facts.mcode import derived_status_counts
from mdtflag.fhir.facts.medication import read_medication
from mdtflag.fhir.facts.models import FACT_SCHEMA, FactSet, PatientFact
from mdtflag.fhir.facts.observation import read_observation
from mdtflag.fhir.facts.patient import read_patient
from mdtflag.fhir.facts.reports import read_report
from mdtflag.fhir.facts.research import read_research_subject
from mdtflag.fhir.facts.terminology import Terminology
from mdtflag.fhir.load import LoadedBundle
from mdtflag.fhir.regions import RegionMap

__all__ = ["HANDLERS", "extract_facts"]

#: resourceType -> reader. The Patient is read apart (first, whatever its place in the bundle).
HANDLERS: Mapping[str, Handler] = MappingProxyType(
    {
        "Condition": read_condition,
        "Observation": read_observation,
        "DiagnosticReport": read_report,
        "MedicationStatement": read_medication,
        "MedicationAdministration": read_medication,
        "MedicationRequest": read_medication,
        "ResearchSubject": read_research_subject,
        "ServiceRequest": read_referral,
        "Encounter": read_referral,
        "FamilyMemberHistory": read_family,
    }
)


def _run(x: Extraction) -> FactSet:
    patient = x.safely(read_patient, x, x.patient, "Patient")
    if patient is None:  # only on an internal error; keep the patient with nothing known
        patient = PatientFact(evidence=())
    for i, res, name in x.reports:
        x.safely(prepare_report, x, res, name, i)
    for i, res, name, handler in x.work:
        other = x.other_patient(res)
        if other is not None:
            if other[2]:
                x.note(
                    "other-patient",
                    f"{name} refers to {other[0]}, not to this bundle's Patient; not used",
                    name,
                    f"{res['resourceType']}.{other[1]}",
                )
            else:
                x.note(
                    "unresolved-subject",
                    f"{name} refers to {other[0][:80]}, which is not in the bundle; not attributed to the Patient",
                    name,
                    f"{res['resourceType']}.{other[1]}",
                )
            continue
        x.reading_untrusted = name if name in x.untrusted else None
        x.safely(handler, x, res, name, i)
    x.reading_untrusted = None
    # the builders refer back to the extraction: take them out, so that no reference cycle keeps
    # the patient's data alive after the run
    latest, x.latest = x.latest, {}
    for key, entry in latest.items():
        if key == ("ecog-derived",) and x.ecog_seen:  # Karnofsky only when there is no ECOG
            continue
        if key == ("disease-status-derived",) and not derived_status_counts(x):  # the assessment wins
            continue
        x.build_latest(key, entry)
    facts: list[Any] = [patient]
    for kind in FACT_SCHEMA:
        items = x.out[kind]
        if items:
            items.sort(key=lambda t: t[0])
            facts.extend(f for _, f in items)
    other_end = x.other_end
    completions: tuple[tuple[int, Any], ...] = (
        tuple((k, other_end[id(f)]) for k, f in enumerate(facts) if id(f) in other_end) if other_end else ()
    )
    return FactSet(
        patient=patient,
        facts=tuple(facts),
        notes=tuple(x.bundle.notes) + tuple(x.notes),
        source=x.bundle.source,
        completions=completions,
        unreadable=tuple(x.unreadable),
        unreadable_fields=tuple(x.unreadable_fields),
    )


def extract_facts(
    bundle: LoadedBundle, as_of: Date, regions: RegionMap | None = None, terminology: Terminology | None = None
) -> FactSet:
    """All facts of one patient at ``as_of`` (see :mod:`mdtflag.fhir.facts`). Never raises for any
    content of ``bundle``: what cannot be used becomes a note in ``FactSet.notes``. Without
    ``regions`` no healthcare region is known; without ``terminology`` the terminology shipped with the
    default rule set is used."""
    if isinstance(as_of, datetime):
        as_of = as_of.date()
    elif not isinstance(as_of, Date):
        raise TypeError("as_of must be a datetime.date")
    return _run(Extraction(bundle, as_of, regions, HANDLERS, terminology))
