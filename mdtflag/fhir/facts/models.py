"""The fact models: one frozen pydantic model per fact kind.

A model declares everything the rest of the pipeline needs to know about its kind:

* its engine-visible fields, with their types (every field but ``kind`` and ``evidence``; the field
  type follows from the annotation: ``str``, ``int``, ``bool``, ``Decimal`` -> ``decimal``,
  ``date`` -> ``date``);
* ``date_field``: the field that ``latest`` orders by (``None`` when the kind has no date);
* ``age_field``: the field that ``max_age_days`` tests (days from that date to ``as_of``);
* ``label``: how texts about missing data name the kind, in Swedish and English.

:data:`FACT_SCHEMA` is derived from the models; nothing else lists the fields.
"""

from __future__ import annotations

# Pydantic evaluates these annotations at run time, and Python 3.9 cannot evaluate ``X | None``:
# the models keep ``Optional``.
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date as Date
from decimal import Decimal
from types import MappingProxyType
from typing import Any, Callable, ClassVar, Literal, NamedTuple, Optional, Union, get_args

from pydantic import BaseModel, ConfigDict

from mdtflag.errors import DataQualityNote
from mdtflag.fhir.facts.encoding import ENCODERS, FieldType

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
    "GenomicReportFact",
    "IhcFact",
    "LabFact",
    "Label",
    "MedicationFact",
    "MsiFact",
    "PatientFact",
    "PerformanceFact",
    "PregnancyFact",
    "TmbFact",
    "TrialCandidacyFact",
    "VariantFact",
    "count_by_kind",
    "schema_of",
]

_FROZEN = ConfigDict(frozen=True, extra="forbid", defer_build=True)


class Label(NamedTuple):
    """How a fact kind is named in texts."""

    sv: str
    en: str


class Evidence(BaseModel):
    """Where a fact came from: ``resource`` ``"Type/id"``, the ``element`` read, the ``value`` seen."""

    model_config = _FROZEN
    resource: str
    element: str
    value: str


class FactBase(BaseModel):
    """Common part of every fact model; subclasses set ``kind`` and the three class-level declarations."""

    model_config = _FROZEN
    label: ClassVar[Label]
    date_field: ClassVar[Optional[str]]
    age_field: ClassVar[Optional[str]]
    evidence: tuple[Evidence, ...] = ()

    def engine_fields(self) -> dict[str, Any]:
        """``{"kind": ..., field: encoded value, ...}`` with absent (``None``) fields left out."""
        values = self.__dict__
        kind: str = values["kind"]
        out: dict[str, Any] = {"kind": kind}
        for name, encode in _KIND_ENCODERS[kind]:
            value = values[name]
            if value is not None:
                out[name] = value if encode is None else encode(value)
        return out


class PatientFact(FactBase):
    label: ClassVar[Label] = Label("patientuppgifter", "patient data")
    date_field: ClassVar[Optional[str]] = None
    age_field: ClassVar[Optional[str]] = None
    kind: Literal["patient"] = "patient"
    age: Optional[int] = None  # absent only when birthDate is missing or unreadable
    sex: Optional[str] = None
    deceased: Optional[bool] = False  # absent only when the date of death cannot be true
    county: Optional[str] = None
    municipality: Optional[str] = None
    healthcare_region: Optional[str] = None


class DiagnosisFact(FactBase):
    label: ClassVar[Label] = Label("cancerdiagnos", "cancer diagnosis")
    date_field: ClassVar[Optional[str]] = "onset"
    age_field: ClassVar[Optional[str]] = "onset_days_ago"
    kind: Literal["diagnosis"] = "diagnosis"
    icd10: Optional[str] = None
    icd10_3: Optional[str] = None
    snomed: Optional[str] = None
    icdo3_topography: Optional[str] = None
    morphology: Optional[str] = None
    cancer: Optional[bool] = None
    secondary: Optional[bool] = None  # unknown when the code is not understood
    metastasis_site: Optional[str] = None
    active: Optional[bool]  # unknown when the clinical status is present but not understood
    confirmed: Optional[bool]  # unknown when the verification status is present but not understood
    histology_confirmed: Optional[bool]
    onset: Optional[Date] = None
    onset_days_ago: Optional[int] = None
    age_at_onset: Optional[int] = None


