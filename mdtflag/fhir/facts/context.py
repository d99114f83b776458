"""The state of one extraction run and the helpers every reader shares.

A reader is a function ``read(x, resource, name, index)`` that reads one resource into facts and
notes through an :class:`Extraction` ``x``: ``x.add`` keeps a fact, ``x.offer_latest`` keeps a fact
only if it is the most recent of its key, ``x.note`` records what could not be used.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date as Date
from typing import Any, Callable, TypeVar

import orjson

from mdtflag.errors import DataQualityNote
from mdtflag.fhir.facts.codes import LOINC, RESOURCE_STATUSES
from mdtflag.fhir.facts.models import FACT_SCHEMA, Evidence, FactBase
from mdtflag.fhir.facts.parse import instant_key, last_day, loinc_prefix, parse_date, ref_key, status_of
from mdtflag.fhir.facts.terminology import Terminology, default_terminology
from mdtflag.fhir.load import LoadedBundle
from mdtflag.fhir.names import anonymous_name
from mdtflag.fhir.regions import RegionMap

__all__ = ["MAX_AGE_YEARS", "Builder", "Extraction", "Handler", "Rank", "Resource"]

_T = TypeVar("_T")

#: A FHIR resource as a plain dict.
Resource = dict[str, Any]
#: Order of latest-value candidates: (dated, instant in microseconds; the start of the day for a date).
Rank = tuple[bool, int]
_DIGITS = re.compile(r"(\d+)")


def _natural(name: str) -> tuple[Any, ...]:
    """Sort key of a resource name with its digit runs compared as numbers ("obs8" before "obs10")."""
    parts: list[Any] = _DIGITS.split(name)
    parts[1::2] = [(int(p), p) for p in parts[1::2]]
    return tuple(parts)


#: The fact field a latest-value key's second part stands for.
_KEY_FIELDS = {"lab": "analyte", "pregnancy": "source", "assertion": "code", "performance": "scale"}

#: A day count of a fact kind besides its ``age_field`` that counts from the same date when equal to it
#: (an assertion's ``since_days`` from ``effectivePeriod.start``).
_ALSO_DAYS = {"assertion": "since_days"}

#: Oldest plausible age in years; a birthDate further back is not a real date.
MAX_AGE_YEARS = 130
#: Builds the fact of a latest-value candidate once it is known to be the latest.
Builder = Callable[[], None]


class Extraction:
    """One extraction run. Facts are collected per kind as (order key, fact)."""

    def __init__(
        self,
        bundle: LoadedBundle,
        as_of: Date,
        regions: RegionMap | None,
        handlers: Mapping[str, Handler],
        terminology: Terminology | None = None,
    ) -> None:
        self.bundle = bundle
        #: the code maps, value sets and code properties the readers use
        self.terms = terminology if terminology is not None else default_terminology()
        self.as_of = as_of
        self.as_of_ord = as_of.toordinal()
        self.regions = regions if regions is not None else RegionMap({})
        self.notes: list[DataQualityNote] = []
        self.reading_untrusted: str | None = None  # the name of the resource being read if it fails validation
        self.out: dict[str, list[tuple[tuple[int, int], FactBase]]] = {k: [] for k in FACT_SCHEMA}
        # the other end of a fact read from a partial date: id(fact) -> the fact at the latest completion
        self.other_end: dict[int, FactBase] = {}
        # latest-value candidates: key -> [rank, order, builder, value, resource name, conflicting name]
        self.latest: dict[tuple[str, ...], list[Any]] = {}
        self.ecog_seen = False
        self.instants: dict[int, int] = {}  # id(resource) -> instant of its effective date
        self.conflicted: set[str] = set()  # resource names given twice with different content
        self.unreadable: list[tuple[str, dict[str, Any], str, str]] = []
        self.unreadable_fields: list[tuple[str, str, str, str]] = []
        # resources dated by a partial date: name -> (first, last day), the last never after as_of
        self.partial: dict[str, tuple[Date, Date]] = {}
        # latest-value candidates read from a partial date: key -> [(last instant it can mean, value, name)]
        self.latest_partial: dict[tuple[str, ...], list[tuple[int, object, str]]] = {}
        self.patient: Resource = bundle.patient if type(bundle.patient) is dict else {}
        pid = self.patient.get("id")
        self.patient_id = pid if type(pid) is str else None
        self.birth: Date | None = None  # the earliest day the birthDate can mean
        self.birth_hi: Date | None = None  # the latest (a partial birthDate), never after as_of
        # index for reference resolution, and the resources handlers read, with their names
        self.by_key: dict[str, Resource] = {}
        self.by_url: dict[str, Resource] = {}
        self.work: list[tuple[int, Resource, str, Handler]] = []
        self.reports: list[tuple[int, Resource, str]] = []
        self.observations: list[tuple[int, Resource, str]] = []
        self.own_refs: set[str] = {f"Patient/{pid}"} if self.patient_id else set()
        self.names: dict[int, str] = {}  # id(resource) -> its name, for resources without an id
        urls = bundle.full_urls if len(bundle.full_urls) == len(bundle.resources) else ()
        for i, res, name, url in self._canonical_order(bundle.resources, urls):
            rt = res["resourceType"]
            if name[len(rt) + 1 : len(rt) + 2] != "#":
                self.by_key.setdefault(name, res)
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
        # resources that fail validation: read by their handler only (never found by reference), and what
        # they would give is recorded as present but unreadable (see :meth:`add`, :meth:`build_latest`)
        self.untrusted: dict[str, str] = {}  # name -> the element that makes it unreadable ("": all of it)
        for k, res in enumerate(bundle.invalid):
            rt, rid = res.get("resourceType"), res.get("id")
            handler = handlers.get(rt) if type(rt) is str else None
            if handler is None or type(rt) is not str:
                continue
            name = f"{rt}/{rid}" if type(rid) is str and rid else anonymous_name(rt, res, None)
            self.untrusted[name] = ""
            self.work.append((len(bundle.resources) + k, res, name, handler))
        self.pathology_reports: set[int] = set()  # id() of pathology DiagnosticReports
        self.pathology_conditions: set[int] = set()  # id() of Conditions they refer to
        self.significance_cache: dict[int, tuple[str, Evidence]] | None = None
        # id(Condition) -> histology Observations about it (see mdtflag.fhir.facts.mcode.histology_index)
        self.histology_cache: dict[int, list[tuple[str | None, Evidence, bool]]] | None = None
        self.explicit_assertions: set[str] = set()  # codes of the project's own assessments read

    def _canonical_order(
        self, resources: tuple[Resource, ...], urls: tuple[str | None, ...]
    ) -> list[tuple[int, Resource, str, str | None]]:
        """(order, resource, name, fullUrl) by resource name, so that no result depends on the order of
        the bundle's entries. A resource given twice with the same content is read once; given twice with
        different content, both are kept in content order and the name is marked as conflicting."""
        named: list[tuple[str, int, Resource, str | None]] = []
        for i, res in enumerate(resources):
            if type(res) is not dict:
                continue
            rt, rid = res.get("resourceType"), res.get("id")
            if type(rt) is not str:
                continue
            url = urls[i] if urls else None
            if type(rid) is str and rid:
                name = f"{rt}/{rid}"
            else:
                name = self.names[id(res)] = anonymous_name(rt, res, url)
            named.append((name, i, res, url))
        named.sort(key=lambda t: (_natural(t[0]), t[1]))
        out: list[tuple[int, Resource, str, str | None]] = []
        k = 0
        while k < len(named):
            name = named[k][0]
            end = k + 1
            while end < len(named) and named[end][0] == name:
                end += 1
            group = named[k:end]
            if len(group) > 1:
                by_content: dict[bytes, tuple[str, int, Resource, str | None]] = {}
                for item in group:
                    by_content.setdefault(orjson.dumps(item[2], option=orjson.OPT_SORT_KEYS), item)
                group = [by_content[c] for c in sorted(by_content)]
                if len(group) > 1:
                    self.conflicted.add(name)
                    self.note(
                        "duplicate-id",
                        f"{name} is given {len(group)} times with different "
                        f"content; its values are not used where only one can count",
                        name,
                    )
            for item in group:
                out.append((len(out), item[2], item[0], item[3]))
            k = end
        return out

    def note(self, code: str, message: str, resource: str | None = None, element: str | None = None) -> None:
        if self.reading_untrusted is None:  # a resource that fails validation has its note from the loader
            self.notes.append(DataQualityNote(code, message, resource, element))

    def loinc_near_miss(
        self,
        system: str,
        code: str,
        known: Callable[[str], _T | None],
        what: Callable[[_T], str],
        name: str,
        element: str,
    ) -> tuple[str, _T] | None:
        """A coding that is not a valid LOINC coding but may mean one mdtflag reads: under LOINC, a code that
        is not a LOINC code (the LOINC code at its start, or its number with the right check digit, may be
        meant: "69548-6X9"); under another system or none, a LOINC code itself. Noted; returns the LOINC code
        it may mean and what ``known`` gives for it (``what`` names that in the note), or None."""
        guess = loinc_prefix(code) if system == LOINC else code
        target = known(guess) if guess else None
        if system == LOINC:
            maybe = f": it may be {guess}, {what(target)} (present but unreadable)" if target is not None else ""
            self.note("invalid-code", f"{element} {code[:30]!r} is not a LOINC code{maybe}", name, element)
        elif target is not None:
            self.note(
                "unknown-code-system",
                f"{element}: {code[:40]} is the LOINC code of {what(target)}, under the system "
                f"{system[:60] or '(none)'}: present but unreadable",
                name,
                element,
            )
        return (guess, target) if guess is not None and target is not None else None

    def status_not_understood(self, res: Resource, name: str) -> None:
        """A ``status`` on file that is not one of its resource type's R4 codes: noted, and what the resource
        says is read as present but unreadable, as for a resource that fails validation (it may be in error)."""
        rt = res.get("resourceType")
        allowed = RESOURCE_STATUSES.get(rt) if type(rt) is str else None
        if allowed is None or "status" not in res or status_of(res) in allowed:
            return
        self.note(
            "unknown-code",
            f"{rt}.status {repr(res['status'])[:40]} is not one of its R4 codes: what it says is present but unreadable",
            name,
            f"{rt}.status",
        )
        self.distrust(name, f"{rt}.status")

    def distrust(self, name: str, element: str) -> None:
        """Read the rest of resource ``name`` as present but unreadable because of ``element`` (noted by the
        caller), as a resource that fails validation is."""
        self.untrusted[name] = element
        self.reading_untrusted = name

    def add(self, kind: str, order: tuple[int, int], fact: FactBase) -> None:
        if self.reading_untrusted is not None:
            # read from a resource that fails validation: what it says of its identity (code, gene, ...) may
            # rule it out for a criterion, but it never meets one
            known = {k: v for k, v in fact.__dict__.items() if k != "kind" and type(v) in (str, bool)}
            self.unread(kind, known, self.reading_untrusted, self.untrusted.get(self.reading_untrusted, ""))
            return
        self.out[kind].append((order, fact))
        if self.partial and id(fact) not in self.other_end:
            self.latest_end(fact)

    def latest_end(self, fact: FactBase) -> None:
        """When ``fact`` is dated by the first day of a partial date of its resource (see :meth:`dated`),
        keep the same fact at the last day as its other end (``FactSet.completions``): a day-count test
        is then met or not met only when both ends agree."""
        df = type(fact).date_field
        if df is None or not fact.evidence:
            return
        span = self.partial.get(fact.evidence[0].resource)
        if span is None or getattr(fact, df) != span[0]:
            return
        update: dict[str, Any] = {df: span[1]}
        af = type(fact).age_field
        if af is not None and getattr(fact, af) is not None:
            update[af] = self.days_ago(span[1])
            also = _ALSO_DAYS.get(fact.__dict__["kind"])
            if also is not None and getattr(fact, also) == getattr(fact, af):
                update[also] = update[af]
        self.other_end[id(fact)] = fact.model_copy(update=update)

    def dated(self, value: object, name: str, element: str) -> Date | None:
        """The first day ``value`` can mean, as :meth:`date_of`; a partial date not wholly after
        ``as_of`` is remembered for ``name`` (first day, last day but never after ``as_of``), so that
        facts dated by it get their other end (:meth:`latest_end`)."""
        span = self.date_span(value, name, element)
        if span is None:
            return None
        lo, hi = span
        hi = min(hi, self.as_of)
        if lo < hi:
            self.partial[name] = (lo, hi)
        return lo

    def offer_latest(
        self,
        key: tuple[str, ...],
        when: Date | None,
        order: tuple[int, int],
        build: Builder,
        *,
        res: Resource | None = None,
        value: object = None,
        name: str | None = None,
    ) -> None:
        """Keep ``build`` only if it is the most recent candidate for ``key`` so far.

        "Most recent" is by the full instant of ``res``'s effective date (time of day and zone included)
        when known, else by the day. Two candidates at the same instant with different ``value``s make
        the key conflicting: no fact, a note (see :meth:`build_latest`)."""
        inst = self.instants.get(id(res)) if res is not None else None
        if inst is None:
            inst = when.toordinal() * 86_400_000_000 if when is not None else 0
        rank: Rank = (when is not None, inst)
        span = self.partial.get(name) if name is not None and when is not None else None
        if span is not None and span[0] == when:  # may be as late as the end of the span's last day
            self.latest_partial.setdefault(key, []).append(
                ((span[1].toordinal() + 1) * 86_400_000_000 - 1, value, name or "")
            )
        cur = self.latest.get(key)
        if cur is None or rank > cur[0]:
            self.latest[key] = [rank, order, build, value, name, None]
        elif rank == cur[0] and value != cur[3] and cur[5] is None:
            cur[5] = name or "another resource"

    def build_latest(self, key: tuple[str, ...], entry: list[Any]) -> None:
        """Build the latest candidate of ``key``, or note why no value can count."""
        name, other = entry[4], entry[5]
        if other is None:
            # a candidate read from a partial date that may be later than this one, with another value
            for last, value, pname in self.latest_partial.get(key, ()):
                if pname != name and last > entry[0][1] and value != entry[3]:
                    self.note(
                        "conflicting-values",
                        f"{pname} has a partial date and may be later than {name}, with a different "
                        f"{' '.join(key)}; the value is unknown",
                        pname,
                    )
                    self.unread_key(key, name, "")
                    return
        if other is not None:
            self.note(
                "conflicting-values",
                f"{name} and {other} give different values for {' '.join(key)} at the same time; the value is unknown",
                name,
            )
            self.unread_key(key, name, "")
        elif name in self.conflicted:
            self.note(
                "conflicting-values",
                f"the latest {' '.join(key)} comes from {name}, which is "
                f"given twice with different content; the value is unknown",
                name,
            )
            self.unread_key(key, name, "")
        elif name in self.untrusted:  # the latest value comes from a resource that fails validation
            self.unread_key(key, name, self.untrusted[name])
        else:
            entry[2]()

    def unread(self, kind: str, fields: dict[str, Any], name: str, element: str) -> None:
        """Record a value of ``kind`` that is present but cannot be read (the note is made by the caller)."""
        self.unreadable.append((kind, fields, name, element))

    def unread_field(self, kind: str, field: str, name: str, element: str) -> None:
        """Record that ``field`` of the ``kind`` facts of resource ``name`` is present but cannot be read
        (the note is made by the caller): a test on it is unknown with the reason ``unreadable``."""
        self.unreadable_fields.append((kind, field, name, element))

    def unread_key(self, key: tuple[str, ...], name: str, element: str) -> None:
        """:meth:`unread` for a latest-value key (``("lab", analyte)``, ``("ecog",)``, ...)."""
        if key[0] == "disease-status-derived":  # the disease status read from mCODE
            key = ("assertion", "disease-status")
        field = _KEY_FIELDS.get(key[0])
        kind = "ecog" if key[0] == "ecog-derived" else key[0]
        self.unread(kind, {field: key[1]} if field and len(key) > 1 else {}, name, element)

    def days_ago(self, d: Date | None) -> int | None:
        return None if d is None else self.as_of_ord - d.toordinal()

    def date_of(self, value: object, name: str, element: str) -> Date | None:
        """The first day ``value`` can mean (see :meth:`date_span`)."""
        span = self.date_span(value, name, element)
        return span[0] if span is not None else None

    def date_span(self, value: object, name: str, element: str) -> tuple[Date, Date] | None:
        """(first, last) day a FHIR date/dateTime can mean: one day, or the whole month or year of a
        partial date (with a note); None (with a note when present but unreadable)."""
        if value is None:
            return None
        if type(value) is not str:
            self.note("wrong-type", f"{element} is not a string", name, element)
            return None
        d, partial = parse_date(value)
        if d is None:
            self.note("invalid-date", f"{element} {value[:40]!r} is not a FHIR date", name, element)
            return None
        if partial:
            hi = last_day(d, value)
            self.note(
                "partial-date",
                f"{element} {value!r} is a partial date, read as {d.isoformat()}..{hi.isoformat()}",
                name,
                element,
            )
            return d, hi
        return d, d

    def after_as_of(self, when: Date | None, name: str, element: str) -> bool:
        """True (with a note) when ``when`` lies after ``as_of``: not known at ``as_of``, not used."""
        if when is None or when <= self.as_of:
            return False
        self.note(
            "after-as-of",
            f"{element} {when.isoformat()} is after the evaluation date {self.as_of.isoformat()}; not used",
            name,
            element,
        )
        return True

    def known_later(self, res: Resource, name: str) -> bool:
        """True (with a note) when the Observation-like ``res`` is dated, or was issued, after ``as_of``."""
        when, element = self.effective(res, name)
        if self.after_as_of(when, name, element):
            return True
        rt = res.get("resourceType")
        issued = res.get("issued")
        if element != f"{rt}.issued" and type(issued) is str:
            d, _ = parse_date(issued)
            return self.after_as_of(d, name, f"{rt}.issued")
        return False

    def effective(self, res: Resource, name: str) -> tuple[Date | None, str]:
        """Observation-like date: effectiveDateTime, effectiveInstant, effectivePeriod (start, else end),
        issued. The full instant is kept for :meth:`offer_latest`."""
        rt = res.get("resourceType", "Observation")
        raw: object = None
        element = ""
        for key in ("effectiveDateTime", "effectiveInstant"):
            if key in res:
                raw, element = res[key], f"{rt}.{key}"
                break
        else:
            period = res.get("effectivePeriod")
            if type(period) is dict and ("start" in period or "end" in period):
                part = "start" if "start" in period else "end"
                raw, element = period[part], f"{rt}.effectivePeriod.{part}"
            elif "issued" in res:
                raw, element = res["issued"], f"{rt}.issued"
            else:
                return None, ""
        when = self.dated(raw, name, element)
        if when is not None and type(raw) is str:
            inst = instant_key(raw)
            if inst is not None:
                self.instants[id(res)] = inst
        return when, element

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

    def other_patient(self, res: Resource) -> tuple[str, str, bool] | None:
        """(reference text, element, another patient) if ``res`` is not about this bundle's Patient: it
        refers to another Patient (in the bundle or by a ``Patient/id`` that is not this Patient's), or to
        a subject that cannot be resolved at all (``urn:uuid:``, relative or absolute alike). None when
        it is about this Patient."""
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
                return (
                    (ref, link, True)
                    if (target.get("resourceType") == "Patient" and target is not self.patient)
                    else None
                )
            key = ref_key(ref)
            if key is not None and key == f"Patient/{self.patient_id}":
                return None
            return ref, link, key is not None and key.startswith("Patient/")
        return None

    def name_of(self, res: Resource) -> str:
        """``Type/id``; for a resource without an id, its :func:`anonymous_name`."""
        rt = res.get("resourceType")
        rid = res.get("id")
        rt = rt if type(rt) is str else "Resource"
        if type(rid) is str and rid:
            return f"{rt}/{rid}"
        return self.names.get(id(res)) or anonymous_name(rt, res, None)

    def safely(self, fn: Callable[..., _T], *args: Any) -> _T | None:
        """``fn(*args)``; on an internal error a note ``extraction-error`` and ``None``."""
        try:
            return fn(*args)
        except Exception as exc:
            name = args[-2] if len(args) >= 3 and type(args[-2]) is str else None
            self.note(
                "extraction-error", f"could not read {name or 'resource'}: {type(exc).__name__}: {exc}"[:300], name
            )
            return None


#: A reader of one resource family.
Handler = Callable[[Extraction, Resource, str, int], None]
