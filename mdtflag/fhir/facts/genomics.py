"""Genomics: variants, TMB, MSI, diagnostic implications and genomic DiagnosticReports."""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from datetime import date as Date
from types import MappingProxyType
from typing import Any

from mdtflag.fhir.facts.codes import (
    CN_CHANGE,
    GENE_SYMBOL,
    HGNC_ID,
    HGNC_SYSTEMS,
    IGNORED_STATUS,
    LOINC,
    LOINC_CHANGE,
    MSI,
    ORIGIN,
    SIGNIFICANCE,
    SO_CHANGE,
    SO_CN,
    SO_EXON_LOSS,
    SO_REARRANGEMENT,
    SO_SYSTEMS,
    TBD,
    VARIANT_NO_CALL,
    VARIANT_VALUE,
)
from mdtflag.fhir.facts.context import Extraction, Resource
from mdtflag.fhir.facts.mcode import add_tmb_call
from mdtflag.fhir.facts.models import Evidence, MsiFact, TmbFact, VariantFact
from mdtflag.fhir.facts.parse import (
    as_dict,
    as_list,
    codings,
    component_codes,
    component_text,
    is_tmb_unit,
    loinc_valid,
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
        else:
            near_miss_component(x, comp, name, element)
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


#: LOINC code of a variant component -> the variant field it gives
COMPONENT_FIELDS: Mapping[str, str] = MappingProxyType(
    {
        "48005-3": "protein",
        "48004-6": "cdna",
        "48019-4": "change_type",
        "82155-3": "copy_number",
        "62378-5": "cn_change",
        "48002-0": "origin",
        "53037-8": "significance",
        "81258-6": "vaf",
    }
)


def near_miss_component(x: Extraction, comp: Resource, name: str, element: str) -> None:
    """A variant component coded so that mdtflag cannot be sure what it is: a LOINC coding whose code is not
    a LOINC code ("48005-3X9"), or the LOINC code of a component it reads under another system or none. The
    field it may give is present but unreadable (a gene is left to the HGNC-value check of the caller)."""
    codes = list(component_codes(comp))
    if any(s == LOINC and loinc_valid(c) for s, c in codes):
        return
    for s, c in codes:
        hit = x.loinc_near_miss(
            s, c, COMPONENT_FIELDS.get, lambda field: f"the variant's {field}", name, f"{element}.code"
        )
        if hit is not None:
            x.unread_field("variant", hit[1], name, f"{element}.code")
            return


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
        elif value < 0:  # impossible: present but unreadable, never "below the amplification threshold"
            x.note("out-of-range", f"{element}: copy number {value} is negative", name, f"{element}.valueQuantity")
            x.unread_field("variant", "copy_number", name, f"{element}.valueQuantity.value")
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
