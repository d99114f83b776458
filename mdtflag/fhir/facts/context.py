"""The state of one extraction run and the helpers every reader shares.

A reader is a function ``read(x, resource, name, index)`` that reads one resource into facts and
notes through an :class:`Extraction` ``x``: ``x.add`` keeps a fact, ``x.offer_latest`` keeps a fact
only if it is the most recent of its key, ``x.note`` records what could not be used.
"""
from __future__ import annotations

from collections.abc import Mapping
from datetime import date as Date
from typing import Any, Callable, TypeVar

from mdtflag.errors import DataQualityNote
from mdtflag.fhir.facts.models import FACT_SCHEMA, Evidence, FactBase
from mdtflag.fhir.facts.parse import parse_date, ref_key
from mdtflag.fhir.load import LoadedBundle
from mdtflag.fhir.regions import RegionMap

__all__ = ["Builder", "Extraction", "Handler", "Rank", "Resource"]

_T = TypeVar("_T")

#: A FHIR resource as a plain dict.
Resource = dict[str, Any]
#: Order of latest-value candidates: (dated, day number, bundle order).
Rank = tuple[bool, int, tuple[int, int]]
#: Builds the fact of a latest-value candidate once it is known to be the latest.
Builder = Callable[[], None]


class Extraction:
    """One extraction run. Facts are collected per kind as (order key, fact)."""

    def __init__(self, bundle: LoadedBundle, as_of: Date, regions: RegionMap | None,
                 handlers: Mapping[str, Handler]) -> None:
        self.bundle = bundle
        self.as_of = as_of
        self.as_of_ord = as_of.toordinal()
        self.regions = regions if regions is not None else RegionMap({})
        self.notes: list[DataQualityNote] = []
        self.out: dict[str, list[tuple[tuple[int, int], FactBase]]] = {k: [] for k in FACT_SCHEMA}
        # latest-value candidates: key -> (rank, order, builder)
        self.latest: dict[tuple[str, ...], tuple[Rank, tuple[int, int], Builder]] = {}
        self.latest_kps: Builder | None = None
        self.latest_kps_rank: Rank | None = None
        self.ecog_seen = False
        self.patient: Resource = bundle.patient if type(bundle.patient) is dict else {}
        pid = self.patient.get("id")
        self.patient_id = pid if type(pid) is str else None
        self.birth: Date | None = None
        # index for reference resolution, and the resources handlers read, with their names
        self.by_key: dict[str, Resource] = {}
        self.by_url: dict[str, Resource] = {}
        self.work: list[tuple[int, Resource, str, Handler]] = []
        self.reports: list[tuple[int, Resource, str]] = []
        self.observations: list[tuple[int, Resource, str]] = []
        self.own_refs: set[str] = {f"Patient/{pid}"} if self.patient_id else set()
        urls = bundle.full_urls if len(bundle.full_urls) == len(bundle.resources) else ()
        for i, res in enumerate(bundle.resources):
            if type(res) is not dict:
                continue
            rt, rid = res.get("resourceType"), res.get("id")
            if type(rt) is not str:
                continue
            if type(rid) is str and rid:
                name = f"{rt}/{rid}"
                self.by_key.setdefault(name, res)
            else:
                name = f"{rt}/#{i}"
            url = urls[i] if urls else None
            if url:
                self.by_url.setdefault(url, res)
                if res is self.patient:
                    self.own_refs.add(url)
            handler = handlers.get(rt)
            if handler is not None and res is not self.patient:
                self.work.append((i, res, name, handler))
                if rt == "Observation":
                    self.observations.append((i, res, name))
                elif rt == "DiagnosticReport":
                    self.reports.append((i, res, name))
        self.pathology_reports: set[int] = set()      # id() of pathology DiagnosticReports
        self.pathology_conditions: set[int] = set()   # id() of Conditions they refer to
        self.significance_cache: dict[int, tuple[str, Evidence]] | None = None

    def note(self, code: str, message: str, resource: str | None = None,
             element: str | None = None) -> None:
        self.notes.append(DataQualityNote(code, message, resource, element))

    def add(self, kind: str, order: tuple[int, int], fact: FactBase) -> None:
        self.out[kind].append((order, fact))

    def offer_latest(self, key: tuple[str, ...], when: Date | None, order: tuple[int, int],
                     build: Builder) -> None:
        """Keep ``build`` only if it is the most recent candidate for ``key`` so far."""
        rank: Rank = (when is not None, when.toordinal() if when else 0, order)
        cur = self.latest.get(key)
        if cur is None or rank > cur[0]:
            self.latest[key] = (rank, order, build)

    def days_ago(self, d: Date | None) -> int | None:
        return None if d is None else self.as_of_ord - d.toordinal()

    def date_of(self, value: object, name: str, element: str) -> Date | None:
        if value is None:
            return None
        if type(value) is not str:
            self.note("wrong-type", f"{element} is not a string", name, element)
            return None
        d, partial = parse_date(value)
        if d is None:
            self.note("invalid-date", f"{element} {value[:40]!r} is not a FHIR date", name, element)
        elif partial:
            self.note("partial-date", f"{element} {value!r} is a partial date; {d.isoformat()} used",
                      name, element)
        return d

    def effective(self, res: Resource, name: str) -> tuple[Date | None, str]:
        """Observation-like date: effectiveDateTime, effectivePeriod.start, effectiveInstant, issued."""
        rt = res.get("resourceType", "Observation")
        for key in ("effectiveDateTime", "effectiveInstant"):
            if key in res:
                return self.date_of(res[key], name, f"{rt}.{key}"), f"{rt}.{key}"
        period = res.get("effectivePeriod")
        if type(period) is dict and "start" in period:
            return (self.date_of(period["start"], name, f"{rt}.effectivePeriod.start"),
                    f"{rt}.effectivePeriod.start")
        if "issued" in res:
            return self.date_of(res["issued"], name, f"{rt}.issued"), f"{rt}.issued"
        return None, ""

    def resolve(self, reference: object) -> tuple[Resource | None, str | None]:
        """(resource, reference text) for a Reference; resource None when absent from the bundle."""
        ref = reference.get("reference") if type(reference) is dict else None
        if type(ref) is not str or not ref:
            return None, None
        hit = self.by_url.get(ref)
        if hit is None:
            key = ref_key(ref)
            hit = self.by_key.get(key) if key else None
        return hit, ref

    def other_patient(self, res: Resource) -> tuple[str, str] | None:
        """(reference text, element) if ``res`` clearly belongs to another Patient, else None."""
        for link in ("subject", "patient", "individual"):
            reference = res.get(link)
            if type(reference) is not dict:
                continue
            ref = reference.get("reference")
            if type(ref) is not str or ref in self.own_refs:
                return None
            target, ref = self.resolve(reference)
            if ref is None:
                continue
            if target is not None:
                return (ref, link) if (target.get("resourceType") == "Patient"
                                       and target is not self.patient) else None
            key = ref_key(ref)
            if key and key.startswith("Patient/") and key != f"Patient/{self.patient_id}":
                return ref, link
            return None
        return None

    @staticmethod
    def name_of(res: Resource, index: int) -> str:
        rt = res.get("resourceType")
        rid = res.get("id")
        rt = rt if type(rt) is str else "Resource"
        return f"{rt}/{rid}" if type(rid) is str and rid else f"{rt}/#{index}"

    def safely(self, fn: Callable[..., _T], *args: Any) -> _T | None:
        """``fn(*args)``; on an internal error a note ``extraction-error`` and ``None``."""
        try:
            return fn(*args)
        except Exception as exc:  # noqa: BLE001 - the safety net; tests assert it never fires
            name = args[-2] if len(args) >= 3 and type(args[-2]) is str else None
            self.note("extraction-error", f"could not read {name or 'resource'}: "
                      f"{type(exc).__name__}: {exc}"[:300], name)
            return None


#: A reader of one resource family.
Handler = Callable[[Extraction, Resource, str, int], None]
