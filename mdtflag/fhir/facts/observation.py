"""Observation: dispatch by code, and the clinical observations (performance status, laboratory values,
pregnancy, TNM M / stage group / history of metastatic disease, IHC/ISH markers)."""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from types import MappingProxyType
from typing import Callable

from mdtflag.fhir.facts.assertions import obs_assertion
from mdtflag.fhir.facts.codes import (
    ASSERTION_SYSTEM,
    ASSERTIONS,
    DISEASE_STATUS_LOINC,
    ECOG_LA,
    ECOG_SNOMED,
    HISTOLOGY_LOINC,
    HISTORY_METASTATIC,
    IGNORED_STATUS,
    IHC_MARKERS,
    IHC_SCORE,
    KPS_LA,
    LOINC,
    MARKER,
    NCIT,
    POS_NEG,
    PREGNANCY_STATUS,
    SNOMED,
    STAGE_GROUP,
    TNM_M,
    UCUM,
    UNITS,
)
from mdtflag.fhir.facts.context import Extraction, Resource
from mdtflag.fhir.facts.genomics import obs_msi, obs_tmb, obs_variant
from mdtflag.fhir.facts.mcode import obs_disease_status, obs_histology, obs_lansky, obs_tmb_interpretation
from mdtflag.fhir.facts.models import EcogFact, Evidence, ExtentFact, IhcFact, LabFact, PregnancyFact
from mdtflag.fhir.facts.parse import (
    LIMIT,
    as_dict,
    as_list,
    codings,
    loinc_valid,
    m1_value,
    norm_system,
    number,
    stage_iv_value,
    status_of,
    string,
)
from mdtflag.fhir.facts.plausible import lab_range, score_range
from mdtflag.fhir.facts.terminology import Terminology

#: A reader of one Observation, given the code it was dispatched on.
ObservationReader = Callable[[Extraction, Resource, str, int, str], None]


def read_observation(x: Extraction, res: Resource, name: str, i: int) -> None:
    cc = res.get("code")
    if type(cc) is not dict:
        return
    dispatch = OBS_DISPATCH
    for c in as_list(cc.get("coding")):
        if type(c) is not dict:
            continue
        code = c.get("code")
        if type(code) is not str:
            continue
        system = norm_system(c.get("system"))
        handler: ObservationReader | None
        if system == ASSERTION_SYSTEM:
            handler, code = obs_assertion, code.strip()
        else:
            handler = dispatch.get((system, code)) or terminology_dispatch(x.terms).get((system, code))
            if handler is None:
                continue
        read_with(x, res, name, i, handler, code, sure=True)
        return
    guess = near_miss(x, cc, name)
    if guess is not None:
        read_with(x, res, name, i, *guess, sure=False)


def read_with(
    x: Extraction, res: Resource, name: str, i: int, handler: ObservationReader, code: str, *, sure: bool
) -> None:
    """Read ``res`` with ``handler`` unless its status says not to; ``sure``: its code was understood (else
    what the reader finds is present but unreadable, see :func:`near_miss`)."""
    status = status_of(res)
    if status in IGNORED_STATUS:
        x.note("ignored-status", f"{name} has status {status}; ignored", name, "Observation.status")
    elif status != "registered" and not x.known_later(res, name):  # registered: no result yet
        x.status_not_understood(res, name)
        if not sure:
            x.distrust(name, "Observation.code")
        handler(x, res, name, i, code)


def reader_of(x: Extraction, loinc: str) -> ObservationReader | None:
    """The reader of an Observation with this LOINC code, if mdtflag reads it."""
    return OBS_DISPATCH.get((LOINC, loinc)) or terminology_dispatch(x.terms).get((LOINC, loinc))


