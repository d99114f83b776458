"""Genomics: variants, TMB, MSI, diagnostic implications and genomic DiagnosticReports."""
from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import date as Date
from typing import Any

from mdtflag.fhir.facts.codes import (
    ASSAY_SYSTEM,
    ASSAYS,
    BROAD_ASSAYS,
    CN_CHANGE,
    FINAL_REPORT,
    GENE_SYMBOL,
    HGNC_SYSTEMS,
    IGNORED_STATUS,
    LOINC,
    LOINC_CHANGE,
    MSI,
    ORIGIN,
    SIGNIFICANCE,
    SO_CHANGE,
    SO_CN,
    SO_REARRANGEMENT,
    SO_SYSTEMS,
    TBD,
    V2_0074,
    VARIANT_NO_CALL,
    VARIANT_VALUE,
)
from mdtflag.fhir.facts.context import Extraction, Resource
from mdtflag.fhir.facts.models import Evidence, GenomicReportFact, MsiFact, TmbFact, VariantFact
from mdtflag.fhir.facts.parse import (
    as_dict,
    as_list,
    codings,
    component_codes,
    component_text,
    is_tmb_unit,
    norm_system,
    normalise_protein_hgvs,
    number,
    status_of,
    string,
)


def significance(x: Extraction) -> dict[int, tuple[str, Evidence]]:
    """id(variant Observation) -> clinical significance from diagnostic-implication
    Observations that derive from it (Genomics Reporting STU3 shape); built on first use."""
    if x.significance_cache is None:
        x.significance_cache = {}
        for i, res, name in x.observations:
            if "derivedFrom" in res:
                x.safely(read_implication, x, res, name, i)
    return x.significance_cache


def read_implication(x: Extraction, res: Resource, name: str, i: int) -> None:
    if not any(c == "diagnostic-implication" for _, c, _ in codings(res.get("code"))):
        return
    if status_of(res) in IGNORED_STATUS:
        return
    found = None
    for j, comp in enumerate(as_list(res.get("component"))):
        if type(comp) is not dict:
            continue
        if any(s == LOINC and c == "53037-8" for s, c, _ in codings(comp.get("code"))):
            for s, c, _ in codings(comp.get("valueCodeableConcept")):
                if s == LOINC and c in SIGNIFICANCE:
                    found = (SIGNIFICANCE[c], Evidence(
                        resource=name, element=f"Observation.component[{j}].valueCodeableConcept",
                        value=c))
                    break
    cache = x.significance_cache
    if found is None or cache is None:
        return
    for reference in as_list(res.get("derivedFrom")):
        target, _ = x.resolve(reference)
        if target is not None:
            cache.setdefault(id(target), found)


def obs_variant(x: Extraction, res: Resource, name: str, i: int, code: str) -> None:
    when, _ = x.effective(res, name)
    present: bool | None = None
    ev: list[Evidence] = []
    if "valueCodeableConcept" in res:
        for s, c, _ in codings(res.get("valueCodeableConcept")):
            if s == LOINC and c in VARIANT_VALUE:
                present = VARIANT_VALUE[c]
                ev.append(Evidence(resource=name, element="Observation.valueCodeableConcept",
                                   value=c))
                break
            if s == LOINC and c in VARIANT_NO_CALL:
                x.note("unknown-code", f"variant result {c} (no call / indeterminate): "
                       "not tested", name, "Observation.valueCodeableConcept")
                return
        if present is None:
            x.note("unknown-code", "variant value is not LA9633-4 present / LA9634-2 absent",
                   name, "Observation.valueCodeableConcept")
            return
    genes: list[tuple[str, Evidence]] = []
    fields: dict[str, Any] = {}
    change_from_consequence = None
    for j, comp in enumerate(as_list(res.get("component"))):
        if type(comp) is not dict:
            continue
        element = f"Observation.component[{j}]"
        for s, c in component_codes(comp):
            if s == LOINC:
                if c == "48018-6":
                    g = gene_symbol(x, comp.get("valueCodeableConcept"), name,
                                         f"{element}.valueCodeableConcept")
                    if g:
                        genes.append(g)
                elif c == "94076-7":
                    obs_tmb(x, comp, name, i, c, element, when)
                elif c == "81695-9":
                    obs_msi(x, comp, name, i, c, element, when)
                else:
                    variant_component(x, c, comp, name, element, fields, ev)
                break
            if s == TBD and c == "molecular-consequence":
                for s2, c2, _ in codings(comp.get("valueCodeableConcept")):
                    c2 = c2.replace("_", ":")
                    if s2 in SO_SYSTEMS and c2 in SO_CN:
                        change_from_consequence = c2
                        ev.append(Evidence(resource=name, element=f"{element}.valueCodeableConcept",
                                           value=c2))
                break
    if change_from_consequence:
        fields.setdefault("cn_change", SO_CN[change_from_consequence])
        fields.setdefault("change_type", "cnv")
    if not genes:
        x.note("missing-element", "variant without a readable gene (component 48018-6): "
               "not used", name, "Observation.component")
        return
    if present is None:
        present = True
        x.note("assumed-value", "variant without a value but with a gene: read as present "
               "(LA9633-4)", name, "Observation.valueCodeableConcept")
    implied = significance(x).get(id(res))
    if implied is not None and "significance" not in fields:
        sig, sig_ev = implied
        fields["significance"] = sig
        ev.append(sig_ev)
    so = fields.pop("_so", None)
    if present and len(genes) > 1:
        pair = f"{genes[0][0]}-{genes[1][0]}"
        if len(genes) == 2 and (fields.get("change_type") == "fusion"
                                or so in SO_REARRANGEMENT or "change_type" not in fields):
            if fields.get("change_type") != "fusion":
                how = (f"as a rearrangement ({so})" if so in SO_REARRANGEMENT
                       else "without a change type")
                x.note("assumed-value", f"variant {pair} coded {how} between two "
                       "genes: read as a fusion of the first gene with the second",
                       name, "Observation.component")
                fields["change_type"] = "fusion"
            fields["fusion_partner"] = genes[1][0]
            ev.append(genes[1][1])
        else:
            x.note("several-genes", f"variant names {len(genes)} genes "
                   f"({', '.join(g for g, _ in genes)}) but is not coded as a fusion "
                   "(SO:0001565); only the first gene used", name, "Observation.component")
        genes = genes[:1]
    for k, (gene, gene_ev) in enumerate(genes):
        x.add("variant", (i, k), VariantFact(gene=gene, present=present, date=when,
                                             evidence=(gene_ev, *ev), **fields))


