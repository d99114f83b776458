"""Swedish administrative codes (SCB) and the county -> healthcare-region map.

* :data:`COUNTIES` -- all 21 counties (län / regioner) with their SCB länskod.
* :data:`HALLAND_MUNICIPALITIES` -- the six municipalities of Halland, the only county that is split
  between two healthcare regions.
* :class:`RegionMap` -- county (and, for split counties, municipality) -> healthcare region. Which
  county belongs to which region is knowledge of the rule set: :func:`region_map` builds the map from
  the rows of the rule set's ``regions`` table, and nothing here lists it.

:func:`county_code` and :func:`municipality_code` accept a code (``"12"``, ``"1380"``) or a name in
any of its usual spellings ("Skåne", "Region Skåne", "Skåne län", "Västra Götalands län",
"STOCKHOLM", "Halmstads kommun"), ignoring case and diacritics.
"""
from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Callable, Protocol

__all__ = [
    "COUNTIES", "HALLAND_MUNICIPALITIES", "RegionMap", "RegionTable", "county_code", "municipality_code",
    "normalise_name", "region_map",
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


def _lookup(value: str, index: Mapping[str, str]) -> str | None:
    key = normalise_name(value)
    code = index.get(key)
    if code is None and key.endswith("s"):
        code = index.get(key[:-1])
    return code


def county_code(value: object) -> str | None:
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


def municipality_code(value: object) -> str | None:
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


def _frozen_codes(mapping: Mapping[str, str], to_code: Callable[[object], str | None],
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
    municipalities of split counties only. Keys may be given as SCB codes or names ("Skåne",
    "Region Halland", "Halmstad"); they are stored as codes. An empty map knows no region."""

    county_to_region: Mapping[str, str]
    municipality_to_region: Mapping[str, str] = field(default_factory=dict)
    split_counties: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        munis = _frozen_codes(self.municipality_to_region, municipality_code, "municipality")
        object.__setattr__(self, "county_to_region",
                           _frozen_codes(self.county_to_region, county_code, "county"))
        object.__setattr__(self, "municipality_to_region", munis)
        # counties whose region depends on the municipality (those with municipality entries)
        object.__setattr__(self, "split_counties", frozenset(m[:2] for m in munis))

    def region_for(self, county: str | None, municipality: str | None) -> str | None:
        if county is None:
            return None
        if county in self.split_counties:
            return self.municipality_to_region.get(municipality) if municipality else None
        return self.county_to_region.get(county)


class RegionTable(Protocol):
    """What :func:`region_map` reads of a knowledge table: its rows."""

    @property
    def rows(self) -> Sequence[Mapping[str, Any]]: ...


def region_map(table: RegionTable | None) -> RegionMap | None:
    """County -> healthcare region (and split municipalities) from the rows of a ``regions`` table
    (``key``, ``counties``, ``split_municipalities``); ``None`` without a table."""
    if table is None:
        return None
    counties: dict[str, str] = {}
    munis: dict[str, str] = {}
    for row in table.rows:
        for c in row.get("counties") or []:
            counties[str(c)] = row["key"]
        for m in row.get("split_municipalities") or []:
            munis[str(m)] = row["key"]
    return RegionMap(county_to_region=counties, municipality_to_region=munis)