def near_miss(x: Extraction, cc: Resource, name: str) -> tuple[ObservationReader, str] | None:
    """A result mdtflag reads, coded so that it cannot be sure what it is: a LOINC coding whose code is not a
    LOINC code (a LOINC code at its start names the reader: "69548-6X9"), or the LOINC code of a result it
    reads under another system or none. Noted; what the reader then finds is present but unreadable, never
    absent (a positive pregnancy test is not dropped for a typing error in its code)."""
    for j, c in enumerate(as_list(cc.get("coding"))):
        code = as_dict(c).get("code")
        if type(code) is not str:
            continue
        system, code, element = norm_system(as_dict(c).get("system")), code.strip(), f"Observation.code.coding[{j}]"
        if system == ASSERTION_SYSTEM or (system == LOINC and loinc_valid(code)):
            continue
        if code.lower() in ASSERTIONS:  # a clinical assessment's code under another system or none
            x.note(
                "unknown-code-system",
                f"{element}: {code[:40]} is a code of {ASSERTION_SYSTEM} under the system "
                f"{system[:60] or '(none)'}: present but unreadable",
                name,
                element,
            )
            return obs_assertion, code.lower()
        hit = x.loinc_near_miss(
            system, code, lambda loinc: reader_of(x, loinc), lambda _: "a result mdtflag reads", name, element
        )
        if hit is not None:
            return hit[1], hit[0]
    return None


def obs_ecog(x: Extraction, res: Resource, name: str, i: int, code: str) -> None:
    value, element, shown = performance_value(x, res, name, ECOG_LA, ECOG_SNOMED)
    when, _ = x.effective(res, name)
    if value is None:  # present but unreadable (noted): if it is the latest, the ECOG is unknown
        x.offer_latest(
            ("ecog",),
            when,
            (i, 0),
            lambda: x.unread("ecog", {}, name, "Observation.value[x]"),
            res=res,
            value=("unreadable", name),
            name=name,
        )
        return
    x.ecog_seen = True
    bounds = score_range("ecog")
    if bounds is not None and not bounds[0] <= value <= bounds[1]:
        # the latest ECOG cannot be read: the ECOG is unknown (an older one does not count instead)
        def implausible() -> None:
            x.note(
                "implausible-value",
                f"latest ECOG {value} is outside {bounds[0]}-{bounds[1]}: ECOG unknown",
                name,
                element,
            )
            x.unread("ecog", {}, name, element)

        x.offer_latest(("ecog",), when, (i, 0), implausible, res=res, value=("implausible", value), name=name)
        return
    ev = (Evidence(resource=name, element=element, value=shown),)
    x.offer_latest(
        ("ecog",),
        when,
        (i, 0),
        lambda: x.add(
            "ecog", (i, 0), EcogFact(value=value, date=when, age_days=x.days_ago(when), derived=False, evidence=ev)
        ),
        res=res,
        value=value,
        name=name,
    )


def obs_karnofsky(x: Extraction, res: Resource, name: str, i: int, code: str) -> None:
    value, element, shown = performance_value(x, res, name, KPS_LA, {})
    if value is None:
        return
    bounds = score_range("karnofsky")
    if bounds is not None and not bounds[0] <= value <= bounds[1]:
        x.note("implausible-value", f"Karnofsky {value} is outside {bounds[0]}-{bounds[1]}", name, element)
        return
    ecog = (
        0 if value >= 90 else 1 if value >= 70 else 2 if value >= 50 else 3 if value >= 30 else 4 if value >= 10 else 5
    )
    when, _ = x.effective(res, name)
    ev = (Evidence(resource=name, element=element, value=f"Karnofsky {shown} -> ECOG {ecog}"),)
    x.offer_latest(
        ("ecog-derived",),
        when,
        (i, 0),
        lambda: x.add(
            "ecog", (i, 0), EcogFact(value=ecog, date=when, age_days=x.days_ago(when), derived=True, evidence=ev)
        ),
        res=res,
        value=ecog,
        name=name,
    )


