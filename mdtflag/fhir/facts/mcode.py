"""mCODE observations read through the terminology: cancer disease status, histologic behaviour and
type, the Lansky performance status of children, and the laboratory's TMB call.

* **Disease status** (LOINC 97509-4; 88040-1 in mCODE STU1/STU2): the SNOMED CT answer is mapped by
  ``snomed-ct-disease-status.json`` to a value of the assessment ``disease-status`` (an
  :class:`AssertionFact`, the same fact the project's own assessment gives) and, for "distant
  metastasis present", to the extent ``metastatic``. Only the most recent status counts; when it cannot
  be mapped (a trend such as improved / stable / worsened, or an unknown code) the disease status is
  unknown, with a note, never a value. The project's own ``disease-status`` assessment
  (``urn:mdtflag:assertion``) always takes precedence: a status read from mCODE is used only when the
  bundle holds no such assessment at ``as_of``.
* **Histology** (LOINC 31206-6): an ICD-O-3 morphology, or a SNOMED CT morphologic abnormality mapped
  to ICD-O-3, for the Condition the Observation refers to (``focus`` or the related-condition
  extension). :func:`histology_index` collects them for the Condition reader.
* **Lansky** (NCIt C38144, ``nci-lansky.json``): a :class:`PerformanceFact` on the scale ``lansky``,
  never converted to ECOG.
* **TMB interpretation** (LOINC 94077-5, and ``Observation.interpretation`` of a numeric TMB): a
  :class:`TmbFact` with ``interpretation`` high / low and no value (``tmb-interpretation.json``). The
  rule compares a number with its own threshold; a call that contradicts the number leaves TMB-high
  unknown (rules/fragments/biomarker-match.yaml).
"""

from __future__ import annotations

from mdtflag.fhir.facts.codes import (
    ASSERTIONS,
    DISEASE_STATUS,
    EXTENT,
    HISTOLOGY_LOINC,
    ICDO3,
    IGNORED_STATUS,
    LOINC,
    NCIT,
    RELATED_CONDITION_EXT,
    RESOURCE_STATUSES,
    SNOMED,
    TMB_CALL,
)
from mdtflag.fhir.facts.context import Extraction, Resource
from mdtflag.fhir.facts.models import AssertionFact, Evidence, ExtentFact, PerformanceFact, TmbFact
from mdtflag.fhir.facts.parse import as_dict, as_list, codings, icdo3, number, parse_date, status_of

__all__ = [
    "add_tmb_call",
    "derived_status_counts",
    "histology_index",
    "histology_morphology",
    "obs_disease_status",
    "obs_histology",
    "obs_lansky",
    "obs_tmb_interpretation",
]

#: The assessment the disease status gives.
STATUS_CODE = "disease-status"
_VALUE = "Observation.valueCodeableConcept"


def _shown(codes: list[tuple[str, str, str | None]]) -> str:
    return ", ".join(f"{s or '(no system)'}|{c}" for s, c, _ in codes)[:200] or "(no coding)"


def obs_disease_status(x: Extraction, res: Resource, name: str, i: int, code: str) -> None:
    when, _ = x.effective(res, name)
    cc = res.get("valueCodeableConcept")
    found = codings(cc)
    statuses = x.terms.maps.get((SNOMED, DISEASE_STATUS), {})
    allowed = ASSERTIONS[STATUS_CODE][1] or frozenset()
    value: str | None = None
    listed: str | None = None
    for s, c, _ in found:
        if s != SNOMED:
            continue
        for target in x.terms.map(SNOMED, c, EXTENT):
            x.add(
                "extent",
                (i, 1),
                ExtentFact(
                    value=target,
                    source="disease-status",
                    date=when,
                    evidence=(Evidence(resource=name, element=_VALUE, value=f"{s}|{c} -> extent {target}"),),
                ),
            )
        if c in statuses:
            listed = listed or c
            hit = next((t for t in statuses[c] if t in allowed), None)
            if hit is not None and value is None:
                value, listed = hit, c
    if value is None:
        if type(cc) is not dict:
            code_, why = (
                ("wrong-type", "is not a CodeableConcept") if cc is not None else ("missing-element", "is absent")
            )
            x.note(code_, f"cancer disease status value {why}: disease status unknown", name, _VALUE)
        elif listed is not None:
            x.note(
                "unmapped-code",
                f"cancer disease status {SNOMED}|{listed} has no equivalent among the disease-status values "
                f"({', '.join(sorted(allowed))}): disease status unknown",
                name,
                _VALUE,
            )
        else:
            x.note(
                "unmapped-code",
                f"cancer disease status {_shown(found)} is not in the disease-status map: disease status unknown",
                name,
                _VALUE,
            )
        x.offer_latest(
            ("disease-status-derived",),
            when,
            (i, 0),
            lambda: x.unread("assertion", {"code": STATUS_CODE}, name, _VALUE),
            res=res,
            value=("unreadable", name),
            name=name,
        )
        return
    ev = (Evidence(resource=name, element=_VALUE, value=f"{SNOMED}|{listed} -> {STATUS_CODE} {value} (mCODE)"),)
    x.offer_latest(
        ("disease-status-derived",),
        when,
        (i, 0),
        lambda: x.add(
            "assertion",
            (i, 0),
            AssertionFact(code=STATUS_CODE, value=value, date=when, age_days=x.days_ago(when), evidence=ev),
        ),
        res=res,
        value=value,
        name=name,
    )


