"""Present versus extracted, per fact kind, over the real public FHIR data (../shared/real-fhir).

*Present* is counted from the raw resources of every bundle that loads as one patient: what a reader
of the data would call a cancer diagnosis, a drug, a variant, a tumour marker, a genomic report.
*Extracted* is what mdtflag made of it. The census uses the displays and texts the data carries, not
mdtflag's terminology, so that it measures the readers instead of repeating them.

``python -m tests.real_coverage`` prints the table.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

from mdtflag.errors import InputError
from mdtflag.fhir.facts import FactSet, extract_facts
from mdtflag.fhir.load import LoadedBundle, load_bundle

REAL = Path(__file__).resolve().parent.parent.parent / "shared" / "real-fhir"
AS_OF = date(2024, 6, 1)

CANCER_WORDS = re.compile(
    r"malignan|carcinoma|cancer|neoplasm of|leuka?emia|lymphoma|melanoma|sarcoma|"
    r"metasta|adenocarcinoma|glioma|myeloma|blastoma",
    re.IGNORECASE,
)
NOT_CANCER = re.compile(r"benign|history of|screening|suspected|family history", re.IGNORECASE)
#: tumour-marker Observation codes (LOINC) a reader would call a marker result
MARKER_LOINC = frozenset(
    {
        "94076-7",
        "94077-5",
        "81695-9",
        "62862-8",
        "40556-3",
        "16112-5",
        "40557-1",
        "16113-3",
        "18474-7",
        "72382-5",
        "48676-1",
        "85319-2",
        "85318-4",
        "85337-4",
        "85339-0",
        "83052-1",
        "85147-7",
        "85310-1",
        "48675-3",
        "49683-6",
        "14130-9",
        "85325-9",
        "85329-1",
        "85331-7",
        "2857-1",
        "10334-1",
        "19195-7",
        "83050-5",
    }
)
GENOMIC_REPORT = frozenset({"51969-4", "81247-9"})
MEDICATION_TYPES = ("MedicationStatement", "MedicationRequest", "MedicationAdministration")
#: note codes that mean "a coded element was present and not understood"
UNREAD = frozenset({"unknown-code-system", "unknown-code", "unmapped-code", "unknown-unit", "invalid-code"})
KINDS = (
    "cancer conditions",
    "medications",
    "variants",
    "markers",
    "broad reports",
    "disease statuses",
    "histology results",
    "Lansky scores",
)
DISEASE_STATUS_LOINC = frozenset({"97509-4", "88040-1"})
_MORPHOLOGY_READ = re.compile(r"(?<!\d)\d{4}/\d$")
#: rows of the extracted side only: how much of what was extracted carries the code the rules test
DETAIL = ("cancer with ICD-10 group", "medications with ATC", "medications, drug unknown")


def bundles() -> Iterator[tuple[Path, LoadedBundle]]:
    for f in sorted(REAL.rglob("*.json")):
        try:
            yield f, load_bundle(f, validate="facts")
        except InputError:
            continue


def _codings(cc: object) -> list[dict[str, Any]]:
    if not isinstance(cc, dict):
        return []
    return [c for c in cc.get("coding", []) if isinstance(c, dict)] if isinstance(cc.get("coding"), list) else []


def _words(cc: object) -> str:
    parts = [str(c.get("display", "")) for c in _codings(cc)]
    if isinstance(cc, dict) and isinstance(cc.get("text"), str):
        parts.append(cc["text"])
    return " ".join(parts)


def _loinc(cc: object) -> set[str]:
    return {str(c.get("code")) for c in _codings(cc) if "loinc" in str(c.get("system", ""))}


def present(bundle: LoadedBundle) -> Counter[str]:
    out: Counter[str] = Counter()
    for res in bundle.resources:
        rt = res.get("resourceType")
        if res.get("status") == "entered-in-error":
            continue
        if rt == "Condition":
            out["histology results"] += sum(
                1
                for e in res.get("extension", []) or []
                if isinstance(e, dict) and "histology" in str(e.get("url", ""))
            )
            words = _words(res.get("code"))
            if CANCER_WORDS.search(words) and not NOT_CANCER.search(words):
                out["cancer conditions"] += 1
        elif rt in MEDICATION_TYPES:
            out["medications"] += 1
        elif rt == "Observation":
            codes = _loinc(res.get("code"))
            if codes & DISEASE_STATUS_LOINC:
                out["disease statuses"] += 1
            elif "31206-6" in codes:
                out["histology results"] += 1
            elif "lansky" in _words(res.get("code")).lower() or any(
                c.get("code") == "C38144" for c in _codings(res.get("code"))
            ):
                out["Lansky scores"] += 1
            elif "69548-6" in codes:
                out["variants"] += 1
            elif codes & MARKER_LOINC:
                out["markers"] += 1
        elif rt == "DiagnosticReport" and (
            _loinc(res.get("code")) & GENOMIC_REPORT
            or any(c.get("code") == "GE" for cat in res.get("category", []) or [] for c in _codings(cat))
        ):
            out["broad reports"] += 1
    return out


def extracted(fs: FactSet) -> Counter[str]:
    out: Counter[str] = Counter()
    out["cancer conditions"] = sum(1 for d in fs.of_kind("diagnosis") if getattr(d, "cancer", False))
    meds = fs.of_kind("medication")
    out["medications"] = len({f.evidence[0].resource for f in meds if f.evidence and getattr(f, "atc", None)})
    out["medications with ATC"] = out["medications"]
    out["medications, drug unknown"] = sum(1 for f in meds if getattr(f, "atc", None) is None)
    out["cancer with ICD-10 group"] = sum(
        1 for d in fs.of_kind("diagnosis") if getattr(d, "cancer", False) and getattr(d, "icd10", None)
    )
    out["variants"] = len({f.evidence[0].resource for f in fs.of_kind("variant") if f.evidence})
    out["markers"] = sum(len(fs.of_kind(k)) for k in ("tmb", "msi", "ihc"))
    out["disease statuses"] = len(
        {f.evidence[0].resource for f in fs.of_kind("assertion") if f.evidence and "(mCODE)" in f.evidence[0].value}
        | {f.evidence[0].resource for f in fs.of_kind("extent") if f.evidence and f.source == "disease-status"}
    )
    out["histology results"] = sum(
        1
        for d in fs.of_kind("diagnosis")
        for e in d.evidence
        if e.element.startswith(("Condition.extension", "Observation.")) and _MORPHOLOGY_READ.search(e.value)
    )
    out["Lansky scores"] = sum(1 for f in fs.of_kind("performance") if getattr(f, "scale", None) == "lansky")
    out["broad reports"] = sum(1 for r in fs.of_kind("genomic_report") if getattr(r, "broad", False) is True)
    return out


_INDEX = re.compile(r"\[\d+\]")


def unread(fs: FactSet) -> Counter[str]:
    """``note code  element  (what was seen)`` -> count; indices removed from paths."""
    out: Counter[str] = Counter()
    for n in fs.notes:
        if n.code in UNREAD:
            element = _INDEX.sub("[]", n.element or "")
            out[f"{n.code}  {element}"] += 1
    return out


def census(items: Iterable[tuple[Path, LoadedBundle]]) -> tuple[Counter[str], Counter[str], Counter[str]]:
    have: Counter[str] = Counter()
    got: Counter[str] = Counter()
    notes: Counter[str] = Counter()
    for _, b in items:
        fs = extract_facts(b, AS_OF)
        have.update(present(b))
        got.update(extracted(fs))
        notes.update(unread(fs))
    return have, got, notes


def report(have: Counter[str], got: Counter[str], notes: Counter[str]) -> str:
    lines = ["# present vs extracted over ../shared/real-fhir", "", f"{'kind':<20}{'present':>9}{'extracted':>11}"]
    lines += [f"{k:<20}{have[k]:>9}{got[k]:>11}" for k in KINDS]
    lines += [f"{k:<29}{got[k]:>11}" for k in DETAIL]
    lines += ["", "# coded elements present but not read (note code, element): count", ""]
    lines += [f"{k}: {v}" for k, v in sorted(notes.items())]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(report(*census(bundles())), end="")