def performance_value(
    x: Extraction, res: Resource, name: str, la: Mapping[str, int], snomed: Mapping[str, int]
) -> tuple[int | None, str, str]:
    """(score, element, shown) from valueInteger / valueQuantity / valueString /
    valueCodeableConcept / interpretation; (None, ..) with a note when there is none."""
    if "valueInteger" in res:
        v = res["valueInteger"]
        if type(v) is int:
            return v, "Observation.valueInteger", str(v)
        x.note("wrong-type", "Observation.valueInteger is not an integer", name, "Observation.valueInteger")
        return None, "", ""
    if "valueQuantity" in res:
        v = number(as_dict(res["valueQuantity"]).get("value"))
        if v is not None and v == v.to_integral_value():
            return int(v), "Observation.valueQuantity", str(v)
        x.note(
            "wrong-type",
            "Observation.valueQuantity.value is not a whole number",
            name,
            "Observation.valueQuantity.value",
        )
        return None, "", ""
    if "valueString" in res:
        v = res["valueString"]
        if type(v) is str and v.strip().lstrip("-").isdigit():
            return int(v.strip()), "Observation.valueString", v.strip()
        x.note("wrong-type", "Observation.valueString is not a whole number", name, "Observation.valueString")
        return None, "", ""
    for element in ("valueCodeableConcept", "interpretation"):
        ccs = res.get(element)
        ccs = ccs if type(ccs) is list else [ccs] if ccs is not None else []
        for cc in ccs:
            for s, c, _ in codings(cc):
                if s == LOINC and c in la:
                    return la[c], f"Observation.{element}", c
                if s == SNOMED and c in snomed:
                    return snomed[c], f"Observation.{element}", c
        if ccs:
            x.note(
                "unknown-code",
                f"Observation.{element} holds no known performance-status code",
                name,
                f"Observation.{element}",
            )
            return None, "", ""
    x.note("missing-element", "performance status without a value", name, "Observation.value[x]")
    return None, "", ""


def quantity(
    x: Extraction, q: object, name: str, element: str, units: Mapping[str, tuple[Decimal, str]]
) -> tuple[Decimal, str, str, bool, Decimal] | None:
    """(value in canonical unit, canonical unit, shown, censored, factor) or None with a note."""
    if type(q) is not dict:
        x.note("wrong-type", f"{element} is not a Quantity", name, element)
        return None
    raw = q.get("value")
    value = number(raw)
    if value is None:
        if raw is None:
            x.note("missing-element", f"{element}.value is absent", name, f"{element}.value")
        else:
            x.note("wrong-type", f"{element}.value {str(raw)[:20]!r} is not a number", name, f"{element}.value")
        return None
    system, code, unit = q.get("system"), q.get("code"), q.get("unit")
    if type(code) is str and code.strip():
        if system is not None and norm_system(system) != UCUM:
            x.note(
                "unknown-unit", f"{element} unit {code!r} is not UCUM ({str(system)[:60]})", name, f"{element}.system"
            )
            return None
        u = code.strip()
    elif type(unit) is str and unit.strip():
        u = unit.strip()
    else:
        u = ""
    conv = units.get(u)
    if conv is None:
        x.note(
            "unknown-unit",
            f"{element} unit {u or '(none)'!r} is not accepted here (accepted: {', '.join(units)})",
            name,
            f"{element}.code",
        )
        return None
    factor, canonical = conv
    comparator = q.get("comparator")
    shown = f"{comparator or ''}{raw} {u}"
    return value * factor, canonical, shown, comparator is not None, factor