class ExtentFact(FactBase):
    label: ClassVar[Label] = Label("tumörutbredning (stadium/metastasering)", "tumour extent (stage/metastases)")
    date_field: ClassVar[Optional[str]] = "date"
    age_field: ClassVar[Optional[str]] = None
    kind: Literal["extent"] = "extent"
    value: str
    source: str
    date: Optional[Date] = None


class EcogFact(FactBase):
    label: ClassVar[Label] = Label("ECOG", "ECOG")
    date_field: ClassVar[Optional[str]] = "date"
    age_field: ClassVar[Optional[str]] = "age_days"
    kind: Literal["ecog"] = "ecog"
    value: int
    date: Optional[Date] = None
    age_days: Optional[int] = None
    derived: bool = False


class PerformanceFact(FactBase):
    """A performance score on a scale other than ECOG (Lansky for children); never converted to ECOG."""

    label: ClassVar[Label] = Label("funktionsstatus (Lansky)", "performance status (Lansky)")
    date_field: ClassVar[Optional[str]] = "date"
    age_field: ClassVar[Optional[str]] = "age_days"
    kind: Literal["performance"] = "performance"
    scale: str
    value: int
    date: Optional[Date] = None
    age_days: Optional[int] = None


class LabFact(FactBase):
    label: ClassVar[Label] = Label("labvärde", "lab value")
    date_field: ClassVar[Optional[str]] = "date"
    age_field: ClassVar[Optional[str]] = "age_days"
    kind: Literal["lab"] = "lab"
    analyte: str
    value: Decimal
    unit: str
    uln: Optional[Decimal] = None
    x_uln: Optional[Decimal] = None
    date: Optional[Date] = None
    age_days: Optional[int] = None


class PregnancyFact(FactBase):
    label: ClassVar[Label] = Label("graviditetsstatus", "pregnancy status")
    date_field: ClassVar[Optional[str]] = "date"
    age_field: ClassVar[Optional[str]] = "age_days"
    kind: Literal["pregnancy"] = "pregnancy"
    status: str
    source: str
    date: Optional[Date] = None
    age_days: Optional[int] = None


class VariantFact(FactBase):
    label: ClassVar[Label] = Label("genomisk variant", "genomic variant")
    date_field: ClassVar[Optional[str]] = "date"
    age_field: ClassVar[Optional[str]] = None
    kind: Literal["variant"] = "variant"
    gene: str
    present: bool
    protein: Optional[str] = None
    cdna: Optional[str] = None
    change_type: Optional[str] = None
    copy_number: Optional[Decimal] = None
    cn_change: Optional[str] = None
    fusion_partner: Optional[str] = None
    origin: Optional[str] = None
    significance: Optional[str] = None
    vaf: Optional[Decimal] = None
    date: Optional[Date] = None


class TmbFact(FactBase):
    label: ClassVar[Label] = Label("TMB", "TMB")
    date_field: ClassVar[Optional[str]] = "date"
    age_field: ClassVar[Optional[str]] = None
    kind: Literal["tmb"] = "tmb"
    value: Optional[Decimal] = None  # absent when the laboratory gave only its call (interpretation)
    interpretation: Optional[str] = None  # the laboratory's call: high | low
    date: Optional[Date] = None


class MsiFact(FactBase):
    label: ClassVar[Label] = Label("MSI-status", "MSI status")
    date_field: ClassVar[Optional[str]] = "date"
    age_field: ClassVar[Optional[str]] = None
    kind: Literal["msi"] = "msi"
    status: str
    date: Optional[Date] = None


