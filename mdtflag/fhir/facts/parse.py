"""Small total readers of FHIR JSON values: they never raise on odd input.

Codings, dates, numbers, references, and the normalisation of ICD-10, ICD-O-3 and protein HGVS.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from datetime import date as Date
from decimal import Decimal
from functools import lru_cache
from typing import Any

from mdtflag.fhir.facts.codes import M1_CODE, M1_TEXT, SNOMED, STAGE_IV_CODE, STAGE_IV_TEXT


def _norm_system_uncached(system: str) -> str:
    s = system.strip().lower().rstrip("/")
    if s.startswith("https://"):
        s = "http://" + s[8:]
    return s


_SYSTEM_CACHE: dict[str, str] = {}


def norm_system(system: object) -> str:
    """Normalised code-system URI (lower case, no trailing slash, https -> http); "" if absent."""
    try:
        return _SYSTEM_CACHE[system]  # type: ignore[index]
    except (KeyError, TypeError):
        pass
    if type(system) is not str:
        return ""
    s = _norm_system_uncached(system)
    if len(_SYSTEM_CACHE) < 10_000:
        _SYSTEM_CACHE[system] = s
    return s


LIMIT = Decimal("9e15")  # engine values are int64 after ×1000


def string(x: object) -> str | None:
    if type(x) is str:
        x = x.strip()
        return x or None
    return None


def as_list(x: object) -> list[Any]:
    return x if type(x) is list else []


def as_dict(x: object) -> dict[str, Any]:
    return x if type(x) is dict else {}


def codings(cc: object) -> list[tuple[str, str, str | None]]:
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
                out.append((norm_system(c.get("system")), code, disp if type(disp) is str else None))
    return out


def status_code(cc: object) -> str | None:
    """First code of a CodeableConcept status (e.g. Condition.verificationStatus)."""
    for _, code, _ in codings(cc):
        return code
    return None


@lru_cache(maxsize=8192)
def parse_date(text: str) -> tuple[Date | None, bool]:
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


def last_day(d: Date, text: str) -> Date:
    """The last day a partial date ``text`` (parsed to its first day ``d``) can mean."""
    s = text.strip()
    if len(s) == 4:
        return Date(d.year, 12, 31)
    if len(s) == 7:
        nxt = Date(d.year + (d.month == 12), d.month % 12 + 1, 1)
        return Date.fromordinal(nxt.toordinal() - 1)
    return d


_INSTANT = re.compile(
    r"^(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d)(?::(\d\d)(?:\.(\d{1,9}))?)?"
    r"(Z|[+-]\d\d:\d\d)?$"
)


@lru_cache(maxsize=8192)
def instant_key(text: str) -> int | None:
    """Microseconds (UTC when a zone is given) for a dateTime with a time of day; the start of the day
    for a date; None when unreadable. Orders "latest" by the full instant."""
    s = text.strip()
    m = _INSTANT.match(s)
    if m is None:
        d, _ = parse_date(s)
        return None if d is None else d.toordinal() * 86_400_000_000
    try:
        day = Date(int(m[1]), int(m[2]), int(m[3])).toordinal()
    except ValueError:
        return None
    secs = int(m[4]) * 3600 + int(m[5]) * 60 + int(m[6] or 0)
    zone = m[8]
    if zone and zone != "Z":
        offset = int(zone[1:3]) * 3600 + int(zone[4:6]) * 60
        secs -= offset if zone[0] == "+" else -offset
    micros = int((m[7] or "0").ljust(6, "0")[:6])
    return (day * 86_400 + secs) * 1_000_000 + micros


def number(x: object) -> Decimal | None:
    """A JSON number as Decimal (bool excluded); None for anything else or out of range."""
    if type(x) is int:
        d = Decimal(x)
    elif type(x) is float:
        if not math.isfinite(x):
            return None
        d = Decimal(repr(x))
    else:
        return None
    return d if -LIMIT < d < LIMIT else None


_THREE_TO_ONE = {
    "Ala": "A",
    "Arg": "R",
    "Asn": "N",
    "Asp": "D",
    "Cys": "C",
    "Gln": "Q",
    "Glu": "E",
    "Gly": "G",
    "His": "H",
    "Ile": "I",
    "Leu": "L",
    "Lys": "K",
    "Met": "M",
    "Phe": "F",
    "Pro": "P",
    "Ser": "S",
    "Thr": "T",
    "Trp": "W",
    "Tyr": "Y",
    "Val": "V",
    "Ter": "*",
    "Sec": "U",
    "Pyl": "O",
    "Xaa": "X",
    "Asx": "B",
    "Glx": "Z",
}
_THREE_LETTER = re.compile("|".join(_THREE_TO_ONE))


_AA = "[ACDEFGHIKLMNPQRSTVWYUOXBZ*]"
_POS = rf"{_AA}\d+"
_RANGE = rf"{_POS}(?:_{_POS})?"
#: the protein changes of the HGVS nomenclature (one-letter form): substitution, synonymous and unknown change at a
#: position, deletion, duplication, insertion, deletion-insertion, frameshift, extension, and the whole-protein
#: forms (= no change, ? unknown, 0 no protein)
_PROTEIN_CHANGE = re.compile(
    rf"{_POS}(?:{_AA}|=|\?)"
    rf"|{_RANGE}(?:del|dup)"
    rf"|{_RANGE}(?:delins|ins)(?:{_AA}+|\d+)"
    rf"|{_POS}{_AA}?fs(?:\*|X)?(?:\d+|\?)?"
    rf"|{_POS}{_AA}?ext(?:-|\*)?(?:\d+|\?)"
    r"|=|\?|0\??"
)


def normalise_protein_hgvs(text: str) -> str | None:
    """One-letter protein HGVS: "NP_004324.2:p.Val600Glu", "p.(Val600Glu)", "p.V600E" -> "p.V600E".

    Returns ``None`` when ``text`` holds no ``p.`` description, or one that is not an HGVS protein change
    ("p.V600EX9", "p.R132"): present but not understood, never another variant.
    """
    s = text.strip()
    i = s.find("p.")
    if i < 0:
        return None
    words = s[i + 2 :].strip().replace(",", " ").replace(";", " ").split()
    body = words[0] if words else ""
    if body.startswith("(") and body.endswith(")"):
        body = body[1:-1]
    body = _THREE_LETTER.sub(lambda m: _THREE_TO_ONE[m.group(0)], body)
    return f"p.{body}" if _PROTEIN_CHANGE.fullmatch(body) else None


_ICD10_FORM = re.compile(r"^[A-Z][0-9][0-9A-Z](?:\.[0-9A-Z]{1,4})?$")


def normalise_icd10(code: str) -> str | None:
    """ "C221" / "c22.1" / "C22.1" -> "C22.1"; None when not of ICD-10 form."""
    s = code.strip().upper().replace(" ", "").rstrip("*+†").rstrip(".")
    if len(s) > 3 and "." not in s:
        s = f"{s[:3]}.{s[3:]}"
    return s if _ICD10_FORM.match(s) else None


def icd10_classes(icd10: str) -> tuple[bool, bool, bool]:
    """(malignant C00-C97, secondary C77-C79, pregnancy Z33/O00-O9A) for a normalised code."""
    letter, rest = icd10[0], icd10[1:3]
    if letter == "C":
        if rest.isdigit():
            n = int(rest)
            return n <= 97, 77 <= n <= 79, False
        return True, rest == "7B", False  # ICD-10-CM C4A, C7A, C7B
    if letter == "O":
        return False, False, True
    return False, False, icd10[:3] == "Z33"


def ref_key(ref: str) -> str | None:
    """``"Type/id"`` from a relative or absolute literal reference (history stripped)."""
    parts = ref.split("/_history/")[0].rstrip("/").split("/")
    if len(parts) >= 2 and parts[-2][:1].isupper() and parts[-1]:
        return f"{parts[-2]}/{parts[-1]}"
    return None


def status_of(res: dict[str, Any]) -> str | None:
    status = res.get("status")
    return status.strip() if type(status) is str and status.strip() else None


def years_between(start: Date, end: Date) -> int:
    years = end.year - start.year
    if (end.month, end.day) < (start.month, start.day):
        years -= 1
    return years


_ICDO_TOPO = re.compile(r"^C\d\d\.?\d$")
_ICDO_MORPH = re.compile(r"^\d{4}/\d$")


def icdo3(code: str) -> tuple[str | None, str | None]:
    """(topography "C34.1", morphology "8140/3") from an ICD-O-3 code (either, or both
    space-separated as in "C34.9 8140/3")."""
    topo = morph = None
    for token in code.upper().split():
        if _ICDO_TOPO.match(token):
            topo = token if "." in token else f"{token[:3]}.{token[3:]}"
        elif _ICDO_MORPH.match(token):
            morph = token
    return topo, morph


def m1_value(cc: object) -> str | None:
    """The value text if a TNM M category value is M1 (AJCC string, or SNOMED display)."""
    for s, c, d in codings(cc):
        if s == SNOMED:
            if d and M1_TEXT.search(d):
                return f"{c} {d}"
        elif M1_CODE.match(c):
            return c
    return None


def stage_iv_value(cc: object) -> str | None:
    """The value text if a stage group value is stage IV (AJCC string, or SNOMED display)."""
    for s, c, d in codings(cc):
        if s == SNOMED:
            if d and STAGE_IV_TEXT.search(d):
                return f"{c} {d}"
        elif STAGE_IV_CODE.match(c):
            return c
    if type(cc) is dict and not codings(cc):
        text = string(cc.get("text"))
        if text and (STAGE_IV_CODE.match(text) or STAGE_IV_TEXT.search(text)):
            return text
    return None


_LOINC_FORM = re.compile(r"(\d{1,7})-(\d)")


@lru_cache(maxsize=4096)
def loinc_valid(code: str) -> bool:
    """Whether ``code`` is a LOINC code: digits, a dash and the mod-10 check digit LOINC computes (answer and
    part codes, LA… / LP…, are not observation codes and are not valid here)."""
    m = _LOINC_FORM.fullmatch(code)
    if m is None:
        return False
    total = 0
    for k, ch in enumerate(reversed(m.group(1))):
        d = int(ch) * (2 if k % 2 == 0 else 1)
        total += d // 10 + d % 10
    return (10 - total % 10) % 10 == int(m.group(2))


def loinc_prefix(code: str) -> str | None:
    """The LOINC code that ``code`` may have meant: the one it starts with ("69548-6X9" -> "69548-6"), or its
    number with the right check digit ("21198-8" -> "21198-7"); None when it does not start with digit-dash-digit."""
    m = _LOINC_FORM.match(code.strip())
    if m is None:
        return None
    if loinc_valid(m.group(0)):
        return m.group(0)
    return next(f"{m.group(1)}-{d}" for d in "0123456789" if loinc_valid(f"{m.group(1)}-{d}"))


def component_codes(comp: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(normalised system, code) of each coding of ``component.code`` (a generator: the caller
    usually stops at the first)."""
    cc = comp.get("code")
    if type(cc) is dict:
        for c in as_list(cc.get("coding")):
            if type(c) is dict:
                code = c.get("code")
                if type(code) is str:
                    yield norm_system(c.get("system")), code.strip()


def component_text(comp: dict[str, Any]) -> str | None:
    """The text of a component value: first coding's code, else its display, else
    ``valueCodeableConcept.text``, else ``valueString``."""
    cc = comp.get("valueCodeableConcept")
    if type(cc) is dict:
        for c in as_list(cc.get("coding")):
            if type(c) is dict:
                text = string(c.get("code")) or string(c.get("display"))
                if text:
                    return text
        if string(cc.get("text")):
            return string(cc.get("text"))
    return string(comp.get("valueString"))


_TMB_UNIT_WORDS = ("mb", "megabase", "1000000")


def is_tmb_unit(unit: str) -> bool:
    u = unit.lower()
    return any(w in u for w in _TMB_UNIT_WORDS)