def derived_status_counts(x: Extraction) -> bool:
    """Whether the disease status read from mCODE may count: only when no ``disease-status`` assessment of
    the project's own (``urn:mdtflag:assertion``) was read, readable or not."""
    return STATUS_CODE not in x.explicit_assertions


def obs_lansky(x: Extraction, res: Resource, name: str, i: int, code: str) -> None:
    when, _ = x.effective(res, name)
    scores: list[tuple[int, str, str]] = []  # (score, element, shown)
    if "valueInteger" in res or "valueQuantity" in res:
        raw = res.get("valueInteger", as_dict(res.get("valueQuantity")).get("value"))
        n = number(raw) if type(raw) is not bool else None
        element = "Observation.valueInteger" if "valueInteger" in res else "Observation.valueQuantity.value"
        if n is None or n != n.to_integral_value():
            x.note("wrong-type", f"{element} is not a whole number: Lansky score unknown", name, element)
        else:
            scores.append((int(n), element, str(int(n))))
    for element in ("valueCodeableConcept", "interpretation"):
        for cc in as_list(res.get(element)) if element == "interpretation" else [res.get(element)]:
            for s, c, _ in codings(cc):
                prop = x.terms.prop(s, c, "lansky") if s == NCIT else None
                if prop is not None and prop.isdigit():
                    scores.append((int(prop), f"Observation.{element}", c))
    distinct = {s for s, _, _ in scores}
    if len(distinct) != 1:
        if len(distinct) > 1:
            x.note(
                "conflicting-values",
                f"Lansky score given as {', '.join(sorted({str(s) for s in distinct}))}: Lansky score unknown",
                name,
                "Observation.value[x]",
            )
        elif "valueInteger" not in res and "valueQuantity" not in res:
            other = [k for k in res if k.startswith("value") or k == "interpretation"]
            if not other:
                x.note("missing-element", "Lansky performance status without a score", name, "Observation.value[x]")
            elif other[0] in ("valueCodeableConcept", "interpretation"):
                x.note("unknown-code", "no Lansky answer code (NCIt) in the value", name, f"Observation.{other[0]}")
            else:
                x.note("wrong-type", f"{other[0]} is not a Lansky score", name, f"Observation.{other[0]}")
        x.offer_latest(
            ("performance", "lansky"),
            when,
            (i, 0),
            lambda: x.unread("performance", {"scale": "lansky"}, name, "Observation.value[x]"),
            res=res,
            value=("unreadable", name),
            name=name,
        )
        return
    score = distinct.pop()
    if not 0 <= score <= 100:
        x.note("implausible-value", f"Lansky score {score} is outside 0-100: Lansky score unknown", name, scores[0][1])
        x.offer_latest(
            ("performance", "lansky"),
            when,
            (i, 0),
            lambda: x.unread("performance", {"scale": "lansky"}, name, scores[0][1]),
            res=res,
            value=("implausible", score),
            name=name,
        )
        return
    ev = tuple(Evidence(resource=name, element=el, value=shown) for _, el, shown in scores)
    x.offer_latest(
        ("performance", "lansky"),
        when,
        (i, 0),
        lambda: x.add(
            "performance",
            (i, 0),
            PerformanceFact(scale="lansky", value=score, date=when, age_days=x.days_ago(when), evidence=ev),
        ),
        res=res,
        value=score,
        name=name,
    )


def tmb_call(x: Extraction, ccs: list[object]) -> tuple[str | None, list[tuple[str, str, str | None]]]:
    """(high | low | None, the codings seen) of TMB interpretation CodeableConcepts."""
    seen: list[tuple[str, str, str | None]] = []
    for cc in ccs:
        for s, c, d in codings(cc):
            seen.append((s, c, d))
            hit = x.terms.map_one(s, c, TMB_CALL)
            if hit in ("high", "low"):
                return hit, seen
    return None, seen


def obs_tmb_interpretation(x: Extraction, res: Resource, name: str, i: int, code: str) -> None:
    """LOINC 94077-5: the laboratory's call high / low, as a TMB fact without a number."""
    add_tmb_call(x, res, name, i, [res.get("valueCodeableConcept")], _VALUE, required=True)