class IhcFact(FactBase):
    label: ClassVar[Label] = Label("IHC/ISH-markör", "IHC/ISH marker")
    date_field: ClassVar[Optional[str]] = "date"
    age_field: ClassVar[Optional[str]] = None
    kind: Literal["ihc"] = "ihc"
    marker: str
    result: Optional[str] = None
    score: Optional[str] = None
    value: Optional[Decimal] = None
    date: Optional[Date] = None


class GenomicReportFact(FactBase):
    label: ClassVar[Label] = Label("molekylärpatologiskt svar", "molecular report")
    date_field: ClassVar[Optional[str]] = "date"
    age_field: ClassVar[Optional[str]] = "age_days"
    kind: Literal["genomic_report"] = "genomic_report"
    assay: Optional[str] = None
    broad: Optional[bool] = None
    final: Optional[bool]  # unknown when the status is present but not understood
    has_performer: bool
    date: Optional[Date] = None
    age_days: Optional[int] = None


class MedicationFact(FactBase):
    label: ClassVar[Label] = Label("läkemedelshistorik", "medication history")
    date_field: ClassVar[Optional[str]] = "start"
    age_field: ClassVar[Optional[str]] = "start_days_ago"
    kind: Literal["medication"] = "medication"
    atc: Optional[str] = None
    atc_class: Optional[str] = None
    atc_group: Optional[str] = None
    status: Optional[str] = None
    current: Optional[bool]  # unknown when the status is present but not understood
    prior: Optional[bool]
    start: Optional[Date] = None
    start_days_ago: Optional[int] = None
    end_days_ago: Optional[int] = None


class TrialCandidacyFact(FactBase):
    label: ClassVar[Label] = Label("studiekandidatur", "trial candidacy")
    date_field: ClassVar[Optional[str]] = None
    age_field: ClassVar[Optional[str]] = None
    kind: Literal["trial_candidacy"] = "trial_candidacy"
    status: Optional[str]  # unknown when present but not a ResearchSubject status
    phase: Optional[str] = None
    study: Optional[str] = None


class AssertionFact(FactBase):
    label: ClassVar[Label] = Label("klinisk bedömning", "clinical assessment")
    date_field: ClassVar[Optional[str]] = "date"
    age_field: ClassVar[Optional[str]] = "age_days"
    kind: Literal["assertion"] = "assertion"
    code: str
    value: Optional[str] = None
    flag: Optional[bool] = None
    date: Optional[Date] = None
    age_days: Optional[int] = None
    since_days: Optional[int] = None


class FamilyHistoryFact(FactBase):
    label: ClassVar[Label] = Label("släktanamnes", "family history")
    date_field: ClassVar[Optional[str]] = None
    age_field: ClassVar[Optional[str]] = None
    kind: Literal["family_history"] = "family_history"
    relationship: str
    degree: Optional[int] = None
    icd10: Optional[str] = None
    icd10_3: Optional[str] = None
    snomed: Optional[str] = None
    onset_age: Optional[int] = None


Fact = Union[
    PatientFact,
    DiagnosisFact,
    ExtentFact,
    EcogFact,
    PerformanceFact,
    LabFact,
    PregnancyFact,
    VariantFact,
    TmbFact,
    MsiFact,
    IhcFact,
    GenomicReportFact,
    MedicationFact,
    TrialCandidacyFact,
    AssertionFact,
    FamilyHistoryFact,
]

_ORDER: tuple[type[FactBase], ...] = (
    PatientFact,
    DiagnosisFact,
    ExtentFact,
    EcogFact,
    PerformanceFact,
    LabFact,
    PregnancyFact,
    VariantFact,
    TmbFact,
    MsiFact,
    IhcFact,
    GenomicReportFact,
    MedicationFact,
    TrialCandidacyFact,
    AssertionFact,
    FamilyHistoryFact,
)

#: kind -> model class; this order is the order of kinds everywhere (facts, counts, schema).
FACT_MODELS: Mapping[str, type[FactBase]] = MappingProxyType({cls.model_fields["kind"].default: cls for cls in _ORDER})

