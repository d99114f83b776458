"""CDS Hooks prefetch: the templates announced in discovery, and one patient Bundle built from what arrives.

A prefetch value is a FHIR read result (one resource, or ``null`` when the EHR has none) or a
search result (a Bundle). A key counts as *missing* -- to be fetched from ``fhirServer`` or answered
with 412 -- when the client left it out, when the value is an OperationOutcome (the EHR's query
failed), when a search Bundle carries OperationOutcome entries, or when it has a ``next`` link (only
the first page arrived). The Patient read answered with ``null`` is missing too: there is no
patient to evaluate.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mdtflag.service.fhirfetch import PREFETCH_QUERIES

__all__ = ["PREFETCH_TEMPLATES", "Collected", "PrefetchProblem", "collect_prefetch", "patient_bundle"]

#: key -> query template, shared with the fetching of missing data (one list for both).
PREFETCH_TEMPLATES: Mapping[str, str] = PREFETCH_QUERIES


class PrefetchProblem(Exception):
    """A prefetch value that is not a FHIR resource or Bundle at all (answered with 400)."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"prefetch.{key}: {message}")
        self.key = key
        self.message = message


@dataclass
class Collected:
    """Resources gathered from prefetch, in key order, and the keys still missing."""

    resources: list[dict[str, Any]] = field(default_factory=list)
    full_urls: list[str | None] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    def add(self, resource: dict[str, Any], full_url: str | None) -> None:
        self.resources.append(resource)
        self.full_urls.append(full_url)


def _is_outcome(value: object) -> bool:
    return isinstance(value, dict) and value.get("resourceType") == "OperationOutcome"


def _has_next(bundle: Mapping[str, Any]) -> bool:
    links = bundle.get("link")
    if not isinstance(links, list):
        return False
    return any(isinstance(link, dict) and link.get("relation") == "next" for link in links)


def collect_prefetch(prefetch: object) -> Collected:
    """Sort the request's ``prefetch`` into usable resources and missing keys."""
    out = Collected()
    if prefetch is None:
        prefetch = {}
    if not isinstance(prefetch, dict):
        raise PrefetchProblem("(all)", "prefetch is not a JSON object")
    for key in PREFETCH_TEMPLATES:
        if key not in prefetch:
            out.missing.append(key)
            continue
        value = prefetch[key]
        if value is None:
            if key == "patient":
                out.missing.append(key)
            continue
        if not isinstance(value, dict) or not isinstance(value.get("resourceType"), str):
            raise PrefetchProblem(key, "not a FHIR resource, Bundle or null")
        if _is_outcome(value):
            out.missing.append(key)
            continue
        if value["resourceType"] != "Bundle":
            out.add(value, None)
            continue
        entries = value.get("entry", [])
        if not isinstance(entries, list):
            raise PrefetchProblem(key, "Bundle.entry is not an array")
        usable: list[tuple[dict[str, Any], str | None]] = []
        failed = _has_next(value)
        for i, entry in enumerate(entries):
            res = entry.get("resource") if isinstance(entry, dict) else None
            if not isinstance(res, dict) or not isinstance(res.get("resourceType"), str):
                raise PrefetchProblem(key, f"Bundle.entry[{i}] holds no FHIR resource")
            if _is_outcome(res):
                failed = True
                continue
            url = entry.get("fullUrl")
            usable.append((res, url if isinstance(url, str) else None))
        if failed:
            out.missing.append(key)
            continue
        for res, url in usable:
            out.add(res, url)
    return out


def patient_bundle(resources: Sequence[Mapping[str, Any]], full_urls: Sequence[str | None]) -> dict[str, Any]:
    """One collection Bundle: the Patient first, then every other resource once (by type and id)."""
    seen: set[tuple[str, str]] = set()
    patients: list[dict[str, Any]] = []
    others: list[dict[str, Any]] = []
    for res, url in zip(resources, full_urls):
        rid = res.get("id")
        if isinstance(rid, str) and rid:
            ident = (str(res["resourceType"]), rid)
            if ident in seen:
                continue
            seen.add(ident)
        entry: dict[str, Any] = {"fullUrl": url, "resource": res} if url else {"resource": res}
        (patients if res.get("resourceType") == "Patient" else others).append(entry)
    return {"resourceType": "Bundle", "type": "collection", "entry": patients + others}
