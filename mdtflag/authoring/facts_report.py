"""What a bundle yields: the facts extracted and the elements that could not be used (``mdtflag facts``),
so that an integrator sees at once what their data gives the rules."""

from __future__ import annotations

from collections import Counter
from typing import Any

from mdtflag.fhir.facts import FACT_SCHEMA, FactSet
from mdtflag.fhir.facts.terminology import Terminology

__all__ = ["UNREAD_CODES", "facts_document", "facts_text"]

#: note codes that say "a coded element was there and could not be read"
UNREAD_CODES = frozenset(
    {
        "unknown-code-system",
        "unknown-code",
        "unmapped-code",
        "unknown-unit",
        "invalid-code",
        "conflicting-code",
        "unread-marker",
        "unread-latest",
    }
)


def facts_document(fs: FactSet, as_of: str, terminology: Terminology) -> dict[str, Any]:
    """``mdtflag.facts/1``: the facts per kind (fields and evidence), the notes on what was not used (coded
    elements not understood first), counts, and the terminology files the run used."""
    facts: dict[str, list[dict[str, Any]]] = {}
    for fact in fs.facts:
        d = fact.model_dump(mode="json", exclude_none=True)
        kind = d.pop("kind")
        facts.setdefault(kind, []).append(d)
    notes = [n.to_dict() for n in fs.notes]
    unread = [n for n in notes if n["code"] in UNREAD_CODES]
    return {
        "schema": "mdtflag.facts/1",
        "source": fs.source,
        "as_of": as_of,
        "counts": {k: len(facts.get(k, [])) for k in FACT_SCHEMA if facts.get(k)},
        "facts": facts,
        "not_understood": unread,
        "other_notes": [n for n in notes if n["code"] not in UNREAD_CODES],
        "notes_by_code": dict(sorted(Counter(n["code"] for n in notes).items())),
        "terminology": [s.to_dict() for s in terminology.sources],
    }


def _fields(d: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in d.items() if k != "evidence")


def facts_text(doc: dict[str, Any]) -> str:
    """The document as text: one line per fact with where it comes from, then what could not be used."""
    out = [f"{doc['source']} — facts at {doc['as_of']}", ""]
    for kind, items in doc["facts"].items():
        out.append(f"{kind} ({len(items)})")
        for d in items:
            ev = d.get("evidence") or []
            where = "; ".join(f"{e.get('resource')} {e.get('element')}" for e in ev[:2])
            out.append(f"  {_fields(d)}" + (f"   [{where}]" if where else ""))
    out += ["", f"Coded elements not understood ({len(doc['not_understood'])}): the facts that need them are unknown"]
    out += [
        f"  {n['code']}: {n.get('resource', '')} {n.get('element', '')}: {n['message']}" for n in doc["not_understood"]
    ]
    out += ["", f"Other data-quality notes ({len(doc['other_notes'])})"]
    out += [
        f"  {n['code']}: {n.get('resource', '')} {n.get('element', '')}: {n['message']}" for n in doc["other_notes"]
    ]
    out += ["", "Terminology: " + ", ".join(f"{s['file']} {s['version']}" for s in doc["terminology"])]
    return "\n".join(out) + "\n"