_PY_TYPES: Mapping[object, FieldType] = MappingProxyType(
    {str: "str", int: "int", bool: "bool", Decimal: "decimal", Date: "date"}
)
_NOT_ENGINE = ("kind", "evidence")


def _field_type(model: type[FactBase], name: str, annotation: object) -> FieldType:
    args = [a for a in get_args(annotation) if a is not type(None)] or [annotation]
    if len(args) != 1 or args[0] not in _PY_TYPES:
        raise TypeError(
            f"{model.__name__}.{name}: {annotation!r} is not a fact field type "
            f"(str, int, bool, Decimal, date, optionally Optional)"
        )
    return _PY_TYPES[args[0]]


def schema_of(model: type[FactBase]) -> Mapping[str, FieldType]:
    """Engine-visible field -> type of one model, in declaration order; checks the model's
    ``date_field`` (a date) and ``age_field`` (an int)."""
    fields = {
        name: _field_type(model, name, info.annotation)
        for name, info in model.model_fields.items()
        if name not in _NOT_ENGINE
    }
    for what, name, wanted in (("date_field", model.date_field, "date"), ("age_field", model.age_field, "int")):
        if name is not None and fields.get(name) != wanted:
            raise TypeError(f"{model.__name__}.{what} {name!r} is not a {wanted} field")
    return MappingProxyType(fields)


#: kind -> engine-visible field -> type (read-only), derived from the models.
FACT_SCHEMA: Mapping[str, Mapping[str, FieldType]] = MappingProxyType(
    {kind: schema_of(model) for kind, model in FACT_MODELS.items()}
)

#: kind -> ((field, encoder or None), ...), precomputed for :meth:`FactBase.engine_fields`.
_KIND_ENCODERS: dict[str, tuple[tuple[str, Optional[Callable[..., int]]], ...]] = {
    kind: tuple((name, ENCODERS[t]) for name, t in fields.items()) for kind, fields in FACT_SCHEMA.items()
}


@dataclass(frozen=True)
class FactSet:
    """All facts of one patient: the patient fact first, then by kind (FACT_SCHEMA order) and
    bundle order. ``notes`` holds the loader's notes followed by the extractor's."""

    patient: PatientFact
    facts: tuple[Fact, ...]
    notes: tuple[DataQualityNote, ...] = ()
    source: str = ""
    #: (index in ``facts``, the same fact at the latest completion of the partial date it was read from):
    #: ``facts`` holds each such fact at the earliest completion. A test is met or not met for it only
    #: when both ends agree (see ``mdtflag.evaluate.match``).
    completions: tuple[tuple[int, Fact], ...] = ()
    #: Values present in the bundle but unreadable (unit not accepted, implausible, conflicting, ...), as
    #: (kind, the fields known about them, engine-encoded, e.g. ``{"analyte": "haemoglobin"}``, resource,
    #: element). A criterion that finds no fact but could have been decided by one of them is *unknown*
    #: with the reason ``unreadable``, never ``absent``.
    unreadable: tuple[tuple[str, dict[str, Any], str, str], ...] = ()
    #: Fields of facts present in the bundle but unreadable, as (kind, field, resource, element): a test
    #: on that field of a fact from that resource is *unknown* with the reason ``unreadable``.
    unreadable_fields: tuple[tuple[str, str, str, str], ...] = ()

    def of_kind(self, kind: str) -> tuple[Fact, ...]:
        return tuple(f for f in self.facts if f.kind == kind)


def count_by_kind(factsets: Iterable[FactSet]) -> dict[str, int]:
    """Number of facts per kind over several fact sets (every kind listed, in FACT_SCHEMA order)."""
    counts = dict.fromkeys(FACT_SCHEMA, 0)
    for fs in factsets:
        for f in fs.facts:
            counts[f.kind] += 1
    return counts
