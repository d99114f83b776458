"""Genomics: variants, TMB, MSI, diagnostic implications and genomic DiagnosticReports."""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from datetime import date as Date
from typing import Any

from mdtflag.fhir.facts.codes import (
    ASSAY_SYSTEM,
    ASSAYS,
    BREADTH,
    BROAD_ASSAYS,
    CN_CHANGE,
    FINAL_REPORT,
    GENE_SYMBOL,
    HGNC_ID,
    HGNC_SYSTEMS,
    IGNORED_STATUS,
    LOINC,
    LOINC_CHANGE,
    MSI,
    ORIGIN,
    REPORT_STATUSES,
    SIGNIFICANCE,
    SO_CHANGE,
    SO_CN,
    SO_EXON_LOSS,
    SO_REARRANGEMENT,
    SO_SYSTEMS,
    TBD,
    V2_0074,
    VARIANT_NO_CALL,
    VARIANT_VALUE,
)
from mdtflag.fhir.facts.context import Extraction, Resource
from mdtflag.fhir.facts.mcode import add_tmb_call
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
                    found = (
                        SIGNIFICANCE[c],
                        Evidence(resource=name, element=f"Observation.component[{j}].valueCodeableConcept", value=c),
                    )
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
    unread_value = False  # a value present but not understood: the variant's presence is unknown
    ev: list[Evidence] = []
    if "valueCodeableConcept" in res:
        for s, c, _ in codings(res.get("valueCodeableConcept")):
            if s == LOINC and c in VARIANT_VALUE:
                present = VARIANT_VALUE[c]
                ev.append(Evidence(resource=name, element="Observation.valueCodeableConcept", value=c))
                break
            if s == LOINC and c in VARIANT_NO_CALL:
                x.note(
                    "unknown-code",
                    f"variant result {c} (no call / indeterminate): whether the variant is present is unknown",
                    name,
                    "Observation.valueCodeableConcept",
                )
                unread_value = True
                break
        if present is None and not unread_value:
            x.note(
                "unknown-code",
                "variant value is not LA9633-4 present / LA9634-2 absent: whether the variant is present is unknown",
                name,
                "Observation.valueCodeableConcept",
            )
            unread_value = True
    genes: list[tuple[str, Evidence]] = []
    fields: dict[str, Any] = {}
    change_from_consequence = None
    odd_genes: list[str] = []  # components valued with a gene whose code is not 48018-6: a gene not understood
    for j, comp in enumerate(as_list(res.get("component"))):
        if type(comp) is not dict:
            continue
        element = f"Observation.component[{j}]"
        if not any(s == LOINC and c == "48018-6" for s, c in component_codes(comp)) and any(
            s in HGNC_SYSTEMS for s, _, _ in codings(comp.get("valueCodeableConcept"))
        ):
            x.note(
                "unknown-code",
                f"{element} is valued with an HGNC gene but its code is not 48018-6 (gene studied): "
                "a gene of the variant is unknown",
                name,
                f"{element}.code",
            )
            odd_genes.append(f"{element}.code")
        for s, c in component_codes(comp):
            if s == LOINC:
                if c == "48018-6":
                    g = gene_symbol(x, comp.get("valueCodeableConcept"), name, f"{element}.valueCodeableConcept")
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
                        ev.append(Evidence(resource=name, element=f"{element}.valueCodeableConcept", value=c2))
                    elif s2 in SO_SYSTEMS and c2 == SO_EXON_LOSS:
                        fields["change_type"] = "exon-loss"
                        ev.append(Evidence(resource=name, element=f"{element}.valueCodeableConcept", value=c2))
                break
    hgvs_from_identifiers(x, res, name, fields, ev)
    if change_from_consequence:
        fields.setdefault("cn_change", SO_CN[change_from_consequence])
        fields.setdefault("change_type", "cnv")
    if not genes:
        if present is False:  # no variant found, in a gene not given: nothing to read
            x.note(
                "missing-element",
                "absent variant without a readable gene (component 48018-6): not used",
                name,
                "Observation.component",
            )
            return
        # a variant that may be present, in a gene that cannot be told: it could be the one a rule asks for, so
        # a test on variants is unknown unless what is known of it (change type, protein, ...) rules it out
        x.note(
            "missing-element",
            "variant without a readable gene (component 48018-6): whether it is the variant a rule asks for is unknown",
            name,
            "Observation.component",
        )
        known = {k: v for k, v in fields.items() if k[0] != "_" and type(v) in (str, bool)}
        if present:
            known["present"] = True
        x.unread("variant", known, name, "Observation.component")
        return
    if unread_value:
        for gene, _ in genes[:1]:
            x.unread("variant", {"gene": gene}, name, "Observation.valueCodeableConcept")
        return
    if odd_genes and present is not False:
        # a gene on file that is not read as one (e.g. a fusion's second gene under a code not understood):
        # this may be a variant of that gene, so a test on variants is unknown unless what is known rules it out
        known = {k: v for k, v in fields.items() if k[0] != "_" and type(v) in (str, bool)}
        x.unread("variant", {**known, "present": True}, name, odd_genes[0])
    if present is None:
        present = True
        x.note(
            "assumed-value",
            "variant without a value but with a gene: read as present (LA9633-4)",
            name,
            "Observation.valueCodeableConcept",
        )
    implied = significance(x).get(id(res))
    if implied is not None and "significance" not in fields:
        sig, sig_ev = implied
        fields["significance"] = sig
        ev.append(sig_ev)
    so = fields.pop("_so", None)
    vaf_unreadable = fields.pop("_vaf_unreadable", None)
    text_partner = fields.pop("_text_partner", None)
    if (
        present
        and len(genes) == 1
        and fields.get("change_type") == "fusion"
        and text_partner
        and text_partner != genes[0][0]
    ):
        fields["fusion_partner"] = text_partner
    if present and len(genes) > 1:
        pair = f"{genes[0][0]}-{genes[1][0]}"
        if len(genes) == 2 and (
            fields.get("change_type") == "fusion" or so in SO_REARRANGEMENT or "change_type" not in fields
        ):
            if fields.get("change_type") != "fusion":
                how = f"as a rearrangement ({so})" if so in SO_REARRANGEMENT else "without a change type"
                x.note(
                    "assumed-value",
                    f"variant {pair} coded {how} between two genes: read as a fusion of the first gene with the second",
                    name,
                    "Observation.component",
                )
                fields["change_type"] = "fusion"
            fields["fusion_partner"] = genes[1][0]
            ev.append(genes[1][1])
        else:
            x.note(
                "several-genes",
                f"variant names {len(genes)} genes "
                f"({', '.join(g for g, _ in genes)}) but is not coded as a fusion "
                "(SO:0001565); only the first gene used",
                name,
                "Observation.component",
            )
        genes = genes[:1]
    for k, (gene, gene_ev) in enumerate(genes):
        x.add("variant", (i, k), VariantFact(gene=gene, present=present, date=when, evidence=(gene_ev, *ev), **fields))
    if vaf_unreadable is not None:  # present but unreadable: a test on the VAF is unknown, not "missing"
        x.unread_field("variant", "vaf", name, vaf_unreadable)