def obs_lab(x: Extraction, res: Resource, name: str, i: int, code: str) -> None:
    analyte = x.terms.prop(LOINC, code, "analyte") or code
    units = accepted_units(x.terms, x.terms.prop(LOINC, code, "quantity") or "")
    if analyte == "hcg" and "valueCodeableConcept" in res:
        obs_pregnancy(x, res, name, i, code)
        return
    if "valueQuantity" not in res:
        if analyte != "hcg":
            value_keys = [k for k in res if k.startswith("value")]
            if value_keys:
                x.note(
                    "wrong-type",
                    f"{value_keys[0]} where a valueQuantity is required",
                    name,
                    f"Observation.{value_keys[0]}",
                )
            else:
                x.note("missing-element", "laboratory value without valueQuantity", name, "Observation.valueQuantity")
        return
    q = quantity(x, res["valueQuantity"], name, "Observation.valueQuantity", units)
    when, _ = x.effective(res, name)
    if q is None:  # present but unreadable (noted): if it is the latest, the analyte is unknown
        x.offer_latest(
            ("lab", analyte),
            when,
            (i, 0),
            lambda: x.unread("lab", {"analyte": analyte}, name, "Observation.valueQuantity"),
            res=res,
            value=("unreadable", name),
            name=name,
        )
        return
    value, unit, shown, censored, factor = q
    uln = x_uln = None
    ev = [Evidence(resource=name, element="Observation.valueQuantity", value=shown)]
    bounds = lab_range(analyte, unit)
    implausible = bounds is not None and not bounds[0] <= value <= bounds[1]
    if not censored and not implausible:
        uln_q = reference_high(x, res, name, units, unit, factor)
        if uln_q is not None:
            uln, uln_shown, j = uln_q
            x_uln = value / uln if uln > 0 else None
            if x_uln is None or x_uln >= LIMIT or (bounds is not None and uln > bounds[1]):
                x.note(
                    "implausible-value",
                    f"{analyte} upper limit of normal {uln_shown} is not a "
                    f"plausible limit: multiples of the ULN unknown",
                    name,
                    f"Observation.referenceRange[{j}].high",
                )
                uln = x_uln = None
            else:
                ev.append(Evidence(resource=name, element=f"Observation.referenceRange[{j}].high", value=uln_shown))
    evidence = tuple(ev)

    def build() -> None:
        if censored:
            x.note(
                "censored-value",
                f"latest {analyte} is {shown}: exact value unknown",
                name,
                "Observation.valueQuantity.comparator",
            )
            return
        if implausible and bounds is not None:
            x.note(
                "implausible-value",
                f"latest {analyte} {shown} is outside the plausible range "
                f"{bounds[0]}-{bounds[1]} {unit}: {analyte} unknown",
                name,
                "Observation.valueQuantity.value",
            )
            x.unread("lab", {"analyte": analyte}, name, "Observation.valueQuantity.value")
            return
        x.add(
            "lab",
            (i, 0),
            LabFact(
                analyte=analyte,
                value=value,
                unit=unit,
                uln=uln,
                x_uln=x_uln,
                date=when,
                age_days=x.days_ago(when),
                evidence=evidence,
            ),
        )

    x.offer_latest(("lab", analyte), when, (i, 0), build, res=res, value=(value, censored), name=name)


def reference_high(
    x: Extraction,
    res: Resource,
    name: str,
    units: Mapping[str, tuple[Decimal, str]],
    canonical: str,
    value_factor: Decimal,
) -> tuple[Decimal, str, int] | None:
    """(upper limit of normal in the canonical unit, shown, index) of the first normal range with a high
    limit; None (with a note when it cannot be read)."""
    for j, rr in enumerate(as_list(res.get("referenceRange"))):
        if type(rr) is not dict or "high" not in rr:
            continue
        types = codings(rr.get("type"))
        if types and not any(c == "normal" for _, c, _ in types):
            continue
        high = rr["high"]
        element = f"Observation.referenceRange[{j}].high"
        if type(high) is dict and not (string(high.get("code")) or string(high.get("unit"))):
            value = number(high.get("value"))  # no unit: the value's own unit
            if value is None:
                x.note("wrong-type", f"{element}.value is not a number", name, element)
                return None
            return value * value_factor, f"{high.get('value')}", j
        q = quantity(x, high, name, element, units)
        if q is None:
            return None
        value, unit, shown, _, _ = q
        if unit != canonical:
            x.note("unknown-unit", f"{element} is in {unit}, the value in {canonical}: ULN not used", name, element)
            return None
        return value, shown, j
    return None


def obs_pregnancy(x: Extraction, res: Resource, name: str, i: int, code: str) -> None:
    cc = res.get("valueCodeableConcept")
    if cc is None:
        x.note(
            "missing-element",
            "pregnancy observation without valueCodeableConcept",
            name,
            "Observation.valueCodeableConcept",
        )
        return
    hcg = x.terms.prop(LOINC, code, "analyte") == "hcg"
    status = None
    for s, c, _ in codings(cc):
        if hcg and (s, c) in POS_NEG:
            status = f"{POS_NEG[(s, c)]}-hcg"
        elif not hcg and (s, c) in PREGNANCY_STATUS:
            status = PREGNANCY_STATUS[(s, c)]
        if status:
            shown = c
            break
    when, _ = x.effective(res, name)
    source = "hcg" if hcg else "pregnancy-status"
    if status is None:  # present but unreadable: if it is the latest of its source, the status is unknown
        x.note(
            "unknown-code", "pregnancy observation value is not a known code", name, "Observation.valueCodeableConcept"
        )
        x.offer_latest(
            ("pregnancy", source),
            when,
            (i, 0),
            lambda: x.unread("pregnancy", {"source": source}, name, "Observation.valueCodeableConcept"),
            res=res,
            value=("unreadable", name),
            name=name,
        )
        return
    ev = (Evidence(resource=name, element="Observation.valueCodeableConcept", value=shown),)
    x.offer_latest(
        ("pregnancy", source),
        when,
        (i, 0),
        lambda: x.add(
            "pregnancy",
            (i, 0),
            PregnancyFact(status=status, source=source, date=when, age_days=x.days_ago(when), evidence=ev),
        ),
        res=res,
        value=status,
        name=name,
    )


