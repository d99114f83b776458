"""Stage 2: turn one patient's bundle into typed, immutable facts with provenance.

``extract_facts(bundle, as_of, regions)`` reads the plain dicts of a :class:`~mdtflag.fhir.load.LoadedBundle`
and returns a :class:`FactSet`. It never raises for any dict
content: an element it cannot use becomes a :class:`~mdtflag.errors.DataQualityNote` and the fact it
would have given is left out (unknown), never defaulted.

Each fact kind has a frozen pydantic model (``PatientFact``, ``DiagnosisFact``, ... in :mod:`.models`)
that declares its fields; :data:`FACT_SCHEMA` is derived from the models. Every fact carries
``evidence``: the resource, the element read and the value seen.

Where only the current value matters, only the most recent one becomes a fact ("most recent" =
latest effective instant, time of day and zone included, dated before undated; two different values
at the same instant make the value unknown, with a note):

* ``ecog``: the most recent ECOG; a Karnofsky score (mapped, ``derived=True``) only when there is no
  usable ECOG at all;
* ``lab``: the most recent value per analyte (if that value is censored, e.g. ``<3``, the analyte is
  unknown and a note says why);
* ``pregnancy``: the most recent pregnancy-status and the most recent hCG observation (every active
  pregnancy Condition is a fact of its own);
* ``assertion``: the most recent Observation per assertion code.

Every other kind keeps one fact per source item. Dates are calendar dates as written;
``*_days`` / ``age_days`` count days from that date to ``as_of``. Data dated after ``as_of`` is not
used. A partial date is an interval: the fact holds its earliest completion and
``FactSet.completions`` the latest, and a test is decided only when both agree. Resources are read in
the order of their names, so no output depends on the order of the bundle's entries.

Layout: :mod:`.models` (fact models, schema), :mod:`.encoding` (field types, engine encoding),
:mod:`.codes` (code tables), :mod:`.parse` (small readers of JSON values), :mod:`.context` (the state
of one run), one reader module per FHIR resource family (:mod:`.patient`, :mod:`.condition`,
:mod:`.observation`, :mod:`.genomics`, :mod:`.medication`, :mod:`.research`, :mod:`.assertions`,
:mod:`.family`) and :mod:`.extract` (resourceType -> reader, the run).
"""

from __future__ import annotations

from mdtflag.fhir.facts.encoding import FieldType, encode_value
from mdtflag.fhir.facts.extract import extract_facts
from mdtflag.fhir.facts.models import (
    FACT_MODELS,
    FACT_SCHEMA,
    AssertionFact,
    DiagnosisFact,
    EcogFact,
    Evidence,
    ExtentFact,
    Fact,
    FactBase,
    FactSet,
    FamilyHistoryFact,
    GenomicReportFact,
    IhcFact,
    Label,
    LabFact,
    MedicationFact,
    MsiFact,
    PatientFact,
    PerformanceFact,
    PregnancyFact,
    TmbFact,
    TrialCandidacyFact,
    VariantFact,
    count_by_kind,
)
from mdtflag.fhir.facts.parse import normalise_icd10, normalise_protein_hgvs
from mdtflag.fhir.regions import RegionMap

__all__ = [
    "FACT_MODELS",
    "FACT_SCHEMA",
    "AssertionFact",
    "DiagnosisFact",
    "EcogFact",
    "Evidence",
    "ExtentFact",
    "Fact",
    "FactBase",
    "FactSet",
    "FamilyHistoryFact",
    "FieldType",
    "GenomicReportFact",
    "IhcFact",
    "LabFact",
    "Label",
    "MedicationFact",
    "MsiFact",
    "PatientFact",
    "PerformanceFact",
    "PregnancyFact",
    "RegionMap",
    "TmbFact",
    "TrialCandidacyFact",
    "VariantFact",
    "count_by_kind",
    "encode_value",
    "extract_facts",
    "normalise_icd10",
    "normalise_protein_hgvs",
]
