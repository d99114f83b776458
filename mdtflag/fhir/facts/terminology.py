"""Terminology as data: the code maps, value sets and code-system fragments the fact readers use,
read from FHIR ``ConceptMap``, ``ValueSet`` and ``CodeSystem`` JSON resources.

The shipped files live in the rule set's ``terminology/`` folder (``rules/terminology/``); a site adds
its own (for instance a national SNOMED CT -> ICD-10-SE map it holds a licence for) in another folder
(``--terminology DIR`` / ``MDTFLAG_TERMINOLOGY``): a site entry for the same source code replaces the
shipped one. Every resource must say where it comes from: ``url``, ``version``, ``date``,
``publisher`` and a provenance tag (``meta.tag`` with system :data:`PROVENANCE_SYSTEM`).

What is read from each resource type:

* ``ConceptMap``: ``group[].source`` / ``group[].target`` systems and ``element[].code`` ->
  ``target[].code`` with an ``equivalence`` other than ``unmatched`` / ``disjoint``;
* ``ValueSet``: ``url`` and ``compose.include[].system`` + ``concept[].code`` (enumerated codes only);
* ``CodeSystem``: ``url`` and ``concept[].code`` with ``display`` and ``property[]`` (code + value[x]).

Systems are compared in their normalised form (:func:`mdtflag.fhir.facts.parse.norm_system`).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import orjson

from mdtflag.fhir.facts.parse import norm_system

__all__ = [
    "PROVENANCE_SYSTEM",
    "TermSource",
    "Terminology",
    "TerminologyProblem",
    "default_terminology",
    "read_terminology_dir",
    "read_terminology_files",
]

#: The code system of the provenance tag every terminology resource carries in ``meta.tag``.
PROVENANCE_SYSTEM = "urn:mdtflag:provenance"
_KINDS = ("ConceptMap", "ValueSet", "CodeSystem")
_NO_MATCH = frozenset({"unmatched", "disjoint"})
_EQUIVALENCE = frozenset(
    {
        "relatedto",
        "equivalent",
        "equal",
        "wider",
        "subsumes",
        "narrower",
        "specializes",
        "inexact",
        "unmatched",
        "disjoint",
    }
)


@dataclass(frozen=True)
class TermSource:
    """Where one terminology resource comes from."""

    file: str
    resource_type: str
    url: str
    version: str
    date: str
    publisher: str
    provenance: str
    entries: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "resourceType": self.resource_type,
            "url": self.url,
            "version": self.version,
            "date": self.date,
            "publisher": self.publisher,
            "provenance": self.provenance,
            "entries": self.entries,
        }


@dataclass(frozen=True)
class TerminologyProblem:
    """A terminology file or resource that could not be used (``file``, JSON path, message)."""

    file: str
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.path}: {self.message}" if self.path else f"{self.file}: {self.message}"


@dataclass(frozen=True, eq=False)
class Terminology:
    """The maps, value sets and code properties of a set of terminology resources."""

    #: (source system, target system) -> source code -> target codes
    maps: Mapping[tuple[str, str], Mapping[str, tuple[str, ...]]] = field(default_factory=dict)
    #: value set url -> {(system, code)}
    valuesets: Mapping[str, frozenset[tuple[str, str]]] = field(default_factory=dict)
    #: code system -> code -> {property: value} (``display`` included)
    properties: Mapping[str, Mapping[str, Mapping[str, str]]] = field(default_factory=dict)
    sources: tuple[TermSource, ...] = ()

    def map(self, source: str, code: str, target: str) -> tuple[str, ...]:
        """Target codes of ``code`` (system ``source``, normalised) in system ``target``; () if unmapped."""
        return self.maps.get((source, target), {}).get(code, ())

    def map_one(self, source: str, code: str, target: str) -> str | None:
        hits = self.map(source, code, target)
        return hits[0] if hits else None

    def mapped_systems(self, source: str) -> tuple[str, ...]:
        """The target systems ``source`` has maps to."""
        return tuple(t for s, t in self.maps if s == source)

    def has(self, valueset: str, system: str, code: str) -> bool:
        return (system, code) in self.valuesets.get(valueset, frozenset())

    def prop(self, system: str, code: str, name: str) -> str | None:
        return self.properties.get(system, {}).get(code, {}).get(name)

    def codes(self, system: str) -> Mapping[str, Mapping[str, str]]:
        """Every concept of a code-system fragment with its properties."""
        return self.properties.get(system, {})

    def source_of(self, url: str) -> TermSource | None:
        return next((s for s in reversed(self.sources) if s.url == url), None)

    def layered(self, site: Terminology) -> Terminology:
        """This terminology with ``site``'s entries added; a site entry replaces one for the same code."""
        maps: dict[tuple[str, str], dict[str, tuple[str, ...]]] = {k: dict(v) for k, v in self.maps.items()}
        for key, table in site.maps.items():
            maps.setdefault(key, {}).update(table)
        valuesets = dict(self.valuesets)
        for url, members in site.valuesets.items():
            valuesets[url] = valuesets.get(url, frozenset()) | members
        props: dict[str, dict[str, Mapping[str, str]]] = {k: dict(v) for k, v in self.properties.items()}
        for system, concepts in site.properties.items():
            props.setdefault(system, {}).update(concepts)
        return _freeze(maps, valuesets, props, self.sources + site.sources)


