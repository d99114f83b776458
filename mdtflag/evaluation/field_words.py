"""Words for fact fields in the texts a clinician reads ("date of birth", not ``age``): one table for every
text that names missing data (reasons, summaries, cohort tables)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Optional

#: Fact fields a rule can miss, in words (Swedish, English). Keyed by field; the (fact kind, field) table first.
FIELD_WORDS: Mapping[str, tuple[str, str]] = {
    # patient
    "age": ("ålder (födelsedatum)", "age (date of birth)"),
    "sex": ("kön", "sex"),
    "deceased": ("uppgift om patienten är avliden", "whether the patient is deceased"),
    "county": ("län", "county"),
    "municipality": ("kommun", "municipality"),
    "healthcare_region": ("sjukvårdsregion", "healthcare region"),
    # diagnosis
    "icd10": ("ICD-10-kod", "ICD-10 code"),
    "icd10_3": ("ICD-10-kategori (tre tecken)", "ICD-10 category (three characters)"),
    "snomed": ("SNOMED CT-kod", "SNOMED CT code"),
    "icdo3_topography": ("topografi (ICD-O-3)", "topography (ICD-O-3)"),
    "morphology": ("morfologi (ICD-O-3)", "morphology (ICD-O-3)"),
    "cancer": ("uppgift om cancerdiagnos", "whether it is a cancer diagnosis"),
    "secondary": ("uppgift om metastas", "whether it is a metastasis"),
    "metastasis_site": ("metastaslokal", "metastasis site"),
    "active": ("klinisk status", "clinical status"),
    "confirmed": ("verifieringsstatus", "verification status"),
    "histology_confirmed": ("histologisk verifiering", "histological confirmation"),
    "onset": ("diagnosdatum", "date of diagnosis"),
    "onset_days_ago": ("diagnosdatum", "date of diagnosis"),
    "age_at_onset": (
        "ålder vid diagnos (diagnosdatum och födelsedatum)",
        "age at diagnosis (date of diagnosis and date of birth)",
    ),
    # extent, ecog, lab, pregnancy, assertion
    "value": ("värde", "value"),
    "source": ("källa", "source"),
    "date": ("datum", "date"),
    "age_days": ("datum", "date"),
    "derived": ("uppgift om värdet är omräknat", "whether the value is converted"),
    "analyte": ("analys", "analyte"),
    "unit": ("enhet", "unit"),
    "uln": ("övre referensgräns (ULN)", "upper limit of normal (ULN)"),
    "x_uln": ("övre referensgräns (ULN)", "upper limit of normal (ULN)"),
    "status": ("status", "status"),
    "code": ("kod", "code"),
    "flag": ("bedömning (ja/nej)", "assessment (yes/no)"),
    "since_days": ("datum", "date"),
    # performance, tmb
    "scale": ("skala", "scale"),
    "interpretation": ("laboratoriets bedömning (hög/låg)", "the laboratory's call (high/low)"),
    # variant
    "gene": ("gen", "gene"),
    "present": ("uppgift om varianten påvisats", "whether the variant was detected"),
    "protein": ("proteinförändring (HGVS p.)", "protein change (HGVS p.)"),
    "cdna": ("cDNA-förändring (HGVS c.)", "cDNA change (HGVS c.)"),
    "change_type": ("typ av förändring", "type of change"),
    "copy_number": ("kopietal", "copy number"),
    "cn_change": ("kopietalsförändring", "copy-number change"),
    "fusion_partner": ("fusionspartner", "fusion partner"),
    "origin": ("ursprung (ärftlig eller somatisk)", "origin (germline or somatic)"),
    "significance": ("klinisk signifikans", "clinical significance"),
    "vaf": ("variantallelfrekvens (VAF)", "variant allele frequency (VAF)"),
    # ihc, genomic report
    "marker": ("markör", "marker"),
    "result": ("resultat", "result"),
    "score": ("poäng", "score"),
    "assay": ("analysmetod", "assay"),
    "broad": ("uppgift om bred panel", "whether it is a broad panel"),
    "final": ("uppgift om slutligt svar", "whether the report is final"),
    "has_performer": ("utförande laboratorium", "performing laboratory"),
    # medication
    "atc": ("ATC-kod", "ATC code"),
    "atc_class": ("ATC-grupp", "ATC group"),
    "atc_group": ("ATC-grupp", "ATC group"),
    "current": ("uppgift om pågående behandling", "whether the treatment is current"),
    "prior": ("uppgift om tidigare behandling", "whether the treatment was earlier"),
    "start": ("startdatum", "start date"),
    "start_days_ago": ("startdatum", "start date"),
    "end_days_ago": ("slutdatum", "end date"),
    # trial candidacy, family history
    "phase": ("studiefas", "trial phase"),
    "study": ("studie", "study"),
    "relationship": ("släktskap", "relationship"),
    "degree": ("släktskapsgrad", "degree of relationship"),
    "onset_age": ("insjuknandeålder", "age at onset"),
}

#: (fact kind, field) pairs whose words read better than the field's own.
KIND_FIELD_WORDS: Mapping[tuple[str, str], tuple[str, str]] = {
    ("ecog", "age_days"): ("datum för bedömningen", "date of the assessment"),
    ("ecog", "date"): ("datum för bedömningen", "date of the assessment"),
    ("lab", "age_days"): ("provtagningsdatum", "sampling date"),
    ("lab", "date"): ("provtagningsdatum", "sampling date"),
    ("genomic_report", "age_days"): ("svarsdatum", "report date"),
    ("genomic_report", "date"): ("svarsdatum", "report date"),
    ("assertion", "age_days"): ("datum för bedömningen", "date of the assessment"),
    ("pregnancy", "age_days"): ("provdatum", "test date"),
    ("medication", "status"): ("behandlingsstatus", "treatment status"),
    ("tmb", "value"): ("TMB-värde (mutationer/Mb)", "TMB value (mutations/Mb)"),
    ("performance", "age_days"): ("datum för bedömningen", "date of the assessment"),
    ("performance", "date"): ("datum för bedömningen", "date of the assessment"),
}


def words_for(field: str, kind: str = "") -> tuple[str, str]:
    """(Swedish, English) words for a fact field; an unlisted field is spelled out (underscores become spaces)."""
    got = KIND_FIELD_WORDS.get((kind, field)) or FIELD_WORDS.get(field)
    if got:
        return got
    plain = field.replace("_", " ")
    return (plain, plain)


def field_words(field: Optional[str], kind: str = "") -> tuple[str, str]:
    """(Swedish, English) words for the missing field of a reason; no field is "data"."""
    if field is None:
        return ("uppgift", "data")
    return words_for(field, kind)