#: A TNM M category value mdtflag understands (M0, M1, MX with prefixes), or a SNOMED CT concept with a display.
_M_CATEGORY = re.compile(r"^[ycpra]{0,3}M(?:0|1|X)", re.IGNORECASE)


def obs_tnm_m(x: Extraction, res: Resource, name: str, i: int, code: str) -> None:
    value = res.get("valueCodeableConcept")
    hit = m1_value(value)
    if not hit and not any(
        (s == SNOMED and d) or _M_CATEGORY.match(c) for s, c, d in codings(value)
    ):  # present but not understood: extent from TNM is unknown, not M0
        x.note(
            "unknown-code",
            "TNM M category value not understood: metastatic status from TNM unknown",
            name,
            "Observation.valueCodeableConcept",
        )
        x.unread("extent", {"source": "tnm-m"}, name, "Observation.valueCodeableConcept")
        return
    if hit:
        _metastatic(x, res, name, i, "tnm-m", hit)


def obs_stage_group(x: Extraction, res: Resource, name: str, i: int, code: str) -> None:
    hit = stage_iv_value(res.get("valueCodeableConcept"))
    if hit:
        _metastatic(x, res, name, i, "stage-group", hit)


def _metastatic(x: Extraction, res: Resource, name: str, i: int, source: str, hit: str) -> None:
    """An extent fact "metastatic" read from the Observation's coded value ``hit``."""
    when, _ = x.effective(res, name)
    evidence = Evidence(resource=name, element="Observation.valueCodeableConcept", value=hit)
    x.add("extent", (i, 0), ExtentFact(value="metastatic", source=source, date=when, evidence=(evidence,)))


def obs_history_metastatic(x: Extraction, res: Resource, name: str, i: int, code: str) -> None:
    if "valueBoolean" in res:
        flag = res["valueBoolean"]
        if type(flag) is not bool:
            x.note("wrong-type", "Observation.valueBoolean is not a boolean", name, "Observation.valueBoolean")
            x.unread("extent", {"source": "history-of-metastatic"}, name, "Observation.valueBoolean")
            return
        if not flag:
            return
        ev = Evidence(resource=name, element="Observation.valueBoolean", value="true")
    else:
        x.note(
            "assumed-value",
            "history-of-metastatic-cancer without a value read as true (the observation asserts the history)",
            name,
            "Observation.valueBoolean",
        )
        ev = Evidence(resource=name, element="Observation.code", value=f"{SNOMED}|{code}")
    when, _ = x.effective(res, name)
    x.add("extent", (i, 0), ExtentFact(value="metastatic", source="history-of-metastatic", date=when, evidence=(ev,)))


def obs_ihc(x: Extraction, res: Resource, name: str, i: int, code: str) -> None:
    marker = x.terms.map_one(LOINC, code, MARKER) or x.terms.map_one(NCIT, code, MARKER) or code
    result = score = value = None
    ev: list[Evidence] = []
    if "valueCodeableConcept" in res:
        cc = res.get("valueCodeableConcept")
        for s, c, _d in codings(cc):
            if (s, c) in POS_NEG:
                result = POS_NEG[(s, c)]
                ev.append(Evidence(resource=name, element="Observation.valueCodeableConcept", value=c))
                break
            if IHC_SCORE.match(c):
                score = c
        text = string(as_dict(cc).get("text"))
        if score is None and text and IHC_SCORE.match(text):
            score = text
    elif "valueString" in res:
        text = string(res.get("valueString"))
        if text and IHC_SCORE.match(text):
            score = text
    elif "valueQuantity" in res:
        value = number(as_dict(res.get("valueQuantity")).get("value"))
        if value is not None:
            ev.append(Evidence(resource=name, element="Observation.valueQuantity", value=str(value)))
    if score is not None:
        ev.append(Evidence(resource=name, element="Observation.value[x]", value=score))
    if result is None and score is None and value is None:
        x.note(
            "unknown-code",
            f"{marker} result is not positive/negative, a score or a number",
            name,
            "Observation.value[x]",
        )
        if any(k.startswith("value") for k in res):  # a result present but not understood: unknown, not absent
            x.unread("ihc", {"marker": marker}, name, "Observation.value[x]")
        return
    when, _ = x.effective(res, name)
    x.add("ihc", (i, 0), IhcFact(marker=marker, result=result, score=score, value=value, date=when, evidence=tuple(ev)))


