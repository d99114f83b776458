"""The shipped JSON Schemas are the ones the models produce, and real results conform to them."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from mdtflag.api import Evaluator
from mdtflag.output.render import to_json
from mdtflag.evaluation.result import ResultModel

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
        ResultModel.model_validate(data)  # strict model: unknown keys and wrong types fail


def _model_of(annotation: object) -> object:
    """The output model inside ``Optional[list[X]]``, ``dict[str, X]``, … (or None for scalars)."""
    import typing

    from pydantic import BaseModel
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        got = _model_of(arg)
        if got is not None:
            return got
    return None


def _check_order(doc: object, model: object, path: str) -> None:
    """Every object of a result document has exactly its model's fields, in field order (the
    canonical JSON order), and is a read-only ``Doc``."""
    from mdtflag.evaluation.result import Doc
    if isinstance(doc, list):
        for i, item in enumerate(doc):
            _check_order(item, model, f"{path}[{i}]")
        return
    if not isinstance(doc, dict):
        return
    fields = model.model_fields  # type: ignore[attr-defined]
    names = [f.alias or n for n, f in fields.items()]
    assert list(doc) == names, f"{path}: keys {list(doc)} != fields {names}"
    assert isinstance(doc, Doc), path
    for (name, f), key in zip(fields.items(), names):
        sub = _model_of(f.annotation)
        value = doc[key]
        if sub is None or value is None:
            continue
        if isinstance(value, dict) and typing_is_mapping(f.annotation):
            for k, v in value.items():
                _check_order(v, sub, f"{path}.{key}.{k}")
        else:
            _check_order(value, sub, f"{path}.{key}")


def typing_is_mapping(annotation: object) -> bool:
    import typing
    return typing.get_origin(annotation) is dict


def test_result_documents_follow_the_model_field_order() -> None:
    ev = Evaluator(ROOT / "rules")
    for p in sorted((ROOT / "fhir_examples").glob("*.json"))[:12]:
        result = ev.evaluate(p, as_of="2026-11-01")
        _check_order(result, ResultModel, p.name)
        try:
            result.patient = "x"  # type: ignore[misc]
        except AttributeError:
            pass
        else:
            raise AssertionError("result documents must be read-only")
