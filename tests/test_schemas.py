"""The shipped JSON Schemas are the ones the models produce, and real results conform to them."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from mdtflag.api import Evaluator
from mdtflag.render import to_json
from mdtflag.result import Result

from conftest import ROOT

SCHEMAS = ROOT / "mdtflag" / "schemas"


def _cli_schema(which: str) -> dict:
    out = subprocess.run([sys.executable, "-m", "mdtflag.cli", "schema", which], capture_output=True, check=True, cwd=ROOT)
    return json.loads(out.stdout)


def _shape(obj: object) -> object:
    """The schema without prose: pydantic versions word descriptions slightly differently."""
    if isinstance(obj, dict):
        return {k: _shape(v) for k, v in obj.items() if k != "description"}
    if isinstance(obj, list):
        return [_shape(v) for v in obj]
    return obj


def test_shipped_schemas_are_current() -> None:
    for which in ("result", "rule"):
        shipped = json.loads((SCHEMAS / f"{which}.schema.json").read_text())
        assert _shape(shipped) == _shape(_cli_schema(which)), f"regenerate: mdtflag schema {which} > mdtflag/schemas/{which}.schema.json"
        assert shipped["$id"] == f"mdtflag.{which}/1"


def test_every_example_result_validates_against_the_result_model() -> None:
    ev = Evaluator(ROOT / "rules")
    for p in sorted((ROOT / "fhir_examples").glob("*.json")):
        data = json.loads(to_json(ev.evaluate(p, as_of="2026-11-01")))
        Result.model_validate(data)  # strict model: unknown keys and wrong types fail