def gene_symbol(x: Extraction, cc: object, name: str, element: str) -> tuple[str, Evidence] | None:
    """The gene of a 48018-6 value: the HGNC symbol given, else the symbol of the HGNC id given
    (``hgnc-genes.json``), else a symbol-like display or text of another system."""
    if type(cc) is not dict:
        x.note("wrong-type", f"{element} is not a CodeableConcept", name, element)
        return None
    fallback = None
    unmapped = None
    for c in as_list(cc.get("coding")):
        if type(c) is not dict:
            continue
        system = norm_system(c.get("system"))
        code, display = string(c.get("code")), string(c.get("display"))
        if system in HGNC_SYSTEMS:
            hgnc_id = hgnc_id_of(code)
            by_id = x.terms.prop(HGNC_ID, hgnc_id, "display") if hgnc_id else None
            for cand in (display, code):
                if cand and GENE_SYMBOL.match(cand) and not cand.upper().startswith("HGNC") and not cand.isdigit():
                    if by_id is not None and by_id.upper() != cand.upper():
                        x.note(
                            "conflicting-code",
                            f"{element}: {hgnc_id} is {by_id} but the symbol given is {cand}; the symbol given is used",
                            name,
                            element,
                        )
                    return cand.upper() if by_id and by_id.upper() == cand.upper() else cand, Evidence(
                        resource=name, element=element, value=f"{code or ''} {display or ''}".strip()
                    )
            if by_id is not None:
                return by_id, Evidence(
                    resource=name, element=element, value=f"{hgnc_id} -> {by_id} (terminology: HGNC)"
                )
            if hgnc_id:
                unmapped = hgnc_id
        elif fallback is None and display and GENE_SYMBOL.match(display):
            fallback = (
                display,
                Evidence(resource=name, element=element, value=f"{system}|{code or ''} {display}".strip()),
            )
    if fallback is None:
        text = string(cc.get("text"))
        if text and GENE_SYMBOL.match(text):
            fallback = text, Evidence(resource=name, element=f"{element}.text", value=text)
    if fallback is None:
        if unmapped:
            x.note(
                "unmapped-code",
                f"{element}: {unmapped} is not in the HGNC id -> symbol table: gene unknown",
                name,
                element,
            )
        else:
            x.note("unknown-code", f"{element}: gene given without an HGNC symbol or id", name, element)
    return fallback


