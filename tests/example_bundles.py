"""Helpers for tests that change a shipped example bundle and evaluate it (one copy, shared)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mdtflag import Evaluator
from mdtflag.output.render import to_json

EXAMPLES = Path(__file__).resolve().parent.parent / "fhir_examples"
AS_OF = "2026-11-01"
FOCUSE = "01-cholangio-braf-v600e-focuse-eligible.json"  # adult, ECOG 1 (p01-obs11), haemoglobin 124 g/L
EV = Evaluator()
Bundle = dict[str, Any]


def example(name: str = FOCUSE) -> Bundle:
    data: Bundle = json.loads((EXAMPLES / name).read_text(encoding="utf-8"))
    return data


def resource(b: Bundle, rid: str) -> dict[str, Any]:
    for e in b["entry"]:
        if e["resource"].get("id") == rid:
            r: dict[str, Any] = e["resource"]
            return r
    raise KeyError(rid)


def run(b: Bundle | bytes, as_of: str = AS_OF) -> dict[str, Any]:
    """The result document, as JSON data."""
    out: dict[str, Any] = json.loads(to_json(EV.evaluate(b, as_of=as_of)))
    return out


def status(doc: dict[str, Any]) -> dict[str, str]:
    return {f["rule"]: f["status"] for f in doc["flags"]}


def notes(doc: dict[str, Any], code: str | None = None) -> list[dict[str, Any]]:
    return [n for n in doc["data_quality"] if code is None or n["code"] == code]
