"""The typed result documents (``…Doc``, ``Result``) and the models that define the format agree."""
from __future__ import annotations

import typing
from pathlib import Path

import pytest

from mdtflag.api import Evaluator
from mdtflag.evaluation.result import DOC_MODELS, Doc, FlagDoc, Result, ResultModel, TextDoc

ROOT = Path(__file__).resolve().parent.parent


def _optional(annotation: object) -> bool:
    return type(None) in typing.get_args(annotation)


@pytest.mark.parametrize("doc", list(DOC_MODELS), ids=lambda c: c.__name__)
def test_each_document_class_has_its_models_fields_in_order(doc: type[Doc]) -> None:
    model = DOC_MODELS[doc]
    hints = typing.get_type_hints(doc)
    names = [f.alias or n for n, f in model.model_fields.items()]
    assert list(hints) == names
    for (_, f), name in zip(model.model_fields.items(), names):
        assert _optional(hints[name]) == _optional(f.annotation), f"{doc.__name__}.{name}"


def test_every_model_of_the_format_has_a_document_class() -> None:
    def parts(model: type[object]) -> set[type[object]]:
        out = {model}
        for f in model.model_fields.values():  # type: ignore[attr-defined]
            for arg in _flatten(f.annotation):
                if isinstance(arg, type) and hasattr(arg, "model_fields") and arg not in out:
                    out |= parts(arg)
        return out

    assert parts(ResultModel) == set(DOC_MODELS.values())


def _flatten(annotation: object) -> list[object]:
    out = [annotation]
    for arg in typing.get_args(annotation):
        out += _flatten(arg)
    return out


def test_documents_are_read_only_records() -> None:
    t = TextDoc(sv="ja", en="yes")
    assert t.sv == "ja" and t["en"] == "yes" and list(t) == ["sv", "en"]
    with pytest.raises(AttributeError):
        t.sv = "nej"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        t.de  # type: ignore[attr-defined]  # noqa: B018


def test_an_evaluation_returns_a_result_document() -> None:
    result = Evaluator(ROOT / "rules").evaluate(ROOT / "fhir_examples" / "01-cholangio-braf-v600e-focuse-eligible.json", as_of="2026-11-01")
    assert isinstance(result, Result)
    ResultModel.model_validate(result)
    assert all(isinstance(f, FlagDoc) for f in result.flags)
    first = result.flags[0]
    assert result.flag(first.rule) is first
    assert result.flag("no-such-rule") is None
    assert result.to_dict() is result