def hgnc_id_of(code: str | None) -> str | None:
    """``HGNC:n`` from ``HGNC:n``, ``hgnc:n`` or a bare ``n``; None otherwise."""
    if not code:
        return None
    tail = code[5:] if code[:5].upper() == "HGNC:" else code
    return f"HGNC:{tail}" if tail.isdigit() else None


HGVS_C = re.compile(r"(?<![A-Za-z0-9])c\.[0-9*+\-_][^\s()]*")
HGVS_P = re.compile(r"(?<![A-Za-z0-9])p\.\(?[A-Z][A-Za-z0-9*_=?]*\)?")
FUSION_TEXT = re.compile(r"\bfusion\b", re.IGNORECASE)
FUSION_PAIR = re.compile(r"\b([A-Z][A-Z0-9]{1,15})(?:::|--|-|/)([A-Z][A-Z0-9]{1,15})\b")


def hgvs_from_identifiers(x: Extraction, res: Resource, name: str, fields: dict[str, Any], ev: list[Evidence]) -> None:
    """cDNA and protein changes from the codings / text of 81252-9 (discrete variant, e.g. a ClinVar
    display ``NM_...(GENE):c.1832del (p.Val611fs)``) and 81290-9 (genomic DNA change) when the
    structured components 48004-6 / 48005-3 are absent; a fusion named in their text."""
    for j, comp in enumerate(as_list(res.get("component"))):
        if type(comp) is not dict:
            continue
        if not any(s == LOINC and c in ("81252-9", "81290-9") for s, c in component_codes(comp)):
            continue
        element = f"Observation.component[{j}].valueCodeableConcept"
        value = as_dict(comp.get("valueCodeableConcept"))
        texts = [t for t in (string(value.get("text")),) if t]
        for c in as_list(value.get("coding")):
            texts += [t for t in (string(as_dict(c).get("display")), string(as_dict(c).get("code"))) if t]
        for text in texts:
            if "cdna" not in fields:
                hit = HGVS_C.search(text)
                if hit:
                    fields["cdna"] = hit.group(0)
                    ev.append(Evidence(resource=name, element=element, value=text))
            if "protein" not in fields:
                hit = HGVS_P.search(text)
                protein = normalise_protein_hgvs(hit.group(0).replace("(", "").replace(")", "")) if hit else None
                if protein:
                    fields["protein"] = protein
                    ev.append(Evidence(resource=name, element=element, value=text))
            if FUSION_TEXT.search(text) and fields.get("change_type") in (None, "other"):
                fields["change_type"] = "fusion"
                pair = FUSION_PAIR.search(text)
                if pair:
                    fields["_text_partner"] = pair.group(2)
                ev.append(Evidence(resource=name, element=element, value=text))


def variant_component(
    x: Extraction, code: str, comp: Resource, name: str, element: str, fields: dict[str, Any], ev: list[Evidence]
) -> None:
    def coded(table: Mapping[str, str], key: str, systems: Collection[str] = (LOINC,)) -> None:
        for s, c, _ in codings(comp.get("valueCodeableConcept")):
            if s in systems and c in table:
                fields[key] = table[c]
                ev.append(Evidence(resource=name, element=f"{element}.valueCodeableConcept", value=c))
                return
        x.note("unknown-code", f"{element} ({code}) value is not a known code", name, f"{element}.valueCodeableConcept")
        x.unread_field("variant", key, name, f"{element}.valueCodeableConcept")

    if code == "48005-3":
        text = component_text(comp)
        protein = normalise_protein_hgvs(text) if text else None
        if text and protein:
            fields["protein"] = protein
            ev.append(Evidence(resource=name, element=element, value=text))
        else:
            x.note("invalid-code", f"{element} protein change {str(text)[:40]!r} is not p. HGVS", name, element)
            x.unread_field("variant", "protein", name, element)
    elif code == "48004-6":
        text = component_text(comp)
        if text and "c." in text:
            fields["cdna"] = text[text.find("c.") :].strip()
            ev.append(Evidence(resource=name, element=element, value=text))
        else:
            x.note("invalid-code", f"{element} DNA change {str(text)[:40]!r} is not c. HGVS", name, element)
            x.unread_field("variant", "cdna", name, element)
    elif code == "48019-4":
        for s, c, _ in codings(comp.get("valueCodeableConcept")):
            c = c.replace("_", ":")
            if s in SO_SYSTEMS or c.startswith("SO:"):
                fields["_so"] = c
                if c in SO_CHANGE:
                    fields["change_type"] = SO_CHANGE[c]
                elif c not in SO_REARRANGEMENT:
                    # open world: a change type not classified here is unknown, not "other"
                    x.note(
                        "unmapped-code",
                        f"{element} change type {c[:30]} is not one mdtflag classifies: change type unknown",
                        name,
                        f"{element}.valueCodeableConcept",
                    )
                    x.unread_field("variant", "change_type", name, f"{element}.valueCodeableConcept")
                    return
            elif s == LOINC and c in LOINC_CHANGE:
                fields["change_type"] = LOINC_CHANGE[c]
            else:
                continue
            ev.append(Evidence(resource=name, element=f"{element}.valueCodeableConcept", value=c))
            return
        x.note(
            "unknown-code-system",
            f"{element} change type is not a Sequence Ontology code",
            name,
            f"{element}.valueCodeableConcept",
        )
    elif code == "82155-3":
        q = comp.get("valueQuantity")
        value = number(as_dict(q).get("value"))
        if value is None:
            x.note("wrong-type", f"{element} copy number is not a Quantity with a number", name, element)
            x.unread_field("variant", "copy_number", name, element)
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