def gene_symbol(x: Extraction, cc: object, name: str, element: str) -> tuple[str, Evidence] | None:
    if type(cc) is not dict:
        x.note("wrong-type", f"{element} is not a CodeableConcept", name, element)
        return None
    fallback = None
    for c in as_list(cc.get("coding")):
        if type(c) is not dict:
            continue
        system = norm_system(c.get("system"))
        code, display = string(c.get("code")), string(c.get("display"))
        if system in HGNC_SYSTEMS:
            for cand in (display, code):
                if cand and GENE_SYMBOL.match(cand) and not cand.upper().startswith("HGNC")\
                        and not cand.isdigit():
                    return cand, Evidence(resource=name, element=element,
                                          value=f"{code or ''} {display or ''}".strip())
        elif fallback is None and display and GENE_SYMBOL.match(display):
            fallback = display, Evidence(resource=name, element=element,
                                         value=f"{system}|{code or ''} {display}".strip())
    if fallback is None:
        text = string(cc.get("text"))
        if text and GENE_SYMBOL.match(text):
            fallback = text, Evidence(resource=name, element=f"{element}.text", value=text)
    if fallback is None:
        x.note("unknown-code", f"{element}: gene given without an HGNC symbol (an HGNC id "
                  "alone cannot be read)", name, element)
    return fallback


def variant_component(x: Extraction, code: str, comp: Resource, name: str, element: str,
                      fields: dict[str, Any], ev: list[Evidence]) -> None:
    def coded(table: Mapping[str, str], key: str, systems: Collection[str] = (LOINC,)) -> None:
        for s, c, _ in codings(comp.get("valueCodeableConcept")):
            if s in systems and c in table:
                fields[key] = table[c]
                ev.append(Evidence(resource=name, element=f"{element}.valueCodeableConcept",
                                   value=c))
                return
        x.note("unknown-code", f"{element} ({code}) value is not a known code", name,
               f"{element}.valueCodeableConcept")

    if code == "48005-3":
        text = component_text(comp)
        protein = normalise_protein_hgvs(text) if text else None
        if text and protein:
            fields["protein"] = protein
            ev.append(Evidence(resource=name, element=element, value=text))
        else:
            x.note("invalid-code", f"{element} protein change {str(text)[:40]!r} is not "
                   "p. HGVS", name, element)
    elif code == "48004-6":
        text = component_text(comp)
        if text and "c." in text:
            fields["cdna"] = text[text.find("c."):].strip()
            ev.append(Evidence(resource=name, element=element, value=text))
        else:
            x.note("invalid-code", f"{element} DNA change {str(text)[:40]!r} is not c. HGVS",
                   name, element)
    elif code == "48019-4":
        for s, c, _ in codings(comp.get("valueCodeableConcept")):
            c = c.replace("_", ":")
            if s in SO_SYSTEMS or c.startswith("SO:"):
                fields["change_type"] = SO_CHANGE.get(c, "other")
                fields["_so"] = c
            elif s == LOINC and c in LOINC_CHANGE:
                fields["change_type"] = LOINC_CHANGE[c]
            else:
                continue
            ev.append(Evidence(resource=name, element=f"{element}.valueCodeableConcept", value=c))
            return
        x.note("unknown-code-system", f"{element} change type is not a Sequence Ontology "
               "code", name, f"{element}.valueCodeableConcept")
    elif code == "82155-3":
        q = comp.get("valueQuantity")
        value = number(as_dict(q).get("value"))
        if value is None:
            x.note("wrong-type", f"{element} copy number is not a Quantity with a number",
                   name, element)
        else:
            fields["copy_number"] = value
            ev.append(Evidence(resource=name, element=f"{element}.valueQuantity", value=str(value)))
    elif code == "62378-5":
        coded(CN_CHANGE, "cn_change")
    elif code == "48002-0":
        coded(ORIGIN, "origin")
    elif code == "53037-8":
        coded(SIGNIFICANCE, "significance")
    elif code == "81258-6":
        vaf(x, comp, name, element, fields, ev)