def _freeze(
    maps: dict[tuple[str, str], dict[str, tuple[str, ...]]],
    valuesets: dict[str, frozenset[tuple[str, str]]],
    props: dict[str, dict[str, Mapping[str, str]]],
    sources: tuple[TermSource, ...],
) -> Terminology:
    return Terminology(
        maps=MappingProxyType({k: MappingProxyType(v) for k, v in maps.items()}),
        valuesets=MappingProxyType(valuesets),
        properties=MappingProxyType({k: MappingProxyType(v) for k, v in props.items()}),
        sources=sources,
    )


class _Reader:
    def __init__(self) -> None:
        self.maps: dict[tuple[str, str], dict[str, tuple[str, ...]]] = {}
        self.valuesets: dict[str, frozenset[tuple[str, str]]] = {}
        self.props: dict[str, dict[str, Mapping[str, str]]] = {}
        self.sources: list[TermSource] = []
        self.problems: list[TerminologyProblem] = []

    def problem(self, file: str, path: str, message: str) -> None:
        self.problems.append(TerminologyProblem(file, path, message))

    def resource(self, file: str, data: object) -> None:
        if not isinstance(data, dict):
            self.problem(file, "", "expected a JSON object (a ConceptMap, ValueSet or CodeSystem)")
            return
        rt = data.get("resourceType")
        if rt not in _KINDS:
            self.problem(file, "resourceType", f"{rt!r} is not one of {', '.join(_KINDS)}")
            return
        header: dict[str, str] = {}
        for key in ("url", "version", "date", "publisher"):
            value = data.get(key)
            if not isinstance(value, str) or not value.strip():
                self.problem(file, key, f"{key} is required (the source of the mapping) and must be a string")
                return
            header[key] = value
        tags = data.get("meta", {}).get("tag", []) if isinstance(data.get("meta"), dict) else []
        provenance = next(
            (
                t.get("code")
                for t in tags
                if isinstance(t, dict) and t.get("system") == PROVENANCE_SYSTEM and isinstance(t.get("code"), str)
            ),
            None,
        )
        if provenance is None:
            self.problem(file, "meta.tag", f"a provenance tag (system {PROVENANCE_SYSTEM}) is required")
            return
        before = len(self.problems)
        count = (
            self._concept_map(file, data)
            if rt == "ConceptMap"
            else self._value_set(file, data, header["url"])
            if rt == "ValueSet"
            else self._code_system(file, data, header["url"])
        )
        if len(self.problems) == before:
            self.sources.append(
                TermSource(
                    file,
                    str(rt),
                    header["url"],
                    header["version"],
                    header["date"],
                    header["publisher"],
                    provenance,
                    count,
                )
            )

    def _concept_map(self, file: str, data: dict[str, Any]) -> int:
        groups = data.get("group")
        if not isinstance(groups, list) or not groups:
            self.problem(file, "group", "a ConceptMap needs at least one group")
            return 0
        count = 0
        for g, group in enumerate(groups):
            where = f"group[{g}]"
            if not isinstance(group, dict) or not all(isinstance(group.get(k), str) for k in ("source", "target")):
                self.problem(file, where, "a group needs source and target systems")
                continue
            table = self.maps.setdefault((norm_system(group["source"]), norm_system(group["target"])), {})
            for e, element in enumerate(group.get("element") or []):
                at = f"{where}.element[{e}]"
                code = element.get("code") if isinstance(element, dict) else None
                if not isinstance(code, str) or not code.strip():
                    self.problem(file, at, "element.code must be a non-empty string")
                    continue
                targets: list[str] = []
                for t, target in enumerate(element.get("target") or []):
                    tat = f"{at}.target[{t}]"
                    eq = target.get("equivalence") if isinstance(target, dict) else None
                    if eq not in _EQUIVALENCE:
                        self.problem(file, tat, f"equivalence {eq!r} is not an R4 ConceptMapEquivalence")
                        continue
                    if eq in _NO_MATCH:
                        continue
                    tcode = target.get("code")
                    if not isinstance(tcode, str) or not tcode.strip():
                        self.problem(file, tat, "target.code must be a non-empty string")
                        continue
                    targets.append(tcode.strip())
                if code.strip() in table:
                    self.problem(file, at, f"code {code!r} is mapped twice in this group")
                    continue
                table[code.strip()] = tuple(targets)
                count += 1
        return count

    def _value_set(self, file: str, data: dict[str, Any], url: str) -> int:
        compose = data.get("compose")
        includes = compose.get("include") if isinstance(compose, dict) else None
        if not isinstance(includes, list) or not includes:
            self.problem(file, "compose.include", "a ValueSet needs compose.include with enumerated concepts")
            return 0
        members: set[tuple[str, str]] = set()
        for n, inc in enumerate(includes):
            system = inc.get("system") if isinstance(inc, dict) else None
            concepts = inc.get("concept") if isinstance(inc, dict) else None
            if not isinstance(system, str) or not isinstance(concepts, list):
                self.problem(file, f"compose.include[{n}]", "only enumerated includes (system + concept) are read")
                continue
            for c, concept in enumerate(concepts):
                code = concept.get("code") if isinstance(concept, dict) else None
                if not isinstance(code, str) or not code.strip():
                    self.problem(file, f"compose.include[{n}].concept[{c}]", "concept.code must be a non-empty string")
                    continue
                members.add((norm_system(system), code.strip()))
        self.valuesets[url] = self.valuesets.get(url, frozenset()) | members
        return len(members)

    def _code_system(self, file: str, data: dict[str, Any], url: str) -> int:
        concepts = data.get("concept")
        if not isinstance(concepts, list) or not concepts:
            self.problem(file, "concept", "a CodeSystem needs concepts")
            return 0
        table = self.props.setdefault(norm_system(url), {})
        for c, concept in enumerate(concepts):
            at = f"concept[{c}]"
            code = concept.get("code") if isinstance(concept, dict) else None
            if not isinstance(code, str) or not code.strip():
                self.problem(file, at, "concept.code must be a non-empty string")
                continue
            props: dict[str, str] = {}
            if isinstance(concept.get("display"), str):
                props["display"] = concept["display"]
            for p, prop in enumerate(concept.get("property") or []):
                name = prop.get("code") if isinstance(prop, dict) else None
                values = [v for k, v in prop.items() if k.startswith("value")] if isinstance(prop, dict) else []
                if not isinstance(name, str) or len(values) != 1 or isinstance(values[0], (dict, list)):
                    self.problem(file, f"{at}.property[{p}]", "a property needs a code and one simple value[x]")
                    continue
                props[name] = str(values[0]).lower() if isinstance(values[0], bool) else str(values[0])
            if code.strip() in table:
                self.problem(file, at, f"code {code!r} is defined twice")
                continue
            table[code.strip()] = MappingProxyType(props)
        return len(table)