#: (normalised system, code) of Observation.code -> reader. Codes of the mdtflag assertion system go
#: to :func:`~mdtflag.fhir.facts.assertions.obs_assertion` whatever the code.
OBS_DISPATCH: Mapping[tuple[str, str], ObservationReader] = MappingProxyType(
    {
        (LOINC, "89247-1"): obs_ecog,
        (LOINC, "89243-0"): obs_karnofsky,
        (SNOMED, "761869008"): obs_karnofsky,
        (LOINC, "82810-3"): obs_pregnancy,
        (LOINC, "69548-6"): obs_variant,
        (LOINC, "94076-7"): obs_tmb,
        (LOINC, "81695-9"): obs_msi,
        **dict.fromkeys(TNM_M, obs_tnm_m),
        **dict.fromkeys(STAGE_GROUP, obs_stage_group),
        **dict.fromkeys(HISTORY_METASTATIC, obs_history_metastatic),
        **{(LOINC, c): obs_disease_status for c in DISEASE_STATUS_LOINC},
        (LOINC, HISTOLOGY_LOINC): obs_histology,
    }
)


def obs_marker_unread(x: Extraction, res: Resource, name: str, i: int, code: str) -> None:
    marker = x.terms.map_one(LOINC, code, MARKER)
    x.note(
        "unread-marker",
        f"tumour marker {marker} (LOINC {code}) is recognised but gives no fact "
        "the rules read: the marker stays unknown",
        name,
        "Observation.code",
    )


@functools.lru_cache(maxsize=8)
def terminology_dispatch(terms: Terminology) -> Mapping[tuple[str, str], ObservationReader]:
    """Observation readers for the codes the terminology defines: laboratory LOINC codes (with an
    analyte property), tumour-marker LOINC codes (the LOINC -> marker map) and the NCIt Lansky
    observable (``observable`` property ``lansky``)."""
    out: dict[tuple[str, str], ObservationReader] = {}
    for code, props in terms.codes(LOINC).items():
        if "analyte" in props:
            out[(LOINC, code)] = obs_lab
    for code, props in terms.codes(NCIT).items():
        if props.get("observable") == "lansky":
            out[(NCIT, code)] = obs_lansky
    for code, targets in terms.maps.get((NCIT, MARKER), {}).items():
        if targets and targets[0] in IHC_MARKERS:  # Genomics Reporting biomarkers coded in the NCI Thesaurus
            out[(NCIT, code)] = obs_ihc
    for code, targets in terms.maps.get((LOINC, MARKER), {}).items():
        marker = targets[0] if targets else None
        reader: ObservationReader = (
            obs_ihc
            if marker in IHC_MARKERS
            else obs_msi
            if marker == "MSI"
            else obs_tmb
            if marker == "TMB"
            else obs_tmb_interpretation
            if marker == "TMB-interpretation"
            else obs_marker_unread
        )
        out[(LOINC, code)] = reader
    return MappingProxyType(out)


@functools.lru_cache(maxsize=64)
def accepted_units(terms: Terminology, kind: str) -> Mapping[str, tuple[Decimal, str]]:
    """unit -> (factor, canonical unit) of the units of one kind of quantity (ucum-units.json)."""
    out: dict[str, tuple[Decimal, str]] = {}
    for unit, props in terms.codes(UNITS).items():
        if props.get("quantity") == kind and kind:
            try:
                out[unit] = (Decimal(props.get("factor", "1")), props.get("canonical", unit))
            except InvalidOperation:
                continue
    return MappingProxyType(out)