def vaf(x: Extraction, comp: Resource, name: str, element: str, fields: dict[str, Any], ev: list[Evidence]) -> None:
    q = as_dict(comp.get("valueQuantity"))
    value = number(q.get("value"))
    if type(comp.get("valueQuantity")) is not dict or value is None:
        x.note("wrong-type", f"{element} allele frequency is not a Quantity with a number", name, element)
        fields["_vaf_unreadable"] = element
        return
    code, unit = string(q.get("code")), string(q.get("unit"))
    if code == "%" or (code is None and unit == "%"):
        value = value / 100
    elif code not in (None, "1"):
        x.note(
            "unknown-unit",
            f"{element} allele frequency unit {code!r} is not 1 or %",
            name,
            f"{element}.valueQuantity.code",
        )
        fields["_vaf_unreadable"] = f"{element}.valueQuantity.code"
        return
    if not 0 <= value <= 1:
        x.note(
            "out-of-range",
            f"{element} allele frequency {q.get('value')} {code or unit or ''} is outside 0-1",
            name,
            element,
        )
        fields["_vaf_unreadable"] = element
        return
    fields["vaf"] = value
    ev.append(
        Evidence(
            resource=name, element=f"{element}.valueQuantity", value=f"{q.get('value')} {code or unit or ''}".strip()
        )
    )


def obs_tmb(
    x: Extraction, res: Resource, name: str, i: int, code: str, element: str = "Observation", when: Date | None = None
) -> None:
    q = res.get("valueQuantity")
    value = number(as_dict(q).get("value"))
    if value is None:
        x.note("wrong-type", f"{element}: TMB without a numeric valueQuantity", name, f"{element}.valueQuantity")
        x.unread("tmb", {}, name, f"{element}.valueQuantity")
        return
    unit = string(as_dict(q).get("code")) or string(as_dict(q).get("unit"))
    if unit is not None and not is_tmb_unit(unit):
        x.note(
            "unknown-unit",
            f"{element}: TMB unit {unit!r} is not mutations per megabase",
            name,
            f"{element}.valueQuantity",
        )
        x.unread("tmb", {}, name, f"{element}.valueQuantity")
        return
    if value < 0:
        x.note("out-of-range", f"{element}: TMB {value} is negative", name, element)
        x.unread("tmb", {}, name, f"{element}.valueQuantity.value")
        return
    if element == "Observation":
        when, _ = x.effective(res, name)
        if "interpretation" in res:  # the laboratory's call beside the number: a fact of its own
            add_tmb_call(x, res, name, i, as_list(res["interpretation"]), "Observation.interpretation", required=False)
    x.add(
        "tmb",
        (i, 0),
        TmbFact(
            value=value,
            date=when,
            evidence=(
                Evidence(resource=name, element=f"{element}.valueQuantity", value=f"{value} {unit or ''}".strip()),
            ),
        ),
    )


def obs_msi(
    x: Extraction, res: Resource, name: str, i: int, code: str, element: str = "Observation", when: Date | None = None
) -> None:
    for s, c, _ in codings(res.get("valueCodeableConcept")):
        if s == LOINC and c in MSI:
            if element == "Observation":
                when, _ = x.effective(res, name)
            x.add(
                "msi",
                (i, 0),
                MsiFact(
                    status=MSI[c],
                    date=when,
                    evidence=(Evidence(resource=name, element=f"{element}.valueCodeableConcept", value=c),),
                ),
            )
            return
    x.note(
        "unknown-code",
        f"{element}: MSI value is not LA26203-2 / LA26202-4 / LA14122-8",
        name,
        f"{element}.valueCodeableConcept",
    )
    x.unread("msi", {}, name, f"{element}.valueCodeableConcept")


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
    if "status" in res and status not in REPORT_STATUSES:  # present, not understood: final or not unknown
        x.note(
            "unknown-code",
            f"DiagnosticReport.status {repr(res['status'])[:40]} is not a DiagnosticReport status: "
            "whether the report is final is unknown",
            name,
            "DiagnosticReport.status",
        )
        final = None
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