def read_terminology_files(items: Iterable[tuple[str, bytes]]) -> tuple[Terminology, list[TerminologyProblem]]:
    """A :class:`Terminology` from (file name, JSON bytes) pairs and the problems found; a resource with a
    problem is left out whole."""
    reader = _Reader()
    for name, raw in items:
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            reader.problem(name, "", f"not JSON: {exc}")
            continue
        reader.resource(name, data)
    return (_freeze(reader.maps, reader.valuesets, reader.props, tuple(reader.sources)), reader.problems)


def terminology_files(folder: str | os.PathLike[str]) -> list[Path]:
    root = Path(folder)
    return sorted(p for p in root.rglob("*.json") if p.is_file()) if root.is_dir() else []


def read_terminology_dir(folder: str | os.PathLike[str]) -> tuple[Terminology, list[TerminologyProblem]]:
    """Every ``*.json`` under ``folder`` (file names relative to it)."""
    root = Path(folder)
    if not root.is_dir():
        return Terminology(), [TerminologyProblem(str(root), "", "terminology folder not found")]
    return read_terminology_files((p.relative_to(root).as_posix(), p.read_bytes()) for p in terminology_files(root))


_PACKAGE = Path(__file__).resolve().parent.parent.parent


@functools.lru_cache(maxsize=1)
def default_terminology() -> Terminology:
    """The terminology shipped with the default rule set (``terminology/`` of the packaged rules, or of
    ``rules/`` in a source checkout); used when a caller gives none."""
    for folder in (_PACKAGE / "default_rules" / "terminology", _PACKAGE.parent / "rules" / "terminology"):
        if folder.is_dir():
            return read_terminology_dir(folder)[0]
    return Terminology()
