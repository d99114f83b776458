"""Swedish administrative codes (SCB) used to place a patient in a healthcare region.

* :data:`COUNTIES` -- all 21 counties (län / regioner) with their SCB länskod.
* :data:`HALLAND_MUNICIPALITIES` -- the six municipalities of Halland, the only county that is split
  between two healthcare regions (southern part -> Södra, northern part -> Västra).
* :data:`DEFAULT_COUNTY_REGION` / :data:`DEFAULT_MUNICIPALITY_REGION` -- the healthcare-region table of
  CRITERIA.md §3.1 (Hälso- och sjukvårdsförordningen 2017:80).

:func:`county_code` and :func:`municipality_code` accept a code (``"12"``, ``"1380"``) or a name in
any of its usual spellings ("Skåne", "Region Skåne", "Skåne län", "Västra Götalands län",
"STOCKHOLM", "Halmstads kommun"), ignoring case and diacritics.
"""
from __future__ import annotations

import re
import unicodedata
from types import MappingProxyType
from typing import Mapping, Optional

__all__ = [
    "COUNTIES", "HALLAND_MUNICIPALITIES", "HEALTHCARE_REGIONS", "DEFAULT_COUNTY_REGION",
    "DEFAULT_MUNICIPALITY_REGION", "county_code", "municipality_code", "normalise_name",
]

#: SCB länskod -> official county name.
COUNTIES: Mapping[str, str] = MappingProxyType({
    "01": "Stockholms län",
    "03": "Uppsala län",
    "04": "Södermanlands län",
    "05": "Östergötlands län",
    "06": "Jönköpings län",
    "07": "Kronobergs län",
    "08": "Kalmar län",
    "09": "Gotlands län",
    "10": "Blekinge län",
    "12": "Skåne län",
    "13": "Hallands län",
    "14": "Västra Götalands län",
    "17": "Värmlands län",
    "18": "Örebro län",
    "19": "Västmanlands län",
    "20": "Dalarnas län",
    "21": "Gävleborgs län",
    "22": "Västernorrlands län",
    "23": "Jämtlands län",
    "24": "Västerbottens län",
    "25": "Norrbottens län",
})

#: SCB kommunkod -> name, for the municipalities of the split county Halland (13).
HALLAND_MUNICIPALITIES: Mapping[str, str] = MappingProxyType({
    "1315": "Hylte",
    "1380": "Halmstad",
    "1381": "Laholm",
    "1382": "Falkenberg",
    "1383": "Varberg",
    "1384": "Kungsbacka",
})

#: The six healthcare regions (sjukvårdsregioner), as used in fact values.
HEALTHCARE_REGIONS = ("norra", "mellansverige", "stockholm-gotland", "sydostra", "sodra", "vastra")

#: länskod -> healthcare region. Halland (13) is absent: it is split by municipality.
DEFAULT_COUNTY_REGION: Mapping[str, str] = MappingProxyType({
    "22": "norra", "23": "norra", "24": "norra", "25": "norra",
    "03": "mellansverige", "04": "mellansverige", "17": "mellansverige", "18": "mellansverige",
    "19": "mellansverige", "20": "mellansverige", "21": "mellansverige",
    "01": "stockholm-gotland", "09": "stockholm-gotland",
    "05": "sydostra", "06": "sydostra", "08": "sydostra",
    "07": "sodra", "10": "sodra", "12": "sodra",
    "14": "vastra",
})

#: kommunkod -> healthcare region, only for municipalities of split counties (Halland).
DEFAULT_MUNICIPALITY_REGION: Mapping[str, str] = MappingProxyType({
    "1380": "sodra", "1315": "sodra", "1381": "sodra",
    "1384": "vastra", "1383": "vastra", "1382": "vastra",
})

_DROP_WORDS = frozenset({"region", "regionen", "lan", "lans", "landsting", "landstinget",
                         "county", "kommun", "kommune", "municipality", "stad"})
_NON_ALNUM = re.compile(r"[^0-9a-z]+")


def normalise_name(name: str) -> str:
    """Casefold, strip diacritics and the words region/län/kommun/county: "Region Skåne" -> "skane"."""
    decomposed = unicodedata.normalize("NFKD", name.casefold())
    ascii_only = "".join(c for c in decomposed if not unicodedata.combining(c))
    words = [w for w in _NON_ALNUM.split(ascii_only) if w and w not in _DROP_WORDS]
    return " ".join(words)


def _name_index(table: Mapping[str, str], extra: Mapping[str, str]) -> dict[str, str]:
    index: dict[str, str] = {}
    for code, official in table.items():
        key = normalise_name(official)
        index[key] = code
        if key.endswith("s"):            # genitive: "Stockholms län" -> "stockholm"
            index[key[:-1]] = code
    for alias, code in extra.items():
        index[normalise_name(alias)] = code
    return index


_COUNTY_BY_NAME = _name_index(COUNTIES, {
    "Sörmland": "04", "Jämtland Härjedalen": "23", "Härjedalen": "23", "Jönköping": "06",
    "Örebro": "18", "Kalmar": "08", "Uppsala": "03", "Blekinge": "10",
})
_MUNICIPALITY_BY_NAME = _name_index(HALLAND_MUNICIPALITIES, {})


def _lookup(value: str, index: Mapping[str, str]) -> Optional[str]:
    key = normalise_name(value)
    code = index.get(key)
    if code is None and key.endswith("s"):
        code = index.get(key[:-1])
    return code


def county_code(value: object) -> Optional[str]:
    """SCB länskod for a county code or name; ``None`` when not recognised.

    ``"12"``, ``"Skåne"``, ``"Region Skåne"``, ``"skane lan"`` -> ``"12"``; ``"1"`` -> ``"01"``.
    """
    if not isinstance(value, str):
        return None
    text = value.strip()
    if text.isdigit() and len(text) <= 2:
        code = text.zfill(2)
        return code if code in COUNTIES else None
    return _lookup(text, _COUNTY_BY_NAME) if text else None


def municipality_code(value: object) -> Optional[str]:
    """SCB kommunkod for a municipality code or a (Halland) municipality name; ``None`` otherwise.

    Any 4-digit code whose first two digits are a county code is accepted as a code; names are
    known only for the municipalities of split counties.
    """
    if not isinstance(value, str):
        return None
    text = value.strip()
    if text.isdigit():
        return text if len(text) == 4 and text[:2] in COUNTIES else None
    return _lookup(text, _MUNICIPALITY_BY_NAME) if text else None
