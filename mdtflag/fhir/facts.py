"""Stage 2: turn one patient's bundle into typed, immutable facts with provenance.

``extract_facts(bundle, as_of, regions)`` reads the plain dicts of a :class:`~mdtflag.load.LoadedBundle`
as described in FHIR_INPUT.md §1-§7 and returns a :class:`FactSet`. It never raises for any dict
content: an element it cannot use becomes a :class:`~mdtflag.errors.DataQualityNote` and the fact it
would have given is left out (unknown), never defaulted.

Fact kinds and their engine-visible fields are listed in :data:`FACT_SCHEMA` (see
docs/architecture.md); each kind has a frozen pydantic model (``PatientFact``, ``DiagnosisFact``, ...)
and every fact carries ``evidence``: the resource, the element read and the value seen.

Where only the current value matters, only the most recent one becomes a fact ("most recent" =
latest effective date, dated before undated, later in the bundle on a tie):

* ``ecog``: the most recent ECOG; a Karnofsky score (mapped, ``derived=True``) only when there is no
  usable ECOG at all;
* ``lab``: the most recent value per analyte (if that value is censored, e.g. ``<3``, the analyte is
  unknown and a note says why);
* ``pregnancy``: the most recent pregnancy-status and the most recent hCG observation (every active
  pregnancy Condition is a fact of its own);
* ``assertion``: the most recent Observation per assertion code.

Every other kind keeps one fact per source item. Dates are calendar dates as written (the time
and zone of a dateTime are ignored); ``*_days`` / ``age_days`` count days from that date to
``as_of`` (negative for dates after ``as_of``).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date as Date, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from functools import lru_cache
from types import MappingProxyType
from typing import Any, Callable, Iterable, Literal, Mapping, Optional, Union

from pydantic import BaseModel, ConfigDict

import mdtflag.fhir.regions as scb
from mdtflag.errors import DataQualityNote
from mdtflag.fhir.load import LoadedBundle

__all__ = [
    "FieldType", "FACT_SCHEMA", "FACT_MODELS", "encode_value", "Evidence", "Fact",
    "PatientFact", "DiagnosisFact", "ExtentFact", "EcogFact", "LabFact", "PregnancyFact",
    "VariantFact", "TmbFact", "MsiFact", "IhcFact", "GenomicReportFact", "MedicationFact",
    "TrialCandidacyFact", "AssertionFact", "FamilyHistoryFact", "RegionMap", "FactSet",
    "extract_facts", "count_by_kind", "normalise_icd10", "normalise_protein_hgvs",
]

# =============================================================================================
# Schema and models

FieldType = Literal["str", "int", "bool", "decimal", "date"]

#: kind -> engine-visible field -> type (read-only). The single source of truth for rules and
#: the compiler.
_SCHEMA: dict[str, dict[str, FieldType]] = {
    "patient": {"age": "int", "sex": "str", "deceased": "bool", "county": "str",
                "municipality": "str", "healthcare_region": "str"},
    "diagnosis": {"icd10": "str", "icd10_3": "str", "snomed": "str", "icdo3_topography": "str",
                  "morphology": "str", "cancer": "bool", "secondary": "bool",
                  "metastasis_site": "str", "active": "bool", "confirmed": "bool",
                  "histology_confirmed": "bool", "onset": "date", "onset_days_ago": "int",
                  "age_at_onset": "int"},
    "extent": {"value": "str", "source": "str", "date": "date"},
    "ecog": {"value": "int", "date": "date", "age_days": "int", "derived": "bool"},
    "lab": {"analyte": "str", "value": "decimal", "unit": "str", "uln": "decimal",
            "x_uln": "decimal", "date": "date", "age_days": "int"},
    "pregnancy": {"status": "str", "source": "str", "date": "date", "age_days": "int"},
    "variant": {"gene": "str", "present": "bool", "protein": "str", "cdna": "str",
                "change_type": "str", "copy_number": "decimal", "cn_change": "str",
                "fusion_partner": "str", "origin": "str", "significance": "str",
                "vaf": "decimal", "date": "date"},
    "tmb": {"value": "decimal", "date": "date"},
    "msi": {"status": "str", "date": "date"},
    "ihc": {"marker": "str", "result": "str", "score": "str", "value": "decimal", "date": "date"},
    "genomic_report": {"assay": "str", "broad": "bool", "final": "bool", "has_performer": "bool",
                       "date": "date", "age_days": "int"},
    "medication": {"atc": "str", "atc_class": "str", "atc_group": "str", "status": "str",
                   "current": "bool", "prior": "bool", "start": "date", "start_days_ago": "int",
                   "end_days_ago": "int"},
    "trial_candidacy": {"status": "str", "phase": "str", "study": "str"},
    "assertion": {"code": "str", "value": "str", "flag": "bool", "date": "date",
                  "age_days": "int", "since_days": "int"},
    "family_history": {"relationship": "str", "degree": "int", "icd10": "str", "icd10_3": "str",
                       "snomed": "str", "onset_age": "int"},
}
FACT_SCHEMA: Mapping[str, Mapping[str, FieldType]] = MappingProxyType(
    {kind: MappingProxyType(fields) for kind, fields in _SCHEMA.items()})

_EPOCH_ORDINAL = Date(1970, 1, 1).toordinal()


def _encode_decimal(value: Decimal) -> int:
    return int((value * 1000).to_integral_value(rounding=ROUND_HALF_EVEN))


def _encode_date(value: Date) -> int:
    return value.toordinal() - _EPOCH_ORDINAL


_ENCODERS: Mapping[str, Optional[Callable[[Any], Any]]] = MappingProxyType({
    "str": None, "int": None, "bool": None, "decimal": _encode_decimal, "date": _encode_date,
})
#: kind -> ((field, encoder or None), ...), precomputed from FACT_SCHEMA.
_KIND_ENCODERS = {kind: tuple((name, _ENCODERS[t]) for name, t in fields.items())
                  for kind, fields in FACT_SCHEMA.items()}


def encode_value(field_type: FieldType, value: Any) -> Any:
    """Encode one value for the engine: decimal -> int(value × 1000, half-even); date -> days
    since 1970-01-01; str/int/bool unchanged. Used for facts and for rule constants alike."""
    if field_type == "decimal":
        return _encode_decimal(value if isinstance(value, Decimal) else Decimal(str(value)))
    if field_type == "date":
        return _encode_date(value)
    if field_type not in _ENCODERS:
        raise ValueError(f"unknown field type {field_type!r}")
    return value


_FROZEN = ConfigDict(frozen=True, extra="forbid")


class Evidence(BaseModel):
    """Where a fact came from: ``resource`` ``"Type/id"``, the ``element`` read, the ``value`` seen."""

    model_config = _FROZEN
    resource: str
    element: str
    value: str


class _FactBase(BaseModel):
    model_config = _FROZEN
    evidence: tuple[Evidence, ...] = ()

    def engine_fields(self) -> dict[str, Any]:
        """``{"kind": ..., field: encoded value, ...}`` with absent (``None``) fields left out."""
        kind = self.kind  # type: ignore[attr-defined]
        out: dict[str, Any] = {"kind": kind}
        values = self.__dict__
        for name, encode in _KIND_ENCODERS[kind]:
            value = values[name]
            if value is not None:
                out[name] = value if encode is None else encode(value)
        return out


class PatientFact(_FactBase):
    kind: Literal["patient"] = "patient"
    age: Optional[int] = None          # absent only when birthDate is missing or unreadable
    sex: Optional[str] = None
    deceased: bool = False
    county: Optional[str] = None
    municipality: Optional[str] = None
    healthcare_region: Optional[str] = None


class DiagnosisFact(_FactBase):
    kind: Literal["diagnosis"] = "diagnosis"
    icd10: Optional[str] = None
    icd10_3: Optional[str] = None
    snomed: Optional[str] = None
    icdo3_topography: Optional[str] = None
    morphology: Optional[str] = None
    cancer: bool
    secondary: bool
    metastasis_site: Optional[str] = None
    active: bool
    confirmed: bool
    histology_confirmed: bool
    onset: Optional[Date] = None
    onset_days_ago: Optional[int] = None
    age_at_onset: Optional[int] = None


class ExtentFact(_FactBase):
    kind: Literal["extent"] = "extent"
    value: str
    source: str
    date: Optional[Date] = None


class EcogFact(_FactBase):
    kind: Literal["ecog"] = "ecog"
    value: int
    date: Optional[Date] = None
    age_days: Optional[int] = None
    derived: bool = False


class LabFact(_FactBase):
    kind: Literal["lab"] = "lab"
    analyte: str
    value: Decimal
    unit: str
    uln: Optional[Decimal] = None
    x_uln: Optional[Decimal] = None
    date: Optional[Date] = None
    age_days: Optional[int] = None


class PregnancyFact(_FactBase):
    kind: Literal["pregnancy"] = "pregnancy"
    status: str
    source: str
    date: Optional[Date] = None
    age_days: Optional[int] = None


class VariantFact(_FactBase):
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


class TmbFact(_FactBase):
    kind: Literal["tmb"] = "tmb"
    value: Decimal
    date: Optional[Date] = None


class MsiFact(_FactBase):
    kind: Literal["msi"] = "msi"
    status: str
    date: Optional[Date] = None


class IhcFact(_FactBase):
    kind: Literal["ihc"] = "ihc"
    marker: str
    result: Optional[str] = None
    score: Optional[str] = None
    value: Optional[Decimal] = None
    date: Optional[Date] = None


class GenomicReportFact(_FactBase):
    kind: Literal["genomic_report"] = "genomic_report"
    assay: Optional[str] = None
    broad: bool
    final: bool
    has_performer: bool
    date: Optional[Date] = None
    age_days: Optional[int] = None


class MedicationFact(_FactBase):
    kind: Literal["medication"] = "medication"
    atc: str
    atc_class: str
    atc_group: str
    status: Optional[str] = None
    current: bool
    prior: bool
    start: Optional[Date] = None
    start_days_ago: Optional[int] = None
    end_days_ago: Optional[int] = None


class TrialCandidacyFact(_FactBase):
    kind: Literal["trial_candidacy"] = "trial_candidacy"
    status: str
    phase: Optional[str] = None
    study: Optional[str] = None


class AssertionFact(_FactBase):
    kind: Literal["assertion"] = "assertion"
    code: str
    value: Optional[str] = None
    flag: Optional[bool] = None
    date: Optional[Date] = None
    age_days: Optional[int] = None
    since_days: Optional[int] = None


class FamilyHistoryFact(_FactBase):
    kind: Literal["family_history"] = "family_history"
    relationship: str
    degree: Optional[int] = None
    icd10: Optional[str] = None
    icd10_3: Optional[str] = None
    snomed: Optional[str] = None
    onset_age: Optional[int] = None


Fact = Union[PatientFact, DiagnosisFact, ExtentFact, EcogFact, LabFact, PregnancyFact, VariantFact,
             TmbFact, MsiFact, IhcFact, GenomicReportFact, MedicationFact, TrialCandidacyFact,
             AssertionFact, FamilyHistoryFact]

#: kind -> model class, in FACT_SCHEMA order.
FACT_MODELS: Mapping[str, type] = MappingProxyType({
    cls.model_fields["kind"].default: cls
    for cls in (PatientFact, DiagnosisFact, ExtentFact, EcogFact, LabFact, PregnancyFact,
                VariantFact, TmbFact, MsiFact, IhcFact, GenomicReportFact, MedicationFact,
                TrialCandidacyFact, AssertionFact, FamilyHistoryFact)
})


# =============================================================================================
# Regions and result


def _frozen_codes(mapping: Mapping[str, str], to_code: Callable[[object], Optional[str]],
                  what: str) -> Mapping[str, str]:
    out: dict[str, str] = {}
    for key, region in mapping.items():
        code = to_code(key)
        if code is None:
            raise ValueError(f"RegionMap: unknown {what} {key!r}")
        out[code] = region
    return MappingProxyType(out)


@dataclass(frozen=True)
class RegionMap:
    """County (länskod) -> healthcare region, and municipality (kommunkod) -> region for the
    municipalities of split counties only (Halland). Keys may be given as SCB codes or names
    ("Skåne", "Region Halland", "Halmstad"); they are stored as codes."""

    county_to_region: Mapping[str, str]
    municipality_to_region: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "county_to_region",
                           _frozen_codes(self.county_to_region, scb.county_code, "county"))
        object.__setattr__(self, "municipality_to_region",
                           _frozen_codes(self.municipality_to_region, scb.municipality_code,
                                         "municipality"))
        object.__setattr__(self, "_split", frozenset(m[:2] for m in self.municipality_to_region))

    @property
    def split_counties(self) -> frozenset[str]:
        """Counties whose region depends on the municipality (those with municipality entries)."""
        return self._split  # type: ignore[attr-defined]

    def region_for(self, county: Optional[str], municipality: Optional[str]) -> Optional[str]:
        if county is None:
            return None
        if county in self._split:  # type: ignore[attr-defined]
            return self.municipality_to_region.get(municipality) if municipality else None
        return self.county_to_region.get(county)

    @classmethod
    def default(cls) -> "RegionMap":
        """The healthcare-region table of CRITERIA.md §3.1 (built into :mod:`mdtflag.scb`)."""
        return _DEFAULT_REGIONS


_DEFAULT_REGIONS = RegionMap(scb.DEFAULT_COUNTY_REGION, scb.DEFAULT_MUNICIPALITY_REGION)


@dataclass(frozen=True)
class FactSet:
    """All facts of one patient: the patient fact first, then by kind (FACT_SCHEMA order) and
    bundle order. ``notes`` holds the loader's notes followed by the extractor's."""

    patient: PatientFact
    facts: tuple[Fact, ...]
    notes: tuple[DataQualityNote, ...] = ()
    source: str = ""

    def of_kind(self, kind: str) -> tuple[Fact, ...]:
        return tuple(f for f in self.facts if f.kind == kind)


def count_by_kind(factsets: Iterable[FactSet]) -> dict[str, int]:
    """Number of facts per kind over several fact sets (every kind listed, in FACT_SCHEMA order)."""
    counts = dict.fromkeys(FACT_SCHEMA, 0)
    for fs in factsets:
        for f in fs.facts:
            counts[f.kind] += 1
    return counts


# =============================================================================================
# Code tables (FHIR_INPUT.md, CODES.md)


def _norm_system_uncached(system: str) -> str:
    s = system.strip().lower().rstrip("/")
    if s.startswith("https://"):
        s = "http://" + s[8:]
    return s


_SYSTEM_CACHE: dict[str, str] = {}


def _norm_system(system: object) -> str:
    """Normalised code-system URI (lower case, no trailing slash, https -> http); "" if absent."""
    try:
        return _SYSTEM_CACHE[system]          # type: ignore[index]
    except (KeyError, TypeError):
        pass
    if type(system) is not str:
        return ""
    s = _norm_system_uncached(system)
    if len(_SYSTEM_CACHE) < 10_000:
        _SYSTEM_CACHE[system] = s
    return s


LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
ASSERTION_SYSTEM = "urn:mdtflag:assertion"
ASSAY_SYSTEM = "urn:mdtflag:assay"
_ICD10_OIDS = frozenset({"urn:oid:2.16.840.1.113883.6.90", "urn:oid:2.16.840.1.113883.6.3"})
_ATC_SYSTEMS = frozenset({"http://www.whocc.no/atc", "urn:oid:2.16.840.1.113883.6.73"})
_HGNC_SYSTEMS = frozenset({"http://www.genenames.org", "http://www.genenames.org/geneid"})
_SO_SYSTEMS = frozenset({"http://www.sequenceontology.org", "http://purl.obolibrary.org/obo/so"})
_UCUM = "http://unitsofmeasure.org"
_V2_0074 = "http://terminology.hl7.org/codesystem/v2-0074"
_PHASE_SYSTEM = "http://terminology.hl7.org/codesystem/research-study-phase"
_ROLE_SYSTEMS = frozenset({"http://terminology.hl7.org/codesystem/v3-rolecode",
                           "http://hl7.org/fhir/v3/rolecode"})
_AJCC = "http://cancerstaging.org"
_TBD = "http://hl7.org/fhir/uv/genomics-reporting/codesystem/tbd-codes-cs"

#: SNOMED CT malignant-neoplasm disorders (CODES.md §2 and the mCODE examples).
MALIGNANT_SNOMED = frozenset({
    "363346000",        # Malignant neoplastic disease
    "254837009",        # Malignant neoplasm of breast
    "372137005",        # Primary malignant neoplasm of breast
    "353431000119107",  # Primary malignant neoplasm of female left breast
    "188152004",        # Malignant neoplasm of upper-inner quadrant of female breast
    "254637007",        # Non-small cell lung cancer
    "424132000",        # Non-small cell carcinoma of lung, TNM stage 1
    "254632001",        # Small cell carcinoma of lung
    "67811000119102",   # Primary small cell malignant neoplasm of lung, TNM stage 1
    "363406005",        # Malignant tumor of colon
    "93761005",         # Primary malignant neoplasm of colon
    "109838007",        # Overlapping malignant neoplasm of colon
    "363443007",        # Malignant tumor of ovary
    "363418001",        # Malignant tumor of pancreas
    "92814006",         # Chronic lymphoid leukemia
    "277571004",        # B-cell acute lymphoblastic leukemia
    "550991000124107",  # Malignant neoplasm in full remission
})
#: SNOMED CT secondary (metastatic) malignant neoplasms: 128462008 and descendants shipped here.
SECONDARY_SNOMED = frozenset({
    "128462008",        # Secondary malignant neoplastic disease
    "94225005",         # Secondary malignant neoplasm of brain
    "94381002",         # Secondary malignant neoplasm of liver
    "94260004",         # Secondary malignant neoplasm of colon
    "314994000",        # Metastasis from malignant tumor of prostate
})
_SNOMED_SITE = {"94381002": "liver", "94225005": "brain"}
_PREGNANCY_SNOMED = frozenset({"77386006"})

_ECOG_LA = {"LA9622-7": 0, "LA9623-5": 1, "LA9624-3": 2, "LA9625-0": 3, "LA9626-8": 4,
            "LA9627-6": 5}
_ECOG_SNOMED = {"425389002": 0, "422512005": 1, "422894000": 2, "423053003": 3, "423237006": 4,
                "423409001": 5}
_KPS_LA = {"LA29175-9": 100, "LA29176-7": 90, "LA29177-5": 80, "LA29178-3": 70, "LA29179-1": 60,
           "LA29180-9": 50, "LA29181-7": 40, "LA29182-5": 30, "LA29183-3": 20, "LA29184-1": 10,
           "LA9627-6": 0}

_TNM_M = frozenset({(SNOMED, "277208005"), (SNOMED, "399387003"), (SNOMED, "371497001"),
                    (LOINC, "21907-1"), (LOINC, "21901-4")})
_STAGE_GROUP = frozenset({(SNOMED, "399390009"), (SNOMED, "399537006"), (SNOMED, "399588009"),
                          (LOINC, "21908-9"), (LOINC, "21902-2")})
#: mCODE history-of-metastatic-cancer: SNOMED 1287652008 and the descendants shipped here.
_HISTORY_METASTATIC = frozenset({(SNOMED, "1287652008"), (SNOMED, "1098951000119108")})
_M1_CODE = re.compile(r"^[ycpra]{0,3}M1(?![0-9])")
_M1_TEXT = re.compile(r"(?<![A-Za-z0-9])[ycpra]{0,3}M1(?:[a-d]|\b)")
_STAGE_IV_CODE = re.compile(r"^(?:stage\s*)?(?:IV|4)(?:[A-C]\d?)?$", re.IGNORECASE)
_STAGE_IV_TEXT = re.compile(r"\bstage\s+(?:IV|4)(?:[A-C]\d?)?\b", re.IGNORECASE)

#: LOINC -> (analyte, {accepted unit: (factor, canonical unit)}). No other unit is read.
_UMOL = {"umol/L": (Decimal(1), "umol/L")}
_MGDL = {"mg/dL": (Decimal(1), "mg/dL")}
_COUNT = {"10*9/L": (Decimal(1), "10*9/L")}
_ENZYME = {"ukat/L": (Decimal(1), "ukat/L"), "U/L": (Decimal(1), "U/L")}
_GFR = {"mL/min/{1.73_m2}": (Decimal(1), "mL/min/{1.73_m2}"), "mL/min": (Decimal(1), "mL/min")}
_HCG = {"[IU]/L": (Decimal(1), "[IU]/L"), "m[IU]/mL": (Decimal(1), "[IU]/L")}  # 1 mIU/mL ≡ 1 IU/L
LAB_CODES: Mapping[str, tuple[str, Mapping[str, tuple[Decimal, str]]]] = MappingProxyType({
    "751-8": ("neutrophils", _COUNT), "26499-4": ("neutrophils", _COUNT),
    "718-7": ("haemoglobin", {"g/L": (Decimal(1), "g/L"), "g/dL": (Decimal(10), "g/L")}),
    "777-3": ("platelets", _COUNT), "26515-7": ("platelets", _COUNT),
    "14631-6": ("bilirubin", _UMOL), "1975-2": ("bilirubin", _MGDL),
    "1742-6": ("alt", _ENZYME), "1920-8": ("ast", _ENZYME),
    "14682-9": ("creatinine", _UMOL), "2160-0": ("creatinine", _MGDL),
    "98979-8": ("egfr", _GFR), "33914-3": ("egfr", _GFR), "62238-1": ("egfr", _GFR),
    "2164-2": ("egfr", _GFR),
    "21198-7": ("hcg", _HCG), "2106-3": ("hcg", _HCG),
})
_PREGNANCY_STATUS = {(LOINC, "LA15173-0"): "pregnant", (LOINC, "LA26683-5"): "not-pregnant"}
_POS_NEG = {(LOINC, "LA6576-8"): "positive", (LOINC, "LA6577-6"): "negative",
            (SNOMED, "10828004"): "positive", (SNOMED, "260385009"): "negative"}
_HCG_CODES = frozenset({"2106-3", "21198-7"})

_MSI = {"LA26203-2": "msi-h", "LA26202-4": "msi-l", "LA14122-8": "mss"}
_IHC = {"48676-1": "HER2", "85319-2": "HER2", "85318-4": "HER2", "85337-4": "ER",
        "85339-0": "PR", "83052-1": "PD-L1", "85147-7": "PD-L1"}
_IHC_SCORE = re.compile(r"^[0-3]\+$")

_VARIANT_VALUE = {"LA9633-4": True, "LA9634-2": False}
_VARIANT_NO_CALL = frozenset({"LA18198-4", "LA11884-6"})
_ORIGIN = {"LA6683-2": "germline", "LA6684-0": "somatic"}
_SIGNIFICANCE = {"LA6668-3": "pathogenic", "LA26332-9": "likely-pathogenic", "LA26333-7": "vus",
                 "LA26334-5": "likely-benign", "LA6675-8": "benign"}
_CN_CHANGE = {"LA14033-7": "gain", "LA14034-5": "loss"}
_SO_CHANGE = {
    "SO:0001483": "snv", "SO:1000002": "snv",
    "SO:0000159": "indel", "SO:0000667": "indel", "SO:1000032": "indel", "SO:1000035": "indel",
    "SO:0001019": "cnv", "SO:0001742": "cnv", "SO:0001743": "cnv", "SO:0001911": "cnv",
    "SO:0001912": "cnv",
    "SO:0001565": "fusion", "SO:0001886": "fusion", "SO:0000806": "fusion",
}
#: Structural rearrangements: read as a fusion when the variant names two genes.
_SO_REARRANGEMENT = frozenset({"SO:1000044", "SO:0000199", "SO:0002062", "SO:1000030"})
_LOINC_CHANGE = {"LA6690-7": "snv"}
_SO_CN = {"SO:0001742": "gain", "SO:0001911": "gain", "SO:0001743": "loss", "SO:0001912": "loss"}
_GENE_SYMBOL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9\-\.@_]{0,29}$")

_ASSAYS = frozenset({"GMS560", "WGS", "WES", "TSO500", "broad-panel", "targeted-panel", "ihc",
                     "ish"})
_BROAD_ASSAYS = frozenset({"GMS560", "WGS", "WES", "TSO500", "broad-panel"})
_FINAL_REPORT = frozenset({"final", "amended", "corrected", "appended"})
_PATHOLOGY_SECTIONS = frozenset({"PAT", "SP", "CP"})
_PATHOLOGY_LOINC = frozenset({"11526-1", "60568-3", "22637-3", "11529-5", "60567-5"})

_ATC_CODE = re.compile(r"^[A-Z]\d\d(?:[A-Z](?:[A-Z](?:\d\d)?)?)?$")
_MED_GIVEN = frozenset({"active", "completed", "stopped", "on-hold", "in-progress", "unknown"})
_MED_CURRENT = frozenset({"active", "in-progress"})

#: mdtflag assertion code -> ("coded", allowed values) | ("bool", None)
_ASSERTIONS: Mapping[str, tuple[str, Optional[frozenset[str]]]] = MappingProxyType({
    "standard-treatment-status": ("coded", frozenset({"exhausted", "not-exhausted", "declined",
                                                       "none-available"})),
    "measurable-disease": ("bool", None),
    "evaluable-disease": ("bool", None),
    "biopsy-feasible": ("bool", None),
    "extent": ("coded", frozenset({"locally-advanced-unresectable", "metastatic", "localised"})),
    "brain-metastases-status": ("coded", frozenset({"none", "progressive", "stable-treated"})),
    # haematological malignancies: whether the disease is active and needs therapy (F-ADV)
    "disease-status": ("coded", frozenset({"relapsed", "refractory", "active-requiring-therapy",
                                           "remission", "no-therapy-indicated"})),
    "cancer-genetics-referral": ("bool", None),
})
_REFERRAL = "cancer-genetics-referral"

#: v3-RoleCode -> degree of relationship.
_DEGREE = {c: 1 for c in ("MTH", "FTH", "SIS", "BRO", "DAU", "SON", "NMTH", "NFTH", "NSIS", "NBRO",
                          "CHILD", "PRN", "SIB")}
_DEGREE.update({c: 2 for c in ("GRMTH", "GRFTH", "MGRMTH", "MGRFTH", "PGRMTH", "PGRFTH", "AUNT",
                               "UNCLE", "MAUNT", "MUNCLE", "PAUNT", "PUNCLE", "NIECE", "NEPHEW",
                               "GRNDCHILD", "GRNDDAU", "GRNDSON", "HSIB")})

_IGNORED_STATUS = frozenset({"entered-in-error", "cancelled"})
_INACTIVE_CLINICAL = frozenset({"resolved", "remission", "inactive"})
_LIMIT = Decimal("9e15")   # engine values are int64 after ×1000

# =============================================================================================
# Small readers (all total: they never raise on odd input)


def _str(x: object) -> Optional[str]:
    if type(x) is str:
        x = x.strip()
        return x or None
    return None


def _list(x: object) -> list:
    return x if type(x) is list else []


def _dict(x: object) -> dict:
    return x if type(x) is dict else {}


def _codings(cc: object) -> list[tuple[str, str, Optional[str]]]:
    """(normalised system, code, display) for each coding with a non-empty string code."""
    if type(cc) is not dict:
        return []
    coding = cc.get("coding")
    if type(coding) is not list:
        return []
    out = []
    for c in coding:
        if type(c) is dict:
            code = c.get("code")
            if type(code) is str and code:
                if code[0].isspace() or code[-1].isspace():
                    code = code.strip()
                    if not code:
                        continue
                disp = c.get("display")
                out.append((_norm_system(c.get("system")), code,
                            disp if type(disp) is str else None))
    return out


def _status_code(cc: object) -> Optional[str]:
    """First code of a CodeableConcept status (e.g. Condition.verificationStatus)."""
    for _, code, _ in _codings(cc):
        return code
    return None


@lru_cache(maxsize=8192)
def _parse_date(text: str) -> tuple[Optional[Date], bool]:
    """(date, partial) for a FHIR date/dateTime/instant; (None, False) when unreadable."""
    s = text.strip()
    try:
        if len(s) >= 10 and s[4] == "-" and s[7] == "-" and (len(s) == 10 or s[10] in "T "):
            return Date(int(s[0:4]), int(s[5:7]), int(s[8:10])), False
        if len(s) == 7 and s[4] == "-":
            return Date(int(s[0:4]), int(s[5:7]), 1), True
        if len(s) == 4 and s.isdigit():
            return Date(int(s), 1, 1), True
    except ValueError:
        pass
    return None, False


def _number(x: object) -> Optional[Decimal]:
    """A JSON number as Decimal (bool excluded); None for anything else or out of range."""
    t = type(x)
    if t is int:
        d = Decimal(x)
    elif t is float:
        if x != x or x in (float("inf"), float("-inf")):
            return None
        d = Decimal(repr(x))
    else:
        return None
    return d if -_LIMIT < d < _LIMIT else None


_THREE_TO_ONE = {"Ala": "A", "Arg": "R", "Asn": "N", "Asp": "D", "Cys": "C", "Gln": "Q",
                 "Glu": "E", "Gly": "G", "His": "H", "Ile": "I", "Leu": "L", "Lys": "K",
                 "Met": "M", "Phe": "F", "Pro": "P", "Ser": "S", "Thr": "T", "Trp": "W",
                 "Tyr": "Y", "Val": "V", "Ter": "*", "Sec": "U", "Pyl": "O", "Xaa": "X",
                 "Asx": "B", "Glx": "Z"}
_THREE_LETTER = re.compile("|".join(_THREE_TO_ONE))


def normalise_protein_hgvs(text: str) -> Optional[str]:
    """One-letter protein HGVS: "NP_004324.2:p.Val600Glu", "p.(Val600Glu)", "p.V600E" -> "p.V600E".

    Returns ``None`` when ``text`` holds no ``p.`` description.
    """
    s = text.strip()
    i = s.find("p.")
    if i < 0:
        return None
    body = s[i + 2:].strip()
    if body.startswith("(") and body.endswith(")"):
        body = body[1:-1]
    body = _THREE_LETTER.sub(lambda m: _THREE_TO_ONE[m.group(0)], body)
    return f"p.{body}" if body else None


_ICD10_FORM = re.compile(r"^[A-Z][0-9][0-9A-Z](?:\.[0-9A-Z]{1,4})?$")


def normalise_icd10(code: str) -> Optional[str]:
    """"C221" / "c22.1" / "C22.1" -> "C22.1"; None when not of ICD-10 form."""
    s = code.strip().upper().replace(" ", "").rstrip("*+†").rstrip(".")
    if len(s) > 3 and "." not in s:
        s = f"{s[:3]}.{s[3:]}"
    return s if _ICD10_FORM.match(s) else None


def _icd10_classes(icd10: str) -> tuple[bool, bool, bool]:
    """(malignant C00-C97, secondary C77-C79, pregnancy Z33/O00-O9A) for a normalised code."""
    letter, rest = icd10[0], icd10[1:3]
    if letter == "C":
        if rest.isdigit():
            n = int(rest)
            return n <= 97, 77 <= n <= 79, False
        return True, rest == "7B", False          # ICD-10-CM C4A, C7A, C7B
    if letter == "O":
        return False, False, True
    return False, False, icd10[:3] == "Z33"


def _ref_key(ref: str) -> Optional[str]:
    """``"Type/id"`` from a relative or absolute literal reference (history stripped)."""
    parts = ref.split("/_history/")[0].rstrip("/").split("/")
    if len(parts) >= 2 and parts[-2][:1].isupper() and parts[-1]:
        return f"{parts[-2]}/{parts[-1]}"
    return None


# =============================================================================================
# Extraction


class _Extractor:
    """One extraction run. Facts are collected per kind as (order key, fact)."""

    def __init__(self, bundle: LoadedBundle, as_of: Date, regions: Optional[RegionMap]) -> None:
        self.bundle = bundle
        self.as_of = as_of
        self.as_of_ord = as_of.toordinal()
        self.regions = regions if regions is not None else _DEFAULT_REGIONS
        self.notes: list[DataQualityNote] = []
        self.out: dict[str, list[tuple[tuple[int, int], Any]]] = {k: [] for k in FACT_SCHEMA}
        # latest-value candidates: key -> (rank, order, builder)
        self.latest: dict[tuple, tuple[tuple, tuple[int, int], Callable[[], None]]] = {}
        self.latest_kps: Optional[Callable[[], None]] = None
        self.latest_kps_rank: tuple = ()
        self.ecog_seen = False
        self.patient = bundle.patient if type(bundle.patient) is dict else {}
        pid = self.patient.get("id")
        self.patient_id = pid if type(pid) is str else None
        self.birth: Optional[Date] = None
        # index for reference resolution, and the resources handlers read, with their names
        self.by_key: dict[str, dict] = {}
        self.by_url: dict[str, dict] = {}
        self.work: list[tuple[int, dict, str, Callable]] = []
        self.reports: list[tuple[int, dict, str]] = []
        self.observations: list[tuple[int, dict, str]] = []
        self.own_refs = {f"Patient/{pid}"} if self.patient_id else set()
        urls = bundle.full_urls if len(bundle.full_urls) == len(bundle.resources) else ()
        handlers = self.HANDLERS
        for i, res in enumerate(bundle.resources):
            if type(res) is not dict:
                continue
            rt, rid = res.get("resourceType"), res.get("id")
            if type(rt) is not str:
                continue
            if type(rid) is str and rid:
                name = f"{rt}/{rid}"
                self.by_key.setdefault(name, res)
            else:
                name = f"{rt}/#{i}"
            if urls and urls[i]:
                self.by_url.setdefault(urls[i], res)
                if res is self.patient:
                    self.own_refs.add(urls[i])
            handler = handlers.get(rt)
            if handler is not None and res is not self.patient:
                self.work.append((i, res, name, handler))
                if rt == "Observation":
                    self.observations.append((i, res, name))
                elif rt == "DiagnosticReport":
                    self.reports.append((i, res, name))
        self.pathology_reports: set[int] = set()      # id() of pathology DiagnosticReports
        self.pathology_conditions: set[int] = set()   # id() of Conditions they refer to
        self._significance: Optional[dict[int, tuple[str, Evidence]]] = None

    # -- notes and helpers ------------------------------------------------------------------

    def note(self, code: str, message: str, resource: Optional[str] = None,
             element: Optional[str] = None) -> None:
        self.notes.append(DataQualityNote(code, message, resource, element))

    def add(self, kind: str, order: tuple[int, int], fact: Any) -> None:
        self.out[kind].append((order, fact))

    def offer_latest(self, key: tuple, when: Optional[Date], order: tuple[int, int],
                     build: Callable[[], None]) -> None:
        """Keep ``build`` only if it is the most recent candidate for ``key`` so far."""
        rank = (when is not None, when.toordinal() if when else 0, order)
        cur = self.latest.get(key)
        if cur is None or rank > cur[0]:
            self.latest[key] = (rank, order, build)

    def days_ago(self, d: Optional[Date]) -> Optional[int]:
        return None if d is None else self.as_of_ord - d.toordinal()

    def date_of(self, value: object, name: str, element: str) -> Optional[Date]:
        if value is None:
            return None
        if type(value) is not str:
            self.note("wrong-type", f"{element} is not a string", name, element)
            return None
        d, partial = _parse_date(value)
        if d is None:
            self.note("invalid-date", f"{element} {value[:40]!r} is not a FHIR date", name, element)
        elif partial:
            self.note("partial-date", f"{element} {value!r} is a partial date; {d.isoformat()} used",
                      name, element)
        return d

    def effective(self, res: dict, name: str) -> tuple[Optional[Date], str]:
        """Observation-like date: effectiveDateTime, effectivePeriod.start, effectiveInstant, issued."""
        rt = res.get("resourceType", "Observation")
        for key in ("effectiveDateTime", "effectiveInstant"):
            if key in res:
                return self.date_of(res[key], name, f"{rt}.{key}"), f"{rt}.{key}"
        period = res.get("effectivePeriod")
        if type(period) is dict and "start" in period:
            return (self.date_of(period["start"], name, f"{rt}.effectivePeriod.start"),
                    f"{rt}.effectivePeriod.start")
        if "issued" in res:
            return self.date_of(res["issued"], name, f"{rt}.issued"), f"{rt}.issued"
        return None, ""

    def resolve(self, reference: object) -> tuple[Optional[dict], Optional[str]]:
        """(resource, reference text) for a Reference; resource None when absent from the bundle."""
        ref = reference.get("reference") if type(reference) is dict else None
        if type(ref) is not str or not ref:
            return None, None
        hit = self.by_url.get(ref)
        if hit is None:
            key = _ref_key(ref)
            hit = self.by_key.get(key) if key else None
        return hit, ref

    def other_patient(self, res: dict) -> Optional[tuple[str, str]]:
        """(reference text, element) if ``res`` clearly belongs to another Patient, else None."""
        for link in ("subject", "patient", "individual"):
            reference = res.get(link)
            if type(reference) is not dict:
                continue
            ref = reference.get("reference")
            if type(ref) is not str or ref in self.own_refs:
                return None
            target, ref = self.resolve(reference)
            if ref is None:
                continue
            if target is not None:
                return (ref, link) if (target.get("resourceType") == "Patient"
                                       and target is not self.patient) else None
            key = _ref_key(ref)
            if key and key.startswith("Patient/") and key != f"Patient/{self.patient_id}":
                return ref, link
            return None
        return None

    @staticmethod
    def name_of(res: dict, index: int) -> str:
        rt = res.get("resourceType")
        rid = res.get("id")
        rt = rt if type(rt) is str else "Resource"
        return f"{rt}/{rid}" if type(rid) is str and rid else f"{rt}/#{index}"

    # -- run ----------------------------------------------------------------------------------

    def run(self) -> FactSet:
        patient = self.safely(self.read_patient, self.patient, "Patient")
        if patient is None:       # only on an internal error; keep the patient with nothing known
            patient = PatientFact(evidence=())
        for i, res, name in self.reports:
            self.safely(self.prepare_report, res, name, i)
        for i, res, name, handler in self.work:
            other = self.other_patient(res)
            if other is not None:
                self.note("other-patient", f"{name} refers to {other[0]}, not to this bundle's "
                          f"Patient; not used", name, f"{res['resourceType']}.{other[1]}")
                continue
            self.safely(handler, self, res, name, i)
        # the builders refer back to this extractor: take them out, so that no reference cycle keeps
        # the patient's data alive after the run
        latest, self.latest = self.latest, {}
        latest_kps, self.latest_kps = self.latest_kps, None
        for _rank, _order, build in latest.values():
            build()
        if not self.ecog_seen and latest_kps is not None:
            latest_kps()
        facts: list[Any] = [patient]
        for kind in FACT_SCHEMA:
            items = self.out[kind]
            if items:
                items.sort(key=lambda t: t[0])
                facts.extend(f for _, f in items)
        return FactSet(patient=patient, facts=tuple(facts),
                       notes=tuple(self.bundle.notes) + tuple(self.notes),
                       source=self.bundle.source)

    def safely(self, fn: Callable, *args: Any) -> Any:
        try:
            return fn(*args)
        except Exception as exc:  # noqa: BLE001 - the safety net; tests assert it never fires
            name = args[-2] if len(args) >= 3 and type(args[-2]) is str else None
            self.note("extraction-error", f"could not read {name or 'resource'}: "
                      f"{type(exc).__name__}: {exc}"[:300], name)
            return None

    def prepare_report(self, res: dict, name: str, i: int) -> None:
        """Mark pathology reports and the Conditions they refer to (for histology_confirmed)."""
        pathology = any(s == _V2_0074 and c in _PATHOLOGY_SECTIONS
                        for cat in _list(res.get("category")) for s, c, _ in _codings(cat))
        pathology = pathology or any(s == LOINC and c in _PATHOLOGY_LOINC
                                     for s, c, _ in _codings(res.get("code")))
        if not pathology or _status_code_plain(res) in _IGNORED_STATUS:
            return
        self.pathology_reports.add(id(res))
        # references from the report to conditions (extensions, supportingInfo, ...)
        stack: list = [v for k, v in res.items() if k not in ("subject", "performer", "result")]
        while stack:
            x = stack.pop()
            if type(x) is dict:
                target, _ = self.resolve(x)
                if target is not None and target.get("resourceType") == "Condition":
                    self.pathology_conditions.add(id(target))
                stack.extend(v for v in x.values() if type(v) is dict or type(v) is list)
            elif type(x) is list:
                stack.extend(x)

    @property
    def significance(self) -> dict[int, tuple[str, Evidence]]:
        """id(variant Observation) -> clinical significance from diagnostic-implication
        Observations that derive from it (Genomics Reporting STU3 shape); built on first use."""
        if self._significance is None:
            self._significance = {}
            for i, res, name in self.observations:
                if "derivedFrom" in res:
                    self.safely(self.read_implication, res, name, i)
        return self._significance

    def read_implication(self, res: dict, name: str, i: int) -> None:
        if not any(c == "diagnostic-implication" for _, c, _ in _codings(res.get("code"))):
            return
        if _status_code_plain(res) in _IGNORED_STATUS:
            return
        significance = None
        for j, comp in enumerate(_list(res.get("component"))):
            if type(comp) is not dict:
                continue
            if any(s == LOINC and c == "53037-8" for s, c, _ in _codings(comp.get("code"))):
                for s, c, _ in _codings(comp.get("valueCodeableConcept")):
                    if s == LOINC and c in _SIGNIFICANCE:
                        significance = (_SIGNIFICANCE[c], Evidence(
                            resource=name, element=f"Observation.component[{j}].valueCodeableConcept",
                            value=c))
                        break
        if significance is None:
            return
        for reference in _list(res.get("derivedFrom")):
            target, _ = self.resolve(reference)
            if target is not None:
                self._significance.setdefault(id(target), significance)

    # -- Patient ----------------------------------------------------------------------------

    def read_patient(self, p: dict, name: str) -> PatientFact:
        name = self.name_of(p, 0) if p else "Patient/(missing)"
        ev: list[Evidence] = []
        sex = None
        gender = p.get("gender")
        if gender is not None:
            if type(gender) is str and gender in ("male", "female", "other", "unknown"):
                sex = gender if gender != "unknown" else None
                ev.append(Evidence(resource=name, element="Patient.gender", value=gender))
            else:
                self.note("wrong-type", "Patient.gender is not one of male/female/other/unknown",
                          name, "Patient.gender")
        age = None
        if "birthDate" in p:
            birth = self.date_of(p["birthDate"], name, "Patient.birthDate")
            if birth is not None:
                self.birth = birth
                age = _years_between(birth, self.as_of)
                ev.append(Evidence(resource=name, element="Patient.birthDate", value=p["birthDate"]))
        else:
            self.note("missing-element", "Patient.birthDate is absent: age unknown", name,
                      "Patient.birthDate")
        deceased = False
        if "deceasedBoolean" in p:
            flag = p["deceasedBoolean"]
            if type(flag) is bool:
                deceased = flag
                ev.append(Evidence(resource=name, element="Patient.deceasedBoolean",
                                   value=str(flag).lower()))
            else:
                self.note("wrong-type", "Patient.deceasedBoolean is not a boolean", name,
                          "Patient.deceasedBoolean")
        elif "deceasedDateTime" in p:
            raw = p["deceasedDateTime"]
            when = self.date_of(raw, name, "Patient.deceasedDateTime")
            deceased = when is None or when <= self.as_of   # a death date after as_of: alive then
            ev.append(Evidence(resource=name, element="Patient.deceasedDateTime",
                               value=raw if type(raw) is str else repr(raw)[:40]))
        county, municipality, region = self.read_address(p, name, ev)
        return PatientFact(age=age, sex=sex, deceased=deceased, county=county,
                           municipality=municipality, healthcare_region=region, evidence=tuple(ev))

    def read_address(self, p: dict, name: str, ev: list[Evidence]):
        addresses = [(j, a) for j, a in enumerate(_list(p.get("address"))) if type(a) is dict]
        if "address" in p and type(p["address"]) is not list:
            self.note("wrong-type", "Patient.address is not an array", name, "Patient.address")
        if not addresses:
            self.note("unknown-region", "Patient.address is absent: healthcare region unknown",
                      name, "Patient.address")
            return None, None, None
        idx, chosen = next((ja for ja in addresses if ja[1].get("use") == "home"),
                           next((ja for ja in addresses if ja[1].get("use") != "old"),
                                addresses[0]))
        state, district = chosen.get("state"), chosen.get("district")
        county = municipality = None
        if state is not None:
            county = scb.county_code(state)
            if county is not None:
                ev.append(Evidence(resource=name, element=f"Patient.address[{idx}].state",
                                   value=str(state)))
            else:
                self.note("unknown-region", f"Patient.address.state {str(state)[:40]!r} is not a "
                          f"Swedish county code or name", name, f"Patient.address[{idx}].state")
        if district is not None:
            municipality = scb.municipality_code(district)
            if municipality is not None:
                ev.append(Evidence(resource=name, element=f"Patient.address[{idx}].district",
                                   value=str(district)))
                if county is None:
                    county = municipality[:2]
                elif county != municipality[:2]:
                    self.note("unknown-region", f"municipality {municipality} does not lie in "
                              f"county {county}; municipality not used", name,
                              f"Patient.address[{idx}].district")
                    municipality = None
        if county is None:
            if state is None:
                self.note("unknown-region", "no county (Patient.address.state): healthcare "
                          "region unknown", name, f"Patient.address[{idx}].state")
            return None, municipality, None
        region = self.regions.region_for(county, municipality)
        if region is None:
            if county in self.regions.split_counties:
                what = ("municipality unknown" if municipality is None
                        else f"municipality {municipality} not in the region table")
                self.note("unknown-region", f"county {county} is split between healthcare "
                          f"regions and the {what}", name, f"Patient.address[{idx}].district")
            else:
                self.note("unknown-region", f"county {county} is not in the region table", name,
                          f"Patient.address[{idx}].state")
        return county, municipality, region

    # -- Condition --------------------------------------------------------------------------

    def read_condition(self, res: dict, name: str, i: int) -> None:
        vs_raw = res.get("verificationStatus")
        if vs_raw is not None and type(vs_raw) is not dict:
            self.note("wrong-type", "Condition.verificationStatus is not a CodeableConcept",
                      name, "Condition.verificationStatus")
        vs = _status_code(vs_raw)
        if vs in ("refuted", "entered-in-error"):
            self.note("ignored-status", f"{name} has verificationStatus {vs}; ignored", name,
                      "Condition.verificationStatus")
            return
        cs_raw = res.get("clinicalStatus")
        if cs_raw is not None and type(cs_raw) is not dict:
            self.note("wrong-type", "Condition.clinicalStatus is not a CodeableConcept", name,
                      "Condition.clinicalStatus")
        cs = _status_code(cs_raw)
        code = self.read_condition_code(res.get("code"), name, "Condition.code")
        if code is None:
            return
        icd10, snomed, topo, morph, ev = code
        has_histology_ext = False
        for j, ext in enumerate(_list(res.get("extension"))):
            url = _dict(ext).get("url")
            if type(url) is str and url.endswith("mcode-histology-morphology-behavior"):
                has_histology_ext = True
                element = f"Condition.extension[{j}].valueCodeableConcept"
                for s, c, _ in _codings(ext.get("valueCodeableConcept")):
                    if "icd-o" in s and morph is None:
                        _, morph = _icdo3(c)
                    ev.append(Evidence(resource=name, element=element, value=f"{s}|{c}"))
        cancer = secondary = pregnancy = False
        site = None
        if icd10:
            cancer, secondary, pregnancy = _icd10_classes(icd10)
            if secondary:
                site = ("liver" if icd10.startswith("C78.7") else
                        "brain" if icd10.startswith("C79.3") else None)
        if snomed:
            if snomed in SECONDARY_SNOMED:
                cancer = secondary = True
                site = site or _SNOMED_SITE.get(snomed)
            elif snomed in MALIGNANT_SNOMED:
                cancer = True
            pregnancy = pregnancy or snomed in _PREGNANCY_SNOMED
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
            active = cs not in _INACTIVE_CLINICAL
        confirmed = vs == "confirmed"
        pathology = (id(res) in self.pathology_conditions
                     or self.condition_has_pathology_evidence(res))
        histology = confirmed and (has_histology_ext or behaviour == "3" or pathology)
        onset, onset_el = None, None
        for key in ("onsetDateTime", "onsetPeriod", "recordedDate"):
            if key in res:
                raw = res[key]
                if key == "onsetPeriod":
                    raw = _dict(raw).get("start")
                    key = "onsetPeriod.start"
                onset = self.date_of(raw, name, f"Condition.{key}")
                if onset is not None:
                    onset_el = f"Condition.{key}"
                    ev.append(Evidence(resource=name, element=onset_el, value=str(raw)))
                    break
        if vs:
            ev.append(Evidence(resource=name, element="Condition.verificationStatus", value=vs))
        if cs:
            ev.append(Evidence(resource=name, element="Condition.clinicalStatus", value=cs))
        evidence = tuple(ev)
        self.add("diagnosis", (i, 0), DiagnosisFact(
            icd10=icd10, icd10_3=icd10[:3] if icd10 else None, snomed=snomed,
            icdo3_topography=topo, morphology=morph, cancer=cancer, secondary=secondary,
            metastasis_site=site, active=active, confirmed=confirmed,
            histology_confirmed=histology, onset=onset, onset_days_ago=self.days_ago(onset),
            age_at_onset=_years_between(self.birth, onset) if self.birth and onset else None,
            evidence=evidence))
        if secondary:
            self.add("extent", (i, 0), ExtentFact(value="metastatic", source="secondary-condition",
                                                  date=onset, evidence=evidence))
        for j, stage in enumerate(_list(res.get("stage"))):
            summary = _dict(stage).get("summary")
            hit = _stage_iv(summary)
            if hit:
                self.add("extent", (i, 1 + j), ExtentFact(
                    value="metastatic", source="stage-group", date=None, evidence=(Evidence(
                        resource=name, element=f"Condition.stage[{j}].summary", value=hit),)))
        if pregnancy and active:
            self.add("pregnancy", (i, 0), PregnancyFact(
                status="pregnant", source="condition", date=onset,
                age_days=self.days_ago(onset), evidence=evidence))

    def condition_has_pathology_evidence(self, res: dict) -> bool:
        for ev in _list(res.get("evidence")):
            for detail in _list(_dict(ev).get("detail")):
                target, _ = self.resolve(detail)
                if target is not None and id(target) in self.pathology_reports:
                    return True
        return False

    def read_condition_code(self, cc: object, name: str, element: str):
        """(icd10, snomed, topography, morphology, evidence) or None (with a note)."""
        if cc is None:
            self.note("missing-element", f"{element} is absent", name, element)
            return None
        if type(cc) is not dict:
            self.note("wrong-type", f"{element} is not a CodeableConcept", name, element)
            return None
        icd10 = snomed = topo = morph = None
        ev: list[Evidence] = []
        other: list[str] = []
        for j, (s, c, _) in enumerate(_codings(cc)):
            el = f"{element}.coding[{j}]"
            if "icd-10" in s or s in _ICD10_OIDS:
                norm = normalise_icd10(c)
                if norm is None:
                    self.note("invalid-code", f"{element} ICD-10 code {c[:20]!r} is not of ICD-10 "
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
                    self.note("invalid-code", f"SNOMED CT code {c[:20]!r} is not numeric", name, el)
            elif "icd-o" in s:
                t, m = _icdo3(c)
                if t is None and m is None:
                    self.note("invalid-code", f"ICD-O-3 code {c[:20]!r} is neither a topography "
                              f"nor a morphology", name, el)
                topo = topo or t
                morph = morph or m
                if t or m:
                    ev.append(Evidence(resource=name, element=el, value=f"{s}|{c}"))
            else:
                other.append(s or "(no system)")
        if not (icd10 or snomed or topo or morph):
            if other:
                self.note("unknown-code-system", f"{element} has no ICD-10, SNOMED CT or ICD-O-3 "
                          f"code (systems: {', '.join(sorted(set(other)))[:200]})", name, element)
            else:
                self.note("missing-element", f"{element} has no usable coding", name, element)
            return None
        return icd10, snomed, topo, morph, ev

    # -- Observation ------------------------------------------------------------------------

    def read_observation(self, res: dict, name: str, i: int) -> None:
        cc = res.get("code")
        if type(cc) is not dict:
            return
        dispatch = self.OBS_DISPATCH
        for c in _list(cc.get("coding")):
            if type(c) is not dict:
                continue
            code = c.get("code")
            if type(code) is not str:
                continue
            system = _norm_system(c.get("system"))
            if system == ASSERTION_SYSTEM:
                handler, code = _Extractor.obs_assertion, code.strip()
            else:
                handler = dispatch.get((system, code))
                if handler is None:
                    continue
            status = _status_code_plain(res)
            if status in _IGNORED_STATUS:
                self.note("ignored-status", f"{name} has status {status}; ignored", name,
                          "Observation.status")
            elif status != "registered":           # registered: no result yet
                handler(self, res, name, i, code)
            return

    def obs_ecog(self, res: dict, name: str, i: int, code: str) -> None:
        value, element, shown = self.performance_value(res, name, _ECOG_LA, _ECOG_SNOMED)
        if value is None:
            return
        if not 0 <= value <= 5:
            self.note("out-of-range", f"ECOG {value} is outside 0-5", name, element)
            return
        when, _ = self.effective(res, name)
        self.ecog_seen = True
        ev = (Evidence(resource=name, element=element, value=shown),)
        self.offer_latest(("ecog",), when, (i, 0), lambda: self.add("ecog", (i, 0), EcogFact(
            value=value, date=when, age_days=self.days_ago(when), derived=False, evidence=ev)))

    def obs_karnofsky(self, res: dict, name: str, i: int, code: str) -> None:
        value, element, shown = self.performance_value(res, name, _KPS_LA, {})
        if value is None:
            return
        if not 0 <= value <= 100:
            self.note("out-of-range", f"Karnofsky {value} is outside 0-100", name, element)
            return
        ecog = (0 if value >= 90 else 1 if value >= 70 else 2 if value >= 50 else
                3 if value >= 30 else 4 if value >= 10 else 5)
        when, _ = self.effective(res, name)
        rank = (when is not None, when.toordinal() if when else 0, (i, 0))
        if self.latest_kps is None or rank > self.latest_kps_rank:
            ev = (Evidence(resource=name, element=element, value=f"Karnofsky {shown} -> ECOG {ecog}"),)
            self.latest_kps_rank = rank
            self.latest_kps = lambda: self.add("ecog", (i, 0), EcogFact(
                value=ecog, date=when, age_days=self.days_ago(when), derived=True, evidence=ev))

    def performance_value(self, res: dict, name: str, la: Mapping[str, int],
                          snomed: Mapping[str, int]):
        """(score, element, shown) from valueInteger / valueQuantity / valueString /
        valueCodeableConcept / interpretation; (None, ..) with a note when there is none."""
        if "valueInteger" in res:
            v = res["valueInteger"]
            if type(v) is int:
                return v, "Observation.valueInteger", str(v)
            self.note("wrong-type", "Observation.valueInteger is not an integer", name,
                      "Observation.valueInteger")
            return None, "", ""
        if "valueQuantity" in res:
            v = _number(_dict(res["valueQuantity"]).get("value"))
            if v is not None and v == v.to_integral_value():
                return int(v), "Observation.valueQuantity", str(v)
            self.note("wrong-type", "Observation.valueQuantity.value is not a whole number", name,
                      "Observation.valueQuantity.value")
            return None, "", ""
        if "valueString" in res:
            v = res["valueString"]
            if type(v) is str and v.strip().lstrip("-").isdigit():
                return int(v.strip()), "Observation.valueString", v.strip()
            self.note("wrong-type", "Observation.valueString is not a whole number", name,
                      "Observation.valueString")
            return None, "", ""
        for element in ("valueCodeableConcept", "interpretation"):
            ccs = res.get(element)
            ccs = ccs if type(ccs) is list else [ccs] if ccs is not None else []
            for cc in ccs:
                for s, c, _ in _codings(cc):
                    if s == LOINC and c in la:
                        return la[c], f"Observation.{element}", c
                    if s == SNOMED and c in snomed:
                        return snomed[c], f"Observation.{element}", c
            if ccs:
                self.note("unknown-code", f"Observation.{element} holds no known performance-status "
                          f"code", name, f"Observation.{element}")
                return None, "", ""
        self.note("missing-element", "performance status without a value", name, "Observation.value[x]")
        return None, "", ""

    def quantity(self, q: object, name: str, element: str,
                 units: Mapping[str, tuple[Decimal, str]]):
        """(value in canonical unit, canonical unit, shown, censored) or None with a note."""
        if type(q) is not dict:
            self.note("wrong-type", f"{element} is not a Quantity", name, element)
            return None
        raw = q.get("value")
        value = _number(raw)
        if value is None:
            if raw is None:
                self.note("missing-element", f"{element}.value is absent", name, f"{element}.value")
            else:
                self.note("wrong-type", f"{element}.value {str(raw)[:20]!r} is not a number",
                          name, f"{element}.value")
            return None
        system, code, unit = q.get("system"), q.get("code"), q.get("unit")
        if type(code) is str and code.strip():
            if system is not None and _norm_system(system) != _UCUM:
                self.note("unknown-unit", f"{element} unit {code!r} is not UCUM ({str(system)[:60]})",
                          name, f"{element}.system")
                return None
            u = code.strip()
        elif type(unit) is str and unit.strip():
            u = unit.strip()
        else:
            u = ""
        conv = units.get(u)
        if conv is None:
            self.note("unknown-unit", f"{element} unit {u or '(none)'!r} is not accepted here "
                      f"(accepted: {', '.join(units)})", name, f"{element}.code")
            return None
        factor, canonical = conv
        comparator = q.get("comparator")
        shown = f"{comparator or ''}{raw} {u}"
        return value * factor, canonical, shown, comparator is not None, factor

    def obs_lab(self, res: dict, name: str, i: int, code: str) -> None:
        analyte, units = LAB_CODES[code]
        if code in _HCG_CODES and "valueCodeableConcept" in res:
            self.obs_pregnancy(res, name, i, code)
            return
        if "valueQuantity" not in res:
            if analyte != "hcg":
                value_keys = [k for k in res if k.startswith("value")]
                if value_keys:
                    self.note("wrong-type", f"{value_keys[0]} where a valueQuantity is required",
                              name, f"Observation.{value_keys[0]}")
                else:
                    self.note("missing-element", "laboratory value without valueQuantity", name,
                              "Observation.valueQuantity")
            return
        q = self.quantity(res["valueQuantity"], name, "Observation.valueQuantity", units)
        if q is None:
            return
        value, unit, shown, censored, factor = q
        when, _ = self.effective(res, name)
        uln = x_uln = None
        ev = [Evidence(resource=name, element="Observation.valueQuantity", value=shown)]
        if not censored:
            uln_q = self.reference_high(res, name, units, unit, factor)
            if uln_q is not None:
                uln, uln_shown, j = uln_q
                x_uln = value / uln if uln > 0 else None
                if x_uln is not None and x_uln >= _LIMIT:
                    self.note("out-of-range", f"{analyte} ULN {uln_shown} is implausibly small",
                              name, f"Observation.referenceRange[{j}].high")
                    x_uln = None
                ev.append(Evidence(resource=name, element=f"Observation.referenceRange[{j}].high",
                                   value=uln_shown))
        evidence = tuple(ev)

        def build() -> None:
            if censored:
                self.note("censored-value", f"latest {analyte} is {shown}: exact value unknown",
                          name, "Observation.valueQuantity.comparator")
                return
            self.add("lab", (i, 0), LabFact(analyte=analyte, value=value, unit=unit, uln=uln,
                                            x_uln=x_uln, date=when, age_days=self.days_ago(when),
                                            evidence=evidence))
        self.offer_latest(("lab", analyte), when, (i, 0), build)

    def reference_high(self, res: dict, name: str, units: Mapping[str, tuple[Decimal, str]],
                       canonical: str, value_factor: Decimal):
        for j, rr in enumerate(_list(res.get("referenceRange"))):
            if type(rr) is not dict or "high" not in rr:
                continue
            types = _codings(rr.get("type"))
            if types and not any(c == "normal" for _, c, _ in types):
                continue
            high = rr["high"]
            element = f"Observation.referenceRange[{j}].high"
            if type(high) is dict and not (_str(high.get("code")) or _str(high.get("unit"))):
                value = _number(high.get("value"))          # no unit: the value's own unit
                if value is None:
                    self.note("wrong-type", f"{element}.value is not a number", name, element)
                    return None
                return value * value_factor, f"{high.get('value')}", j
            q = self.quantity(high, name, element, units)
            if q is None:
                return None
            value, unit, shown, _, _ = q
            if unit != canonical:
                self.note("unknown-unit", f"{element} is in {unit}, the value in {canonical}: "
                          f"ULN not used", name, element)
                return None
            return value, shown, j
        return None

    def obs_pregnancy(self, res: dict, name: str, i: int, code: str) -> None:
        cc = res.get("valueCodeableConcept")
        if cc is None:
            self.note("missing-element", "pregnancy observation without valueCodeableConcept",
                      name, "Observation.valueCodeableConcept")
            return
        hcg = code in _HCG_CODES
        status = None
        for s, c, _ in _codings(cc):
            if hcg and (s, c) in _POS_NEG:
                status = f"{_POS_NEG[(s, c)]}-hcg"
            elif not hcg and (s, c) in _PREGNANCY_STATUS:
                status = _PREGNANCY_STATUS[(s, c)]
            if status:
                shown = c
                break
        if status is None:
            self.note("unknown-code", "pregnancy observation value is not a known code", name,
                      "Observation.valueCodeableConcept")
            return
        when, _ = self.effective(res, name)
        source = "hcg" if hcg else "pregnancy-status"
        ev = (Evidence(resource=name, element="Observation.valueCodeableConcept", value=shown),)
        self.offer_latest(("pregnancy", source), when, (i, 0), lambda: self.add(
            "pregnancy", (i, 0), PregnancyFact(status=status, source=source, date=when,
                                               age_days=self.days_ago(when), evidence=ev)))

    def obs_tnm_m(self, res: dict, name: str, i: int, code: str) -> None:
        hit = _m1(res.get("valueCodeableConcept"))
        if hit:
            when, _ = self.effective(res, name)
            self.add("extent", (i, 0), ExtentFact(value="metastatic", source="tnm-m", date=when,
                                                  evidence=(Evidence(
                                                      resource=name,
                                                      element="Observation.valueCodeableConcept",
                                                      value=hit),)))

    def obs_stage_group(self, res: dict, name: str, i: int, code: str) -> None:
        hit = _stage_iv(res.get("valueCodeableConcept"))
        if hit:
            when, _ = self.effective(res, name)
            self.add("extent", (i, 0), ExtentFact(value="metastatic", source="stage-group",
                                                  date=when, evidence=(Evidence(
                                                      resource=name,
                                                      element="Observation.valueCodeableConcept",
                                                      value=hit),)))

    def obs_history_metastatic(self, res: dict, name: str, i: int, code: str) -> None:
        if "valueBoolean" in res:
            flag = res["valueBoolean"]
            if type(flag) is not bool:
                self.note("wrong-type", "Observation.valueBoolean is not a boolean", name,
                          "Observation.valueBoolean")
                return
            if not flag:
                return
            ev = Evidence(resource=name, element="Observation.valueBoolean", value="true")
        else:
            self.note("assumed-value", "history-of-metastatic-cancer without a value read as true "
                      "(the observation asserts the history)", name, "Observation.valueBoolean")
            ev = Evidence(resource=name, element="Observation.code", value=f"{SNOMED}|{code}")
        when, _ = self.effective(res, name)
        self.add("extent", (i, 0), ExtentFact(value="metastatic", source="history-of-metastatic",
                                              date=when, evidence=(ev,)))

    # -- genomics -----------------------------------------------------------------------------

    def obs_variant(self, res: dict, name: str, i: int, code: str) -> None:
        when, _ = self.effective(res, name)
        present: Optional[bool] = None
        ev: list[Evidence] = []
        if "valueCodeableConcept" in res:
            for s, c, _ in _codings(res.get("valueCodeableConcept")):
                if s == LOINC and c in _VARIANT_VALUE:
                    present = _VARIANT_VALUE[c]
                    ev.append(Evidence(resource=name, element="Observation.valueCodeableConcept",
                                       value=c))
                    break
                if s == LOINC and c in _VARIANT_NO_CALL:
                    self.note("unknown-code", f"variant result {c} (no call / indeterminate): "
                              "not tested", name, "Observation.valueCodeableConcept")
                    return
            if present is None:
                self.note("unknown-code", "variant value is not LA9633-4 present / LA9634-2 absent",
                          name, "Observation.valueCodeableConcept")
                return
        genes: list[tuple[str, Evidence]] = []
        fields: dict[str, Any] = {}
        change_from_consequence = None
        for j, comp in enumerate(_list(res.get("component"))):
            if type(comp) is not dict:
                continue
            element = f"Observation.component[{j}]"
            for s, c in _component_codes(comp):
                if s == LOINC:
                    if c == "48018-6":
                        g = self.gene_symbol(comp.get("valueCodeableConcept"), name,
                                             f"{element}.valueCodeableConcept")
                        if g:
                            genes.append(g)
                    elif c == "94076-7":
                        self.obs_tmb(comp, name, i, c, element, when)
                    elif c == "81695-9":
                        self.obs_msi(comp, name, i, c, element, when)
                    else:
                        self.variant_component(c, comp, name, element, fields, ev)
                    break
                if s == _TBD and c == "molecular-consequence":
                    for s2, c2, _ in _codings(comp.get("valueCodeableConcept")):
                        c2 = c2.replace("_", ":")
                        if s2 in _SO_SYSTEMS and c2 in _SO_CN:
                            change_from_consequence = c2
                            ev.append(Evidence(resource=name, element=f"{element}.valueCodeableConcept",
                                               value=c2))
                    break
        if change_from_consequence:
            fields.setdefault("cn_change", _SO_CN[change_from_consequence])
            fields.setdefault("change_type", "cnv")
        if not genes:
            self.note("missing-element", "variant without a readable gene (component 48018-6): "
                      "not used", name, "Observation.component")
            return
        if present is None:
            present = True
            self.note("assumed-value", "variant without a value but with a gene: read as present "
                      "(LA9633-4)", name, "Observation.valueCodeableConcept")
        if id(res) in self.significance and "significance" not in fields:
            sig, sig_ev = self.significance[id(res)]
            fields["significance"] = sig
            ev.append(sig_ev)
        so = fields.pop("_so", None)
        if present and len(genes) > 1:
            pair = f"{genes[0][0]}-{genes[1][0]}"
            if len(genes) == 2 and (fields.get("change_type") == "fusion"
                                    or so in _SO_REARRANGEMENT or "change_type" not in fields):
                if fields.get("change_type") != "fusion":
                    how = (f"as a rearrangement ({so})" if so in _SO_REARRANGEMENT
                           else "without a change type")
                    self.note("assumed-value", f"variant {pair} coded {how} between two "
                              "genes: read as a fusion of the first gene with the second",
                              name, "Observation.component")
                    fields["change_type"] = "fusion"
                fields["fusion_partner"] = genes[1][0]
                ev.append(genes[1][1])
            else:
                self.note("several-genes", f"variant names {len(genes)} genes "
                          f"({', '.join(g for g, _ in genes)}) but is not coded as a fusion "
                          "(SO:0001565); only the first gene used", name, "Observation.component")
            genes = genes[:1]
        for k, (gene, gene_ev) in enumerate(genes):
            self.add("variant", (i, k), VariantFact(gene=gene, present=present, date=when,
                                                    evidence=(gene_ev, *ev), **fields))

    def gene_symbol(self, cc: object, name: str, element: str) -> Optional[tuple[str, Evidence]]:
        if type(cc) is not dict:
            self.note("wrong-type", f"{element} is not a CodeableConcept", name, element)
            return None
        fallback = None
        for c in _list(cc.get("coding")):
            if type(c) is not dict:
                continue
            system = _norm_system(c.get("system"))
            code, display = _str(c.get("code")), _str(c.get("display"))
            if system in _HGNC_SYSTEMS:
                for cand in (display, code):
                    if cand and _GENE_SYMBOL.match(cand) and not cand.upper().startswith("HGNC")\
                            and not cand.isdigit():
                        return cand, Evidence(resource=name, element=element,
                                              value=f"{code or ''} {display or ''}".strip())
            elif fallback is None and display and _GENE_SYMBOL.match(display):
                fallback = display, Evidence(resource=name, element=element,
                                             value=f"{system}|{code or ''} {display}".strip())
        if fallback is None:
            text = _str(cc.get("text"))
            if text and _GENE_SYMBOL.match(text):
                fallback = text, Evidence(resource=name, element=f"{element}.text", value=text)
        if fallback is None:
            self.note("unknown-code", f"{element}: gene given without an HGNC symbol (an HGNC id "
                      "alone cannot be read)", name, element)
        return fallback

    def variant_component(self, code: str, comp: dict, name: str, element: str,
                          fields: dict[str, Any], ev: list[Evidence]) -> None:
        def coded(table: Mapping[str, str], key: str, systems=(LOINC,)) -> None:
            for s, c, _ in _codings(comp.get("valueCodeableConcept")):
                if s in systems and c in table:
                    fields[key] = table[c]
                    ev.append(Evidence(resource=name, element=f"{element}.valueCodeableConcept",
                                       value=c))
                    return
            self.note("unknown-code", f"{element} ({code}) value is not a known code", name,
                      f"{element}.valueCodeableConcept")

        if code == "48005-3":
            text = _component_text(comp)
            protein = normalise_protein_hgvs(text) if text else None
            if protein:
                fields["protein"] = protein
                ev.append(Evidence(resource=name, element=element, value=text))
            else:
                self.note("invalid-code", f"{element} protein change {str(text)[:40]!r} is not "
                          "p. HGVS", name, element)
        elif code == "48004-6":
            text = _component_text(comp)
            if text and "c." in text:
                fields["cdna"] = text[text.find("c."):].strip()
                ev.append(Evidence(resource=name, element=element, value=text))
            else:
                self.note("invalid-code", f"{element} DNA change {str(text)[:40]!r} is not c. HGVS",
                          name, element)
        elif code == "48019-4":
            for s, c, _ in _codings(comp.get("valueCodeableConcept")):
                c = c.replace("_", ":")
                if s in _SO_SYSTEMS or c.startswith("SO:"):
                    fields["change_type"] = _SO_CHANGE.get(c, "other")
                    fields["_so"] = c
                elif s == LOINC and c in _LOINC_CHANGE:
                    fields["change_type"] = _LOINC_CHANGE[c]
                else:
                    continue
                ev.append(Evidence(resource=name, element=f"{element}.valueCodeableConcept", value=c))
                return
            self.note("unknown-code-system", f"{element} change type is not a Sequence Ontology "
                      "code", name, f"{element}.valueCodeableConcept")
        elif code == "82155-3":
            q = comp.get("valueQuantity")
            value = _number(_dict(q).get("value"))
            if value is None:
                self.note("wrong-type", f"{element} copy number is not a Quantity with a number",
                          name, element)
            else:
                fields["copy_number"] = value
                ev.append(Evidence(resource=name, element=f"{element}.valueQuantity", value=str(value)))
        elif code == "62378-5":
            coded(_CN_CHANGE, "cn_change")
        elif code == "48002-0":
            coded(_ORIGIN, "origin")
        elif code == "53037-8":
            coded(_SIGNIFICANCE, "significance")
        elif code == "81258-6":
            self.vaf(comp, name, element, fields, ev)

    def vaf(self, comp: dict, name: str, element: str, fields: dict[str, Any],
            ev: list[Evidence]) -> None:
        q = comp.get("valueQuantity")
        if type(q) is not dict or _number(q.get("value")) is None:
            self.note("wrong-type", f"{element} allele frequency is not a Quantity with a number",
                      name, element)
            return
        value = _number(q.get("value"))
        code, unit = _str(q.get("code")), _str(q.get("unit"))
        if code == "%" or (code is None and unit == "%"):
            value = value / 100
        elif code not in (None, "1"):
            self.note("unknown-unit", f"{element} allele frequency unit {code!r} is not 1 or %",
                      name, f"{element}.valueQuantity.code")
            return
        if not 0 <= value <= 1:
            self.note("out-of-range", f"{element} allele frequency {q.get('value')} "
                      f"{code or unit or ''} is outside 0-1", name, element)
            return
        fields["vaf"] = value
        ev.append(Evidence(resource=name, element=f"{element}.valueQuantity",
                           value=f"{q.get('value')} {code or unit or ''}".strip()))

    def obs_tmb(self, res: dict, name: str, i: int, code: str, element: str = "Observation",
                when: Optional[Date] = None) -> None:
        q = res.get("valueQuantity")
        value = _number(_dict(q).get("value"))
        if value is None:
            self.note("wrong-type", f"{element}: TMB without a numeric valueQuantity", name,
                      f"{element}.valueQuantity")
            return
        unit = _str(_dict(q).get("code")) or _str(_dict(q).get("unit"))
        if unit is not None and not _tmb_unit(unit):
            self.note("unknown-unit", f"{element}: TMB unit {unit!r} is not mutations per megabase",
                      name, f"{element}.valueQuantity")
            return
        if value < 0:
            self.note("out-of-range", f"{element}: TMB {value} is negative", name, element)
            return
        if element == "Observation":
            when, _ = self.effective(res, name)
        self.add("tmb", (i, 0), TmbFact(value=value, date=when, evidence=(Evidence(
            resource=name, element=f"{element}.valueQuantity", value=f"{value} {unit or ''}".strip()),)))

    def obs_msi(self, res: dict, name: str, i: int, code: str, element: str = "Observation",
                when: Optional[Date] = None) -> None:
        for s, c, _ in _codings(res.get("valueCodeableConcept")):
            if s == LOINC and c in _MSI:
                if element == "Observation":
                    when, _ = self.effective(res, name)
                self.add("msi", (i, 0), MsiFact(status=_MSI[c], date=when, evidence=(Evidence(
                    resource=name, element=f"{element}.valueCodeableConcept", value=c),)))
                return
        self.note("unknown-code", f"{element}: MSI value is not LA26203-2 / LA26202-4 / LA14122-8",
                  name, f"{element}.valueCodeableConcept")

    def obs_ihc(self, res: dict, name: str, i: int, code: str) -> None:
        marker = _IHC[code]
        result = score = value = None
        ev: list[Evidence] = []
        if "valueCodeableConcept" in res:
            cc = res.get("valueCodeableConcept")
            for s, c, d in _codings(cc):
                if (s, c) in _POS_NEG:
                    result = _POS_NEG[(s, c)]
                    ev.append(Evidence(resource=name, element="Observation.valueCodeableConcept",
                                       value=c))
                    break
                if _IHC_SCORE.match(c):
                    score = c
            text = _str(_dict(cc).get("text"))
            if score is None and text and _IHC_SCORE.match(text):
                score = text
        elif "valueString" in res:
            text = _str(res.get("valueString"))
            if text and _IHC_SCORE.match(text):
                score = text
        elif "valueQuantity" in res:
            value = _number(_dict(res.get("valueQuantity")).get("value"))
            if value is not None:
                ev.append(Evidence(resource=name, element="Observation.valueQuantity",
                                   value=str(value)))
        if score is not None:
            ev.append(Evidence(resource=name, element="Observation.value[x]", value=score))
        if result is None and score is None and value is None:
            self.note("unknown-code", f"{marker} result is not positive/negative, a score or a "
                      "number", name, "Observation.value[x]")
            return
        when, _ = self.effective(res, name)
        self.add("ihc", (i, 0), IhcFact(marker=marker, result=result, score=score, value=value,
                                        date=when, evidence=tuple(ev)))

    def obs_assertion(self, res: dict, name: str, i: int, code: str) -> None:
        spec = _ASSERTIONS.get(code)
        if spec is None:
            self.note("unknown-code", f"{code!r} is not an {ASSERTION_SYSTEM} code", name,
                      "Observation.code")
            return
        kind, allowed = spec
        value = flag = None
        if kind == "bool":
            raw = res.get("valueBoolean")
            if type(raw) is not bool:
                self.note("wrong-type" if "valueBoolean" in res or any(
                    k.startswith("value") for k in res) else "missing-element",
                    f"assertion {code} needs valueBoolean", name, "Observation.valueBoolean")
                return
            flag = raw
            ev = Evidence(resource=name, element="Observation.valueBoolean", value=str(raw).lower())
        else:
            cc = res.get("valueCodeableConcept")
            if type(cc) is not dict:
                self.note("wrong-type" if any(k.startswith("value") for k in res)
                          else "missing-element", f"assertion {code} needs valueCodeableConcept",
                          name, "Observation.valueCodeableConcept")
                return
            for s, c, _ in _codings(cc):
                if s == ASSERTION_SYSTEM and c in allowed:
                    value = c
                    break
            if value is None:
                self.note("unknown-code", f"assertion {code} value is not one of "
                          f"{', '.join(sorted(allowed))}", name, "Observation.valueCodeableConcept")
                return
            ev = Evidence(resource=name, element="Observation.valueCodeableConcept", value=value)
        when, _ = self.effective(res, name)
        since = None
        period = res.get("effectivePeriod")
        if type(period) is dict and type(period.get("start")) is str:
            since = self.days_ago(_parse_date(period["start"])[0])
        self.offer_latest(("assertion", code), when, (i, 0), lambda: self.add(
            "assertion", (i, 0), AssertionFact(code=code, value=value, flag=flag, date=when,
                                               age_days=self.days_ago(when), since_days=since,
                                               evidence=(ev,))))
        if code == "extent":
            self.add("extent", (i, 0), ExtentFact(value=value, source="assertion", date=when,
                                                  evidence=(ev,)))

    # -- other resources --------------------------------------------------------------------

    def read_report(self, res: dict, name: str, i: int) -> None:
        codes = _codings(res.get("code"))
        genomic = any(s == LOINC and c == "51969-4" for s, c, _ in codes) or any(
            s == _V2_0074 and c == "GE" for cat in _list(res.get("category"))
            for s, c, _ in _codings(cat))
        if not genomic:
            return
        status = _status_code_plain(res)
        if status in _IGNORED_STATUS:
            self.note("ignored-status", f"{name} has status {status}; ignored", name,
                      "DiagnosticReport.status")
            return
        ev: list[Evidence] = []
        assay = None
        for j, (s, c, _) in enumerate(codes):
            if s == ASSAY_SYSTEM:
                if c in _ASSAYS:
                    assay = c
                    ev.append(Evidence(resource=name, element=f"DiagnosticReport.code.coding[{j}]",
                                       value=c))
                else:
                    self.note("unknown-code", f"assay {c!r} is not one of {', '.join(sorted(_ASSAYS))}",
                              name, f"DiagnosticReport.code.coding[{j}]")
        final = status in _FINAL_REPORT
        if status:
            ev.append(Evidence(resource=name, element="DiagnosticReport.status", value=status))
        performer = res.get("performer")
        has_performer = type(performer) is list and any(type(p) is dict for p in performer)
        when, el = self.effective(res, name)
        if when is not None:
            ev.append(Evidence(resource=name, element=el, value=when.isoformat()))
        self.add("genomic_report", (i, 0), GenomicReportFact(
            assay=assay, broad=final and assay in _BROAD_ASSAYS, final=final,
            has_performer=has_performer, date=when, age_days=self.days_ago(when),
            evidence=tuple(ev)))

    def read_medication(self, res: dict, name: str, i: int) -> None:
        rt = res["resourceType"]
        status = _status_code_plain(res)
        if status == "entered-in-error":
            self.note("ignored-status", f"{name} has status {status}; ignored", name, f"{rt}.status")
            return
        cc, element = None, f"{rt}.medicationCodeableConcept"
        if "medicationCodeableConcept" in res:
            cc = res["medicationCodeableConcept"]
        elif "medicationReference" in res:
            target, ref = self.resolve(res["medicationReference"])
            if target is None:
                self.note("unresolved-reference", f"{rt}.medicationReference {str(ref)[:80]!r} "
                          "is not in the bundle: drug unknown", name, f"{rt}.medicationReference")
                return
            cc, element = target.get("code"), f"{self.name_of(target, -1)}: Medication.code"
        else:
            self.note("missing-element", f"{rt} names no medication", name, f"{rt}.medication[x]")
            return
        atc = None
        systems = []
        for s, c, _ in _codings(cc):
            if s in _ATC_SYSTEMS:
                code = c.upper().replace(" ", "")
                if _ATC_CODE.match(code):
                    atc = code
                    break
                self.note("invalid-code", f"ATC code {c[:20]!r} is not of ATC form", name, element)
            else:
                systems.append(s or "(no system)")
        if atc is None:
            if systems:
                self.note("unknown-code-system", f"{element} has no ATC code (systems: "
                          f"{', '.join(sorted(set(systems)))[:200]})", name, element)
            elif type(cc) is not dict:
                self.note("wrong-type", f"{element} is not a CodeableConcept", name, element)
            return
        start = end = None
        start_el = ""
        if rt == "MedicationRequest":
            if "authoredOn" in res:
                start = self.date_of(res["authoredOn"], name, "MedicationRequest.authoredOn")
                start_el = "MedicationRequest.authoredOn"
        else:
            if "effectiveDateTime" in res:
                start = self.date_of(res["effectiveDateTime"], name, f"{rt}.effectiveDateTime")
                start_el = f"{rt}.effectiveDateTime"
            elif type(res.get("effectivePeriod")) is dict:
                period = res["effectivePeriod"]
                if "start" in period:
                    start = self.date_of(period["start"], name, f"{rt}.effectivePeriod.start")
                    start_el = f"{rt}.effectivePeriod.start"
                if "end" in period:
                    end = self.date_of(period["end"], name, f"{rt}.effectivePeriod.end")
        given = status in _MED_GIVEN if status else True
        prior = given and (start is None or start <= self.as_of)
        current = (status in _MED_CURRENT and (start is None or start <= self.as_of)
                   and (end is None or end >= self.as_of))
        ev = [Evidence(resource=name, element=element, value=f"{atc}")]
        if status:
            ev.append(Evidence(resource=name, element=f"{rt}.status", value=status))
        if start is not None:
            ev.append(Evidence(resource=name, element=start_el, value=start.isoformat()))
        self.add("medication", (i, 0), MedicationFact(
            atc=atc, atc_class=atc[:5], atc_group=atc[:3], status=status, current=current,
            prior=prior, start=start, start_days_ago=self.days_ago(start),
            end_days_ago=self.days_ago(end), evidence=tuple(ev)))

    def read_research_subject(self, res: dict, name: str, i: int) -> None:
        status = _status_code_plain(res)
        if status is None:
            self.note("missing-element", "ResearchSubject.status is absent", name,
                      "ResearchSubject.status")
            return
        ev = [Evidence(resource=name, element="ResearchSubject.status", value=status)]
        phase = study = None
        if "study" in res:
            target, ref = self.resolve(res["study"])
            if target is None or target.get("resourceType") != "ResearchStudy":
                ident = _dict(_dict(res["study"]).get("identifier")).get("value")
                study = _str(ident) or (_ref_key(ref).split("/", 1)[1] if ref and _ref_key(ref)
                                        else None)
                self.note("unresolved-reference", f"ResearchSubject.study {str(ref or ident)[:80]!r} "
                          "is not in the bundle: phase unknown", name, "ResearchSubject.study")
            else:
                sname = self.name_of(target, -1)
                study = next((v for v in (_str(_dict(x).get("value"))
                                          for x in _list(target.get("identifier"))) if v),
                             _str(target.get("id")))
                for s, c, _ in _codings(target.get("phase")):
                    if s == _PHASE_SYSTEM:
                        phase = c
                        ev.append(Evidence(resource=sname, element="ResearchStudy.phase", value=c))
                        break
                else:
                    if target.get("phase") is not None:
                        self.note("unknown-code-system", "ResearchStudy.phase is not from "
                                  "research-study-phase", sname, "ResearchStudy.phase")
        self.add("trial_candidacy", (i, 0), TrialCandidacyFact(status=status, phase=phase,
                                                               study=study, evidence=tuple(ev)))

    def read_referral(self, res: dict, name: str, i: int) -> None:
        rt = res["resourceType"]
        if rt == "ServiceRequest":
            ccs, element = [res.get("code")], "ServiceRequest.code"
        else:
            ccs, element = _list(res.get("type")), "Encounter.type"
        if not any(s == ASSERTION_SYSTEM and c == _REFERRAL for cc in ccs
                   for s, c, _ in _codings(cc)):
            return
        status = _status_code_plain(res)
        if status in ("entered-in-error", "revoked", "cancelled"):
            self.note("ignored-status", f"{name} has status {status}; ignored", name, f"{rt}.status")
            return
        if rt == "ServiceRequest":
            raw = res.get("occurrenceDateTime", res.get("authoredOn"))
            key = "occurrenceDateTime" if "occurrenceDateTime" in res else "authoredOn"
        else:
            raw, key = _dict(res.get("period")).get("start"), "period.start"
        when = self.date_of(raw, name, f"{rt}.{key}") if raw is not None else None
        self.add("assertion", (i, 0), AssertionFact(
            code=_REFERRAL, flag=True, date=when, age_days=self.days_ago(when),
            evidence=(Evidence(resource=name, element=element, value=f"{ASSERTION_SYSTEM}|{_REFERRAL}"),)))

    def read_family(self, res: dict, name: str, i: int) -> None:
        status = _status_code_plain(res)
        if status == "entered-in-error":
            self.note("ignored-status", f"{name} has status {status}; ignored", name,
                      "FamilyMemberHistory.status")
            return
        relationship = None
        for s, c, _ in _codings(res.get("relationship")):
            if s in _ROLE_SYSTEMS:
                relationship = c.upper()
                break
        if relationship is None:
            self.note("unknown-code-system" if _codings(res.get("relationship")) else
                      "missing-element", "FamilyMemberHistory.relationship has no v3-RoleCode",
                      name, "FamilyMemberHistory.relationship")
            return
        degree = _DEGREE.get(relationship)
        rel_ev = Evidence(resource=name, element="FamilyMemberHistory.relationship",
                          value=relationship)
        conditions = [c for c in _list(res.get("condition")) if type(c) is dict]
        if not conditions:
            self.add("family_history", (i, 0), FamilyHistoryFact(
                relationship=relationship, degree=degree, evidence=(rel_ev,)))
            return
        for j, cond in enumerate(conditions):
            element = f"FamilyMemberHistory.condition[{j}]"
            code = self.read_condition_code(cond.get("code"), name, f"{element}.code")
            if code is None:
                continue
            icd10, snomed, _, _, ev = code
            onset_age = None
            if "onsetAge" in cond:
                onset_age = self.onset_age(cond["onsetAge"], name, f"{element}.onsetAge", ev)
            self.add("family_history", (i, j), FamilyHistoryFact(
                relationship=relationship, degree=degree, icd10=icd10,
                icd10_3=icd10[:3] if icd10 else None, snomed=snomed, onset_age=onset_age,
                evidence=(rel_ev, *ev)))

    def onset_age(self, q: object, name: str, element: str, ev: list[Evidence]) -> Optional[int]:
        value = _number(_dict(q).get("value"))
        if value is None:
            self.note("wrong-type", f"{element} is not an Age with a number", name, element)
            return None
        unit = _str(_dict(q).get("code")) or _str(_dict(q).get("unit"))
        if unit not in (None, "a", "yr", "year", "years"):
            self.note("unknown-unit", f"{element} unit {unit!r} is not years (a)", name, element)
            return None
        if value < 0 or value > 150:
            self.note("out-of-range", f"{element} {value} is not a plausible age", name, element)
            return None
        ev.append(Evidence(resource=name, element=element, value=f"{value} {unit or ''}".strip()))
        return int(value)

    HANDLERS: dict[str, Callable] = {}
    OBS_DISPATCH: dict[tuple[str, str], Callable] = {}


_Extractor.HANDLERS = {
    "Condition": _Extractor.read_condition,
    "Observation": _Extractor.read_observation,
    "DiagnosticReport": _Extractor.read_report,
    "MedicationStatement": _Extractor.read_medication,
    "MedicationAdministration": _Extractor.read_medication,
    "MedicationRequest": _Extractor.read_medication,
    "ResearchSubject": _Extractor.read_research_subject,
    "ServiceRequest": _Extractor.read_referral,
    "Encounter": _Extractor.read_referral,
    "FamilyMemberHistory": _Extractor.read_family,
}
_Extractor.OBS_DISPATCH = {
    (LOINC, "89247-1"): _Extractor.obs_ecog,
    (LOINC, "89243-0"): _Extractor.obs_karnofsky,
    (SNOMED, "761869008"): _Extractor.obs_karnofsky,
    (LOINC, "82810-3"): _Extractor.obs_pregnancy,
    (LOINC, "69548-6"): _Extractor.obs_variant,
    (LOINC, "94076-7"): _Extractor.obs_tmb,
    (LOINC, "81695-9"): _Extractor.obs_msi,
    **{(LOINC, code): _Extractor.obs_lab for code in LAB_CODES},
    **{(LOINC, code): _Extractor.obs_ihc for code in _IHC},
    **{key: _Extractor.obs_tnm_m for key in _TNM_M},
    **{key: _Extractor.obs_stage_group for key in _STAGE_GROUP},
    **{key: _Extractor.obs_history_metastatic for key in _HISTORY_METASTATIC},
}


def _status_code_plain(res: dict) -> Optional[str]:
    status = res.get("status")
    return status.strip() if type(status) is str and status.strip() else None


def _years_between(start: Date, end: Date) -> int:
    years = end.year - start.year
    if (end.month, end.day) < (start.month, start.day):
        years -= 1
    return years


_ICDO_TOPO = re.compile(r"^C\d\d\.?\d$")
_ICDO_MORPH = re.compile(r"^\d{4}/\d$")


def _icdo3(code: str) -> tuple[Optional[str], Optional[str]]:
    """(topography "C34.1", morphology "8140/3") from an ICD-O-3 code (either, or both
    space-separated as in "C34.9 8140/3")."""
    topo = morph = None
    for token in code.upper().split():
        if _ICDO_TOPO.match(token):
            topo = token if "." in token else f"{token[:3]}.{token[3:]}"
        elif _ICDO_MORPH.match(token):
            morph = token
    return topo, morph


def _m1(cc: object) -> Optional[str]:
    """The value text if a TNM M category value is M1 (AJCC string, or SNOMED display)."""
    for s, c, d in _codings(cc):
        if s == SNOMED:
            if d and _M1_TEXT.search(d):
                return f"{c} {d}"
        elif _M1_CODE.match(c):
            return c
    return None


def _stage_iv(cc: object) -> Optional[str]:
    """The value text if a stage group value is stage IV (AJCC string, or SNOMED display)."""
    for s, c, d in _codings(cc):
        if s == SNOMED:
            if d and _STAGE_IV_TEXT.search(d):
                return f"{c} {d}"
        elif _STAGE_IV_CODE.match(c):
            return c
    if type(cc) is dict and not _codings(cc):
        text = _str(cc.get("text"))
        if text and (_STAGE_IV_CODE.match(text) or _STAGE_IV_TEXT.search(text)):
            return text
    return None


def _component_codes(comp: dict):
    """(normalised system, code) of each coding of ``component.code`` (a generator: the caller
    usually stops at the first)."""
    cc = comp.get("code")
    if type(cc) is dict:
        for c in _list(cc.get("coding")):
            if type(c) is dict:
                code = c.get("code")
                if type(code) is str:
                    yield _norm_system(c.get("system")), code.strip()


def _component_text(comp: dict) -> Optional[str]:
    """The text of a component value: first coding's code, else its display, else
    ``valueCodeableConcept.text``, else ``valueString``."""
    cc = comp.get("valueCodeableConcept")
    if type(cc) is dict:
        for c in _list(cc.get("coding")):
            if type(c) is dict:
                text = _str(c.get("code")) or _str(c.get("display"))
                if text:
                    return text
        if _str(cc.get("text")):
            return _str(cc.get("text"))
    return _str(comp.get("valueString"))


_TMB_UNIT_WORDS = ("mb", "megabase", "1000000")


def _tmb_unit(unit: str) -> bool:
    u = unit.lower()
    return any(w in u for w in _TMB_UNIT_WORDS)


def extract_facts(bundle: LoadedBundle, as_of: Date, regions: Optional[RegionMap] = None) -> FactSet:
    """All facts of one patient at ``as_of`` (see the module docstring). Never raises for any
    content of ``bundle``: what cannot be used becomes a note in ``FactSet.notes``."""
    if isinstance(as_of, datetime):
        as_of = as_of.date()
    elif not isinstance(as_of, Date):
        raise TypeError("as_of must be a datetime.date")
    return _Extractor(bundle, as_of, regions).run()
