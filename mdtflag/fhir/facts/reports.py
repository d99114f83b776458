"""Genomic DiagnosticReports: the assay, whether it is final and whether it is a broad molecular profile."""

from __future__ import annotations

import re

from mdtflag.fhir.facts.codes import (
    ASSAY_SYSTEM,
    ASSAYS,
    BREADTH,
    BROAD_ASSAYS,
    FINAL_REPORT,
    HGNC_SYSTEMS,
    IGNORED_STATUS,
    LOINC,
    REPORT_STATUSES,
    V2_0074,
)
from mdtflag.fhir.facts.context import Extraction, Resource
from mdtflag.fhir.facts.models import Evidence, GenomicReportFact
from mdtflag.fhir.facts.parse import as_dict, as_list, codings, component_codes, status_of


def read_report(x: Extraction, res: Resource, name: str, i: int) -> None:
    codes = codings(res.get("code"))
    genomic = any(s == LOINC and c == "51969-4" for s, c, _ in codes) or any(
        s == V2_0074 and c == "GE" for cat in as_list(res.get("category")) for s, c, _ in codings(cat)
    )
    if not genomic:
        return
    status = status_of(res)
    if status in IGNORED_STATUS:
        x.note("ignored-status", f"{name} has status {status}; ignored", name, "DiagnosticReport.status")
        return
    if x.known_later(res, name):
        return
    ev: list[Evidence] = []
    assay = None
    unread_assay = None  # the element of a test code on file that says which assay, but is not understood
    for j, (s, c, _) in enumerate(codes):
        if s == ASSAY_SYSTEM:
            if c in ASSAYS:
                assay = c
                ev.append(Evidence(resource=name, element=f"DiagnosticReport.code.coding[{j}]", value=c))
            else:
                x.note(
                    "unknown-code",
                    f"assay {c!r} is not one of {', '.join(sorted(ASSAYS))}: whether the profile is broad is unknown",
                    name,
                    f"DiagnosticReport.code.coding[{j}]",
                )
                unread_assay = unread_assay or f"DiagnosticReport.code.coding[{j}]"
    breadth: bool | None = None if assay is None else assay in BROAD_ASSAYS
    if assay is None:
        breadth = report_breadth(x, res, name, ev)
        # a laboratory's own test code that no map holds names a test whose breadth is unknown, not "narrow" (a
        # report coded with the gene it studies is a single-gene test: not a test code)
        local = next(
            (
                (j, s, c)
                for j, (s, c, _) in enumerate(codes)
                if s not in (LOINC, ASSAY_SYSTEM) and s not in HGNC_SYSTEMS
            ),
            None,
        )
        if breadth is None and unread_assay is None and local is not None:
            j, s, c = local
            unread_assay = f"DiagnosticReport.code.coding[{j}]"
            x.note(
                "unmapped-code",
                f"test code {s[:60]}|{c[:30]} is not in genomic-assays.json: whether the profile is broad is unknown",
                name,
                unread_assay,
            )
    final: bool | None = status in FINAL_REPORT
    if "status" in res and status not in REPORT_STATUSES:
        # present, not understood: whether it is final is unknown, and it may be in error, so what it says is
        # present but unreadable ("was there a WGS?" as well as "is it final?")
        final = None
        x.status_not_understood(res, name)
    if status:
        ev.append(Evidence(resource=name, element="DiagnosticReport.status", value=status))
    performer = res.get("performer")
    has_performer = type(performer) is list and any(type(p) is dict for p in performer)
    when, el = x.effective(res, name)
    if when is not None:
        ev.append(Evidence(resource=name, element=el, value=when.isoformat()))
    x.add(
        "genomic_report",
        (i, 0),
        GenomicReportFact(
            assay=assay,
            broad=(breadth if final else False) if final is not None else (False if breadth is False else None),
            final=final,
            has_performer=has_performer,
            date=when,
            age_days=x.days_ago(when),
            evidence=tuple(ev),
        ),
    )
    if final is None:
        x.unread_field("genomic_report", "final", name, "DiagnosticReport.status")
        if breadth is not False:
            x.unread_field("genomic_report", "broad", name, "DiagnosticReport.status")
    elif final and breadth is None and unread_assay is not None:
        x.unread_field("genomic_report", "broad", name, unread_assay)
    if assay is None and unread_assay is not None:  # which assay it was is unknown too (e.g. "was it WGS?")
        x.unread_field("genomic_report", "assay", name, unread_assay)


GENE_COUNT = re.compile(r"\b(\d{1,5})[ -]?genes?\b", re.IGNORECASE)
REGION_STUDIED = "53041-0"


def report_breadth(x: Extraction, res: Resource, name: str, ev: list[Evidence]) -> bool | None:
    """Whether a genomic report without a project assay code is a broad profile: from a test code the
    terminology maps to an assay class (the report's code, the ServiceRequest it is based on, the
    PlanDefinition that request instantiates), else from the number of genes studied (region-studied
    results, or an "N gene" count in a test display) against ``broad-panel-min-genes``; else unknown."""
    threshold = x.terms.prop(BREADTH, "broad-panel-min-genes", "value")
    minimum = int(threshold) if threshold and threshold.isdigit() else None
    tests: list[tuple[str, object]] = [("DiagnosticReport.code", res.get("code"))]
    for k, ref in enumerate(as_list(res.get("basedOn"))):
        order, _ = x.resolve(ref)
        if order is None:
            continue
        tests.append((f"DiagnosticReport.basedOn[{k}] -> {x.name_of(order)}.code", order.get("code")))
        for url in as_list(order.get("instantiatesCanonical")):
            plan = x.by_url.get(url) if type(url) is str else None
            if plan is not None:
                tests.append((f"{x.name_of(order)}.instantiatesCanonical -> PlanDefinition", plan.get("type")))
    genes: int | None = None
    for element, cc in tests:
        for s, c, display in codings(cc):
            assay = x.terms.map_one(s, c, ASSAY_SYSTEM)
            if assay in ASSAYS:
                ev.append(Evidence(resource=name, element=element, value=f"{s}|{c} -> assay {assay} (terminology map)"))
                return assay in BROAD_ASSAYS
            hit = GENE_COUNT.search(display or "")
            if hit and genes is None:
                genes = int(hit.group(1))
                ev.append(Evidence(resource=name, element=element, value=str(display)))
    studied: set[str] = set()
    for ref in as_list(res.get("result")):
        obs, _ = x.resolve(ref)
        if obs is None or not any(s == LOINC and c == REGION_STUDIED for s, c, _ in codings(obs.get("code"))):
            continue
        for comp in as_list(obs.get("component")):
            if any(s == LOINC and c == "48018-6" for s, c in component_codes(as_dict(comp))):
                for _, c, d in codings(as_dict(comp).get("valueCodeableConcept")):
                    studied.add((d or c).upper())
    if studied and (genes is None or len(studied) > genes):
        genes = len(studied)
        ev.append(
            Evidence(resource=name, element="DiagnosticReport.result (region studied)", value=f"{genes} genes studied")
        )
    if genes is not None and minimum is not None:
        return genes >= minimum
    return None