def vaf(x: Extraction, comp: Resource, name: str, element: str, fields: dict[str, Any],
        ev: list[Evidence]) -> None:
    q = as_dict(comp.get("valueQuantity"))
    value = number(q.get("value"))
    if type(comp.get("valueQuantity")) is not dict or value is None:
        x.note("wrong-type", f"{element} allele frequency is not a Quantity with a number",
               name, element)
        return
    code, unit = string(q.get("code")), string(q.get("unit"))
    if code == "%" or (code is None and unit == "%"):
        value = value / 100
    elif code not in (None, "1"):
        x.note("unknown-unit", f"{element} allele frequency unit {code!r} is not 1 or %",
               name, f"{element}.valueQuantity.code")
        return
    if not 0 <= value <= 1:
        x.note("out-of-range", f"{element} allele frequency {q.get('value')} "
               f"{code or unit or ''} is outside 0-1", name, element)
        return
    fields["vaf"] = value
    ev.append(Evidence(resource=name, element=f"{element}.valueQuantity",
                       value=f"{q.get('value')} {code or unit or ''}".strip()))


def obs_tmb(x: Extraction, res: Resource, name: str, i: int, code: str, element: str = "Observation",
            when: Date | None = None) -> None:
    q = res.get("valueQuantity")
    value = number(as_dict(q).get("value"))
    if value is None:
        x.note("wrong-type", f"{element}: TMB without a numeric valueQuantity", name,
               f"{element}.valueQuantity")
        return
    unit = string(as_dict(q).get("code")) or string(as_dict(q).get("unit"))
    if unit is not None and not is_tmb_unit(unit):
        x.note("unknown-unit", f"{element}: TMB unit {unit!r} is not mutations per megabase",
               name, f"{element}.valueQuantity")
        return
    if value < 0:
        x.note("out-of-range", f"{element}: TMB {value} is negative", name, element)
        return
    if element == "Observation":
        when, _ = x.effective(res, name)
    x.add("tmb", (i, 0), TmbFact(value=value, date=when, evidence=(Evidence(
        resource=name, element=f"{element}.valueQuantity", value=f"{value} {unit or ''}".strip()),)))


def obs_msi(x: Extraction, res: Resource, name: str, i: int, code: str, element: str = "Observation",
            when: Date | None = None) -> None:
    for s, c, _ in codings(res.get("valueCodeableConcept")):
        if s == LOINC and c in MSI:
            if element == "Observation":
                when, _ = x.effective(res, name)
            x.add("msi", (i, 0), MsiFact(status=MSI[c], date=when, evidence=(Evidence(
                resource=name, element=f"{element}.valueCodeableConcept", value=c),)))
            return
    x.note("unknown-code", f"{element}: MSI value is not LA26203-2 / LA26202-4 / LA14122-8",
           name, f"{element}.valueCodeableConcept")


def read_report(x: Extraction, res: Resource, name: str, i: int) -> None:
    codes = codings(res.get("code"))
    genomic = any(s == LOINC and c == "51969-4" for s, c, _ in codes) or any(
        s == V2_0074 and c == "GE" for cat in as_list(res.get("category"))
        for s, c, _ in codings(cat))
    if not genomic:
        return
    status = status_of(res)
    if status in IGNORED_STATUS:
        x.note("ignored-status", f"{name} has status {status}; ignored", name,
               "DiagnosticReport.status")
        return
    ev: list[Evidence] = []
    assay = None
    for j, (s, c, _) in enumerate(codes):
        if s == ASSAY_SYSTEM:
            if c in ASSAYS:
                assay = c
                ev.append(Evidence(resource=name, element=f"DiagnosticReport.code.coding[{j}]",
                                   value=c))
            else:
                x.note("unknown-code", f"assay {c!r} is not one of {', '.join(sorted(ASSAYS))}",
                       name, f"DiagnosticReport.code.coding[{j}]")
    final = status in FINAL_REPORT
    if status:
        ev.append(Evidence(resource=name, element="DiagnosticReport.status", value=status))
    performer = res.get("performer")
    has_performer = type(performer) is list and any(type(p) is dict for p in performer)
    when, el = x.effective(res, name)
    if when is not None:
        ev.append(Evidence(resource=name, element=el, value=when.isoformat()))
    x.add("genomic_report", (i, 0), GenomicReportFact(
        assay=assay, broad=final and assay in BROAD_ASSAYS, final=final,
        has_performer=has_performer, date=when, age_days=x.days_ago(when),
        evidence=tuple(ev)))
