"""The clinician text: summary first, Swedish wording, one line for a deceased patient, words for fields."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mdtflag import Evaluator
from mdtflag.evaluation.field_words import field_words
from mdtflag.output.render import to_text
from mdtflag.output.sv_text import CODE_WORDS_SV, polish_sv

ROOT = Path(__file__).resolve().parents[1]
AS_OF = "2026-11-01"


@pytest.fixture(scope="module")
def ev() -> Evaluator:
    return Evaluator(ROOT / "rules")


def _text(ev: Evaluator, name: str, lang: str, detail: bool = False) -> str:
    return to_text(ev.evaluate(ROOT / "fhir_examples" / f"{name}.json", as_of=AS_OF), lang, detail=detail)


def test_polish_sv_words_units_and_decimal_comma() -> None:
    assert polish_sv("Standardbehandling: exhausted") == "Standardbehandling: uttömd"
    assert polish_sv("Bilirubin 9 umol/L < 2.5 × ULN") == "Bilirubin 9 µmol/L < 2,5 × ULN"
    assert polish_sv("ALAT 0.4 ukat/L") == "ALAT 0,4 µkat/L"
    # codes, versions and HGVS names keep their dots
    for kept in ("C22.1", "v1.1.0", "NM_004333.6:c.1799T>A", "p.V600E", "2026-10-15"):
        assert polish_sv(kept) == kept


@given(st.text(alphabet="0123456789.-abc C", max_size=30))
def test_polish_sv_is_idempotent(text: str) -> None:
    once = polish_sv(text)
    assert polish_sv(once) == once


def test_no_code_word_is_swedish_for_another() -> None:
    assert not set(CODE_WORDS_SV.values()) & (set(CODE_WORDS_SV) - {"remission"})


def test_field_words_name_fields_in_words() -> None:
    assert field_words("age") == ("ålder (födelsedatum)", "age (date of birth)")
    assert field_words("age_days")[1] == "date"
    assert field_words("age_days", "lab")[1] == "sampling date"
    assert field_words("unheard_of") == ("unheard of", "unheard of")
    assert field_words(None) == ("uppgift", "data")


def test_summary_comes_first_and_is_short(ev: Evaluator) -> None:
    text = _text(ev, "01-cholangio-braf-v600e-focuse-eligible", "sv")
    lines = text.splitlines()
    assert lines[2] == "Sammanfattning"
    assert "MDK-nivå: Nationell MDK" in text and "NATIONAL" not in text
    assert "Dabrafenib + trametinib" in text
    assert len(lines) <= 15
    assert "MDK-NAT-1 v" not in text  # per-rule detail only with --detail
    detail = _text(ev, "01-cholangio-braf-v600e-focuse-eligible", "sv", detail=True)
    assert detail.startswith(text.split("Alla regler")[0].rstrip("\n"))
    assert "MDK-NAT-1 v" in detail and "NATIONELL MDK" in detail


def test_data_to_collect_listed_in_summary(ev: Evaluator) -> None:
    text = _text(ev, "24-colon-kras-g12c-ecog-missing", "en")
    assert "To complete:" in text and "ECOG" in text.split("To complete:")[1]


@pytest.mark.parametrize(
    "lang,line",
    [
        ("sv", "Patienten är avliden – inga flaggor eller remisser."),
        ("en", "Patient deceased – no flags or referrals."),
    ],
)
def test_deceased_patient_gets_one_line(ev: Evaluator, lang: str, line: str) -> None:
    for detail in (False, True):
        lines = _text(ev, "14-deceased-cholangio-braf", lang, detail).splitlines()
        assert lines[2:] == [lines[2], f"  {line}"]


def test_batch_missing_column_in_words(ev: Evaluator) -> None:
    from mdtflag.cohort.summary import summary_row

    res = ev.evaluate(ROOT / "fhir_examples" / "40-kidney-cancer-birth-date-missing.json", as_of=AS_OF)
    missing = summary_row(res, "x")["missing"]
    assert "date of birth" in missing and "'age'" not in missing


def test_no_flagged_line_carries_a_failure_mark(ev: Evaluator) -> None:
    """A mark must match its wording: a row or rule shown as flagged is never marked ✗ on the same line."""
    for path in sorted((ROOT / "fhir_examples").glob("[0-9][0-9]-*.json")):
        result = ev.evaluate(path, as_of=AS_OF)
        for lang, word in (("sv", "FLAGGAD"), ("en", "FLAGGED")):
            for line in to_text(result, lang, detail=True).splitlines():
                assert not (f": {word}" in line and "✗" in line), (path.name, line)