def add_tmb_call(
    x: Extraction, res: Resource, name: str, i: int, ccs: list[object], element: str, *, required: bool
) -> None:
    call, seen = tmb_call(x, ccs)
    if call is None:
        if seen or required:
            x.note(
                "unmapped-code" if seen else "missing-element",
                f"TMB interpretation {_shown(seen)} is neither high nor low in the TMB-interpretation map: "
                "the laboratory's call is unknown",
                name,
                element,
            )
            x.unread("tmb", {}, name, element)
        return
    when, _ = x.effective(res, name)
    shown = next((f"{s}|{c}" for s, c, _ in seen if x.terms.map_one(s, c, TMB_CALL) == call), call)
    x.add(
        "tmb",
        (i, 1),
        TmbFact(
            interpretation=call,
            date=when,
            evidence=(Evidence(resource=name, element=element, value=f"{shown} -> {call}"),),
        ),
    )


#: id(Condition) -> [(ICD-O-3 morphology or None, evidence, readable)] of the histology Observations about it
#: (readable: its status is one of the R4 codes; else what it says is present but unreadable).
HistologyIndex = dict[int, list[tuple[str | None, Evidence, bool]]]


def obs_histology(x: Extraction, res: Resource, name: str, i: int, code: str) -> None:
    """LOINC 31206-6 is read for the Condition it refers to (see :func:`histology_index`); building the
    index here makes its notes appear even when the bundle holds no Condition."""
    histology_index(x)


def histology_index(x: Extraction) -> HistologyIndex:
    """Histologic behaviour and type Observations by the Condition they refer to; built on first use.
    Observations that are not used at all (status, another patient, dated after ``as_of``) are left
    to the Observation reader, which notes why."""
    if x.histology_cache is not None:
        return x.histology_cache
    index: HistologyIndex = {}
    x.histology_cache = index
    for _, res, name in x.observations:
        if not any(s == LOINC and c == HISTOLOGY_LOINC for s, c, _ in codings(res.get("code"))):
            continue
        status = status_of(res)
        if status in IGNORED_STATUS or status == "registered" or x.other_patient(res) is not None:
            continue
        if _dated_after_as_of(x, res):
            continue
        condition = _related_condition(x, res)
        if condition is None:
            x.note(
                "missing-element",
                "histologic behaviour and type does not refer to a Condition (focus or related-condition "
                "extension): not attributed to a diagnosis",
                name,
                "Observation.focus",
            )
            continue
        cc = res.get("valueCodeableConcept")
        if type(cc) is not dict:
            x.note("missing-element", "histologic behaviour and type without a coded value", name, _VALUE)
            continue
        morph, shown = histology_morphology(x, cc, name)
        readable = "status" not in res or status in RESOURCE_STATUSES["Observation"]
        index.setdefault(id(condition), []).append(
            (morph, Evidence(resource=name, element=_VALUE, value=shown), readable)
        )
    return index


def histology_morphology(x: Extraction, cc: object, name: str, element: str = _VALUE) -> tuple[str | None, str]:
    """(ICD-O-3 morphology or None with a note, what was seen) of a histology CodeableConcept: ICD-O-3
    directly, or SNOMED CT through the SNOMED CT -> ICD-O-3 map."""
    found = codings(cc)
    for s, c, _ in found:
        if "icd-o" in s:
            morph = icdo3(c)[1]
            if morph is not None:
                return morph, f"{s}|{c}"
        elif s == SNOMED:
            target = x.terms.map_one(SNOMED, c, ICDO3)
            morph = icdo3(target)[1] if target else None
            if morph is not None:
                return morph, f"{s}|{c} -> ICD-O-3 {target}"
    x.note(
        "unmapped-code",
        f"histology {_shown(found)} is neither an ICD-O-3 morphology nor in the SNOMED CT -> ICD-O-3 map: "
        "morphology unknown",
        name,
        element,
    )
    return None, _shown(found)


def _dated_after_as_of(x: Extraction, res: Resource) -> bool:
    """Whether the Observation is dated after ``as_of`` (read silently: the Observation reader notes it)."""
    period = as_dict(res.get("effectivePeriod"))
    for raw in (res.get("effectiveDateTime"), res.get("effectiveInstant"), period.get("start"), res.get("issued")):
        if type(raw) is str:
            when = parse_date(raw)[0]
            return when is not None and when > x.as_of
    return False


def _related_condition(x: Extraction, res: Resource) -> Resource | None:
    refs: list[object] = list(as_list(res.get("focus")))
    for ext in as_list(res.get("extension")):
        url = as_dict(ext).get("url")
        if type(url) is str and url.endswith(RELATED_CONDITION_EXT):
            refs.append(ext.get("valueReference"))
    for ref in refs:
        target, _ = x.resolve(ref)
        if target is not None and target.get("resourceType") == "Condition":
            return target
    return None
