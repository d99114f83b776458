"""Swedish text polish: code values written in Swedish, SI symbols and the decimal comma.

Rule texts fill placeholders with coded values (``exhausted``, ``metastatic``) and UCUM units (``umol/L``);
a Swedish reader should see Swedish words, µmol/L and 2,5 rather than 2.5. Codes such as C22.1, versions
(1.1.0) and HGVS names are left alone.
"""

from __future__ import annotations

import re

#: coded values that reach Swedish text through placeholders -> Swedish wording
CODE_WORDS_SV: dict[str, str] = {
    "not-exhausted": "ej uttömd",
    "exhausted": "uttömd",
    "none-available": "finns inte",
    "declined": "avböjd",
    "locally-advanced-unresectable": "lokalt avancerad, ej resektabel",
    "metastatic": "metastaserad",
    "localised": "lokaliserad",
    "likely-pathogenic": "sannolikt patogen",
    "pathogenic": "patogen",
    "secondary-condition": "metastasdiagnos",
    "history-of-metastatic": "tidigare metastaserad",
    "stage-group": "stadium IV",
    "tnm-m": "TNM M1",
    "broad-panel": "bred panel",
    "targeted-panel": "riktad panel",
    "positive-hcg": "positivt hCG",
    "negative-hcg": "negativt hCG",
    "not-pregnant": "ej gravid",
    "pregnant": "gravid",
    "stable-treated": "stabil efter behandling",
    "progressive": "progressiv",
    "somatic": "somatisk",
    "germline": "konstitutionell",
    "relapsed": "recidiv",
    "refractory": "refraktär",
    "active-requiring-therapy": "behandlingskrävande",
    "no-therapy-indicated": "ingen behandling indicerad",
    "remission": "remission",
    "creatinine": "kreatinin",
    "egfr": "eGFR",
    "open": "öppen",
    "stage1": "steg 1",
    "expanded": "utökad",
    "closed": "stängd",
}
_CODE = re.compile(
    r"(?<![\w-])(" + "|".join(re.escape(k) for k in sorted(CODE_WORDS_SV, key=len, reverse=True)) + r")(?![\w-])"
)
_DECIMAL = re.compile(r"(?<![\w.])(\d+)\.(\d+)(?![\w.])")
_UNITS = (("umol/L", "µmol/L"), ("ukat/L", "µkat/L"), ("mL/min/{1.73_m2}", "mL/min/1,73 m²"))


def polish_sv(text: str) -> str:
    """Swedish wording of code values, µ units and decimal commas in one line of Swedish text."""
    for a, b in _UNITS:
        text = text.replace(a, b)
    text = _CODE.sub(lambda m: CODE_WORDS_SV[m.group(1)], text)
    return _DECIMAL.sub(r"\1,\2", text)
