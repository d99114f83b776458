"""Code tables: the code systems, codes and units the readers understand.

Systems are written in their normalised form (see :func:`mdtflag.fhir.facts.parse.norm_system`).
A code that is not in these tables is not understood: the reader leaves the fact unknown and notes why.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType

LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
ASSERTION_SYSTEM = "urn:mdtflag:assertion"
ASSAY_SYSTEM = "urn:mdtflag:assay"
#: ICD-10 by OID: ICD-10-CM, WHO ICD-10, ICD-10-SE (Socialstyrelsen)
ICD10_OIDS = frozenset(
    {"urn:oid:2.16.840.1.113883.6.90", "urn:oid:2.16.840.1.113883.6.3", "urn:oid:1.2.752.116.1.1.1.1.3"}
)
ATC_SYSTEMS = frozenset({"http://www.whocc.no/atc", "urn:oid:2.16.840.1.113883.6.73"})
HGNC_SYSTEMS = frozenset({"http://www.genenames.org", "http://www.genenames.org/geneid"})
SO_SYSTEMS = frozenset({"http://www.sequenceontology.org", "http://purl.obolibrary.org/obo/so"})
UCUM = "http://unitsofmeasure.org"
V2_0074 = "http://terminology.hl7.org/codesystem/v2-0074"
PHASE_SYSTEM = "http://terminology.hl7.org/codesystem/research-study-phase"
#: research-study-phase (R4) and ResearchSubject.status (R4): any other value is present but not understood
PHASES = frozenset(
    {"n-a", "early-phase-1", "phase-1", "phase-1-phase-2", "phase-2", "phase-2-phase-3", "phase-3", "phase-4"}
)
SUBJECT_STATUSES = frozenset(
    {
        "candidate",
        "eligible",
        "follow-up",
        "ineligible",
        "not-registered",
        "off-study",
        "on-study",
        "on-study-intervention",
        "on-study-observation",
        "pending-on-study",
        "potential-candidate",
        "screening",
        "withdrawn",
    }
)
ROLE_SYSTEMS = frozenset({"http://terminology.hl7.org/codesystem/v3-rolecode", "http://hl7.org/fhir/v3/rolecode"})
AJCC = "http://cancerstaging.org"
TBD = "http://hl7.org/fhir/uv/genomics-reporting/codesystem/tbd-codes-cs"

#: Terminology the readers look up (files under the rule set's terminology/ folder, see
#: :mod:`mdtflag.fhir.facts.terminology`): target systems of the maps and the value sets used.
ICD10 = "http://hl7.org/fhir/sid/icd-10"
ICDO3 = "http://terminology.hl7.org/codesystem/icd-o-3"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
ATC = "http://www.whocc.no/atc"
HGNC_ID = "http://www.genenames.org/geneid"
MARKER = "urn:mdtflag:marker"
UNITS = "urn:mdtflag:terminology:ucum-units"
NON_MALIGNANT_VS = "urn:mdtflag:terminology:snomed-ct-non-malignant"
BREADTH = "urn:mdtflag:terminology:genomic-breadth"
#: targets of snomed-ct-disease-status.json, tmb-interpretation.json; nci-lansky.json is an NCIt fragment
DISEASE_STATUS = "urn:mdtflag:disease-status"
EXTENT = "urn:mdtflag:extent"
TMB_CALL = "urn:mdtflag:tmb-interpretation"
NCIT = "http://ncicb.nci.nih.gov/xml/owl/evs/thesaurus.owl"

#: mCODE cancer disease status (STU3/STU4; STU1/STU2) and histologic behaviour and type (STU4)
DISEASE_STATUS_LOINC = frozenset({"97509-4", "88040-1"})
HISTOLOGY_LOINC = "31206-6"
TMB_INTERPRETATION_LOINC = "94077-5"
#: extensions that link an Observation to the Condition it is about (mCODE related-condition, core condition-related)
RELATED_CONDITION_EXT = ("mcode-related-condition", "condition-related")

ECOG_LA = {"LA9622-7": 0, "LA9623-5": 1, "LA9624-3": 2, "LA9625-0": 3, "LA9626-8": 4, "LA9627-6": 5}
ECOG_SNOMED = {"425389002": 0, "422512005": 1, "422894000": 2, "423053003": 3, "423237006": 4, "423409001": 5}
KPS_LA = {
    "LA29175-9": 100,
    "LA29176-7": 90,
    "LA29177-5": 80,
    "LA29178-3": 70,
    "LA29179-1": 60,
    "LA29180-9": 50,
    "LA29181-7": 40,
    "LA29182-5": 30,
    "LA29183-3": 20,
    "LA29184-1": 10,
    "LA9627-6": 0,
}

TNM_M = frozenset(
    {(SNOMED, "277208005"), (SNOMED, "399387003"), (SNOMED, "371497001"), (LOINC, "21907-1"), (LOINC, "21901-4")}
)
STAGE_GROUP = frozenset(
    {(SNOMED, "399390009"), (SNOMED, "399537006"), (SNOMED, "399588009"), (LOINC, "21908-9"), (LOINC, "21902-2")}
)
#: mCODE history-of-metastatic-cancer: SNOMED 1287652008 and the descendants shipped here.
HISTORY_METASTATIC = frozenset({(SNOMED, "1287652008"), (SNOMED, "1098951000119108")})
M1_CODE = re.compile(r"^[ycpra]{0,3}M1(?![0-9])")
M1_TEXT = re.compile(r"(?<![A-Za-z0-9])[ycpra]{0,3}M1(?:[a-d]|\b)")
STAGE_IV_CODE = re.compile(r"^(?:stage\s*)?(?:IV|4)(?:[A-C]\d?)?$", re.IGNORECASE)
STAGE_IV_TEXT = re.compile(r"\bstage\s+(?:IV|4)(?:[A-C]\d?)?\b", re.IGNORECASE)

PREGNANCY_STATUS = {(LOINC, "LA15173-0"): "pregnant", (LOINC, "LA26683-5"): "not-pregnant"}
POS_NEG = {
    (LOINC, "LA6576-8"): "positive",
    (LOINC, "LA6577-6"): "negative",
    (SNOMED, "10828004"): "positive",
    (SNOMED, "260385009"): "negative",
}

MSI = {"LA26203-2": "msi-h", "LA26202-4": "msi-l", "LA14122-8": "mss"}
#: markers of the tumour-marker maps (loinc-tumour-markers.json, ncit-biomarkers.json) read as IHC/ISH facts:
#: receptor stains, the mismatch-repair protein stains (negative = loss of expression), the HER2/CEP17 ISH
#: ratio (a number) and the homologous-recombination-deficiency status (positive / negative)
IHC_MARKERS = frozenset({"ER", "PR", "HER2", "PD-L1", "MLH1", "MSH2", "MSH6", "PMS2", "HER2-ISH-RATIO", "HRD"})
IHC_SCORE = re.compile(r"^[0-3]\+$")

VARIANT_VALUE = {"LA9633-4": True, "LA9634-2": False}
VARIANT_NO_CALL = frozenset({"LA18198-4", "LA11884-6"})
ORIGIN = {"LA6683-2": "germline", "LA6684-0": "somatic"}
SIGNIFICANCE = {
    "LA6668-3": "pathogenic",
    "LA26332-9": "likely-pathogenic",
    "LA26333-7": "vus",
    "LA26334-5": "likely-benign",
    "LA6675-8": "benign",
}
CN_CHANGE = {"LA14033-7": "gain", "LA14034-5": "loss"}
SO_CHANGE = {
    "SO:0001483": "snv",
    "SO:1000002": "snv",
    "SO:0000159": "indel",
    "SO:0000667": "indel",
    "SO:1000032": "indel",
    "SO:1000035": "indel",
    "SO:0001019": "cnv",
    "SO:0001742": "cnv",
    "SO:0001743": "cnv",
    "SO:0001911": "cnv",
    "SO:0001912": "cnv",
    "SO:0001565": "fusion",
    "SO:0001886": "fusion",
    "SO:0000806": "fusion",
    "SO:0001572": "exon-loss",
}
#: Structural rearrangements: read as a fusion when the variant names two genes.
SO_REARRANGEMENT = frozenset({"SO:1000044", "SO:0000199", "SO:0002062", "SO:1000030"})
LOINC_CHANGE = {"LA6690-7": "snv"}
#: molecular consequence "exon_loss_variant": an exon missing from the transcript (MET exon 14 skipping
#: is the one the rules read; the exon number is not carried by the code)
SO_EXON_LOSS = "SO:0001572"
SO_CN = {"SO:0001742": "gain", "SO:0001911": "gain", "SO:0001743": "loss", "SO:0001912": "loss"}
GENE_SYMBOL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9\-\.@_]{0,29}$")

ASSAYS = frozenset({"GMS560", "WGS", "WES", "TSO500", "broad-panel", "targeted-panel", "ihc", "ish"})
BROAD_ASSAYS = frozenset({"GMS560", "WGS", "WES", "TSO500", "broad-panel"})
FINAL_REPORT = frozenset({"final", "amended", "corrected", "appended"})
#: Every DiagnosticReport.status (R4): any other value is present but not understood (final or not unknown).
REPORT_STATUSES = FINAL_REPORT | {"registered", "partial", "preliminary", "cancelled", "entered-in-error", "unknown"}
PATHOLOGY_SECTIONS = frozenset({"PAT", "SP", "CP"})
PATHOLOGY_LOINC = frozenset({"11526-1", "60568-3", "22637-3", "11529-5", "60567-5"})

ATC_CODE = re.compile(r"^[A-Z]\d\d(?:[A-Z](?:[A-Z](?:\d\d)?)?)?$")
MED_GIVEN = frozenset({"active", "completed", "stopped", "on-hold", "in-progress", "unknown"})
MED_CURRENT = frozenset({"active", "in-progress"})
#: Every status of MedicationStatement, MedicationAdministration and MedicationRequest (R4): any other value
#: is present but not understood, and whether the drug was given is unknown.
MED_STATUSES = MED_GIVEN | {"entered-in-error", "intended", "not-taken", "not-done", "cancelled", "draft"}

#: mdtflag assertion code -> ("coded", allowed values) | ("bool", None)
ASSERTIONS: Mapping[str, tuple[str, frozenset[str] | None]] = MappingProxyType(
    {
        "standard-treatment-status": ("coded", frozenset({"exhausted", "not-exhausted", "declined", "none-available"})),
        "measurable-disease": ("bool", None),
        "evaluable-disease": ("bool", None),
        "biopsy-feasible": ("bool", None),
        "extent": ("coded", frozenset({"locally-advanced-unresectable", "metastatic", "localised"})),
        "brain-metastases-status": ("coded", frozenset({"none", "progressive", "stable-treated"})),
        # haematological malignancies: whether the disease is active and needs therapy (F-ADV)
        "disease-status": (
            "coded",
            frozenset({"relapsed", "refractory", "active-requiring-therapy", "remission", "no-therapy-indicated"}),
        ),
        "cancer-genetics-referral": ("bool", None),
    }
)
REFERRAL = "cancer-genetics-referral"

#: v3-RoleCode -> degree of relationship.
DEGREE = dict.fromkeys(
    ("MTH", "FTH", "SIS", "BRO", "DAU", "SON", "NMTH", "NFTH", "NSIS", "NBRO", "CHILD", "PRN", "SIB"), 1
)
DEGREE.update(
    dict.fromkeys(
        (
            "GRMTH",
            "GRFTH",
            "MGRMTH",
            "MGRFTH",
            "PGRMTH",
            "PGRFTH",
            "AUNT",
            "UNCLE",
            "MAUNT",
            "MUNCLE",
            "PAUNT",
            "PUNCLE",
            "NIECE",
            "NEPHEW",
            "GRNDCHILD",
            "GRNDDAU",
            "GRNDSON",
            "HSIB",
            "HBRO",
            "HSIS",
            "GRPRN",
            "MGRPRN",
            "PGRPRN",
            "NIENEPH",
        ),
        2,
    )
)
# twins and natural siblings are first-degree relatives too
DEGREE.update(
    dict.fromkeys(
        (
            "NSIB",
            "TWIN",
            "TWINBRO",
            "TWINSIS",
            "FTWIN",
            "FTWINBRO",
            "FTWINSIS",
            "ITWIN",
            "ITWINBRO",
            "ITWINSIS",
            "SONC",
            "DAUC",
            "NCHILD",
        ),
        1,
    )
)
#: The other codes of the v3 FamilyMember hierarchy (RoleCode): relatives farther than second degree, and
#: relations that are not by blood (adoptive, foster, step, in-law, spouse). A code in the RoleCode system
#: outside DEGREE and these, and an unspecified family member (FAMMEMB, EXT), leave the degree unknown.
FAMILY_ROLES_NOT_CLOSE = frozenset(
    {
        "COUSN",
        "MCOUSN",
        "PCOUSN",
        "GGRPRN",
        "GGRFTH",
        "MGGRFTH",
        "PGGRFTH",
        "GGRMTH",
        "MGGRMTH",
        "PGGRMTH",
        "MGGRPRN",
        "PGGRPRN",
        "CHLDADOPT",
        "DAUADOPT",
        "SONADOPT",
        "CHLDFOST",
        "DAUFOST",
        "SONFOST",
        "STPDAU",
        "STPSON",
        "STPCHLD",
        "INLAW",
        "CHLDINLAW",
        "DAUINLAW",
        "SONINLAW",
        "PRNINLAW",
        "FTHINLAW",
        "MTHINLAW",
        "SIBINLAW",
        "BROINLAW",
        "SISINLAW",
        "ADOPTP",
        "ADOPTF",
        "ADOPTM",
        "FTHFOST",
        "STPFTH",
        "MTHFOST",
        "STPMTH",
        "PRNFOST",
        "STPPRN",
        "STPBRO",
        "STPSIS",
        "STPSIB",
        "SIGOTHR",
        "DOMPART",
        "FMRSPS",
        "SPS",
        "HUSB",
        "WIFE",
        "GESTM",
        "NFTHF",
        "NMTHF",
    }
)

IGNORED_STATUS = frozenset({"entered-in-error", "cancelled"})
INACTIVE_CLINICAL = frozenset({"resolved", "remission", "inactive"})
CLINICAL_STATUS = INACTIVE_CLINICAL | {"active", "recurrence", "relapse"}  # condition-clinical (R4)
VERIFICATION_STATUS = frozenset(
    {"unconfirmed", "provisional", "differential", "confirmed", "refuted", "entered-in-error"}
)  # condition-ver-status (R4)
#: The status codes of R4 for resources read as wholes: a status on file outside its set is present but not
#: understood, and what the resource says is then read as present but unreadable (it may be in error).
RESOURCE_STATUSES: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        "Observation": frozenset(
            {"registered", "preliminary", "final", "amended", "corrected", "cancelled", "entered-in-error", "unknown"}
        ),
        "FamilyMemberHistory": frozenset({"partial", "completed", "entered-in-error", "health-unknown"}),
        "DiagnosticReport": REPORT_STATUSES,
        "ServiceRequest": frozenset(
            {"draft", "active", "on-hold", "revoked", "completed", "entered-in-error", "unknown"}
        ),
        "Encounter": frozenset(
            {
                "planned",
                "arrived",
                "triaged",
                "in-progress",
                "onleave",
                "finished",
                "cancelled",
                "entered-in-error",
                "unknown",
            }
        ),
    }
)
