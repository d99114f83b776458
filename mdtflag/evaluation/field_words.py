"""Words for fact fields in the texts a clinician reads ("date of birth", not ``age``)."""
from __future__ import annotations

from typing import Optional

_DATE = ("datum", "date")
#: fact field -> (Swedish, English) wording of the data that is missing
FIELD_WORDS: dict[str, tuple[str, str]] = {
    "age": ("födelsedatum", "date of birth"),
    "age_at_onset": ("diagnosdatum (ålder vid diagnos)", "diagnosis date (age at diagnosis)"),
    "age_days": _DATE,
    "date": _DATE,
    "onset": ("debutdatum", "onset date"),
    "onset_days_ago": ("debutdatum", "onset date"),
    "start": ("startdatum", "start date"),
    "start_days_ago": ("startdatum", "start date"),
    "end_days_ago": ("slutdatum", "end date"),
    "since_days": ("datum sedan när", "date since when"),
    "vaf": ("allelfrekvens (VAF)", "allele frequency (VAF)"),
    "change_type": ("förändringstyp", "change type"),
    "origin": ("ursprung (konstitutionell/somatisk)", "origin (germline/somatic)"),
    "significance": ("klinisk signifikans", "clinical significance"),
    "protein": ("aminosyraförändring", "protein change"),
    "copy_number": ("kopietal", "copy number"),
    "value": ("värde", "value"),
    "phase": ("studiefas", "trial phase"),
    "icd10": ("ICD-10-kod", "ICD-10 code"),
    "icd10_3": ("ICD-10-kod", "ICD-10 code"),
    "status": ("status", "status"),
    "sex": ("kön", "sex"),
    "onset_age": ("insjuknandeålder", "age at onset"),
}


def field_words(field: Optional[str]) -> tuple[str, str]:
    """(Swedish, English) words for a fact field; an unlisted field is shown as its name."""
    if field is None:
        return ("uppgift", "data")
    return FIELD_WORDS.get(field, (f"'{field}'", f"'{field}'"))
