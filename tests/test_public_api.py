"""The public surface of ``mdtflag``: exactly these names, with their real types, and one exception root."""

from __future__ import annotations

import datetime as dt
import importlib
import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT
from hypothesis import given
from hypothesis import strategies as st

import mdtflag
import mdtflag.api
import mdtflag.cli
import mdtflag.cli.common
import mdtflag.errors
import mdtflag.evaluation.result
import mdtflag.ruleset.diagnostics
from mdtflag import (
    Evaluator,
    InputError,
    MdtflagError,
    Result,
    RuleSetError,
    UnknownProfileError,
    UsageError,
)

MINI = ROOT / "tests" / "data" / "rules_min"
EXAMPLE = ROOT / "fhir_examples" / "01-cholangio-braf-v600e-focuse-eligible.json"

EXPORTED = [
    "Diagnostic",
    "ErrorResult",
    "Evaluator",
    "InputError",
    "MdtflagError",
    "Result",
    "RuleSetError",
    "UnknownProfileError",
    "UsageError",
    "__version__",
    "evaluate",
]

#: Where each exported name is defined: ``mdtflag.X`` is that very object.
HOME = {
    "Diagnostic": "mdtflag.ruleset.diagnostics",
    "ErrorResult": "mdtflag.evaluation.result",
    "Evaluator": "mdtflag.api",
    "InputError": "mdtflag.errors",
    "MdtflagError": "mdtflag.errors",
    "Result": "mdtflag.evaluation.result",
    "RuleSetError": "mdtflag.ruleset.diagnostics",
    "UnknownProfileError": "mdtflag.api",
    "UsageError": "mdtflag.errors",
    "__version__": "mdtflag._version",
    "evaluate": "mdtflag.api",
}

#: Modules that are part of the public interface: each declares ``__all__``, and every name in it exists.
PUBLIC_MODULES = ["mdtflag", "mdtflag.api", "mdtflag.errors", "mdtflag.cli", "mdtflag.cli.common"]


def test_exported_names_are_exactly_these() -> None:
    assert mdtflag.__all__ == EXPORTED
    assert sorted(EXPORTED) == EXPORTED


@pytest.mark.parametrize("name", EXPORTED)
def test_each_export_is_the_object_from_its_home_module(name: str) -> None:
    assert getattr(mdtflag, name) is getattr(importlib.import_module(HOME[name]), name)


def test_no_lazy_module_getattr() -> None:
    # names are bound at import time, so a type checker sees the real classes and functions
    assert "__getattr__" not in vars(mdtflag)
    assert all(name in vars(mdtflag) for name in EXPORTED)


@pytest.mark.parametrize("module", PUBLIC_MODULES)
def test_public_modules_declare_all(module: str) -> None:
    mod = importlib.import_module(module)
    names = vars(mod).get("__all__")
    assert isinstance(names, list) and names, f"{module} has no __all__"
    missing = [n for n in names if not hasattr(mod, n)]
    assert not missing, f"{module}.__all__ names what it does not define: {missing}"
    assert len(set(names)) == len(names)


def test_package_is_marked_typed() -> None:
    assert (Path(mdtflag.__file__).parent / "py.typed").is_file()


def test_one_exception_root() -> None:
    for cls in (InputError, RuleSetError, UsageError, UnknownProfileError):
        assert issubclass(cls, MdtflagError)
    assert issubclass(MdtflagError, Exception) and not issubclass(MdtflagError, ValueError)
    assert issubclass(UsageError, ValueError)  # a bad argument, as it always was
    assert issubclass(UnknownProfileError, UsageError) and issubclass(UnknownProfileError, RuleSetError)


def test_result_is_the_document_an_evaluation_returns() -> None:
    result = Evaluator(MINI).evaluate(EXAMPLE, as_of="2026-11-01")
    assert type(result) is Result and isinstance(result, dict)
    assert result["schema"] == "mdtflag.result/1"
    assert mdtflag.evaluation.result.ResultModel.model_validate(result).patient == result.patient


def test_bad_as_of_is_a_usage_error() -> None:
    ev = Evaluator(MINI)
    with pytest.raises(UsageError, match="as_of must be a date YYYY-MM-DD, got '2026-13-01'"):
        ev.evaluate(EXAMPLE, as_of="2026-13-01")
    with pytest.raises(ValueError):
        ev.evaluate(EXAMPLE, as_of="yesterday")


def test_bad_validate_mode_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="validate must be"):
        Evaluator(MINI).evaluate(EXAMPLE, validate="some")  # type: ignore[arg-type]


def test_unknown_profile_is_a_usage_error_that_names_the_choices() -> None:
    with pytest.raises(UnknownProfileError) as e:
        Evaluator(MINI, profile="NOPE")
    assert e.value.profile == "NOPE" and e.value.choices == ["A", "B"]
    assert [d.code for d in e.value.diagnostics] == ["C005"] and "unknown profile 'NOPE'" in str(e.value)
    ev = Evaluator(MINI)
    with pytest.raises(UsageError):
        ev.evaluate(EXAMPLE, as_of="2026-11-01", profile="NOPE")
    with pytest.raises(RuleSetError):  # what callers caught before UsageError existed
        ev.compiled("NOPE")


def test_bad_input_and_bad_rules_are_mdtflag_errors(tmp_path: Path) -> None:
    with pytest.raises(MdtflagError) as e:
        Evaluator(MINI).evaluate(b"{not json", as_of="2026-11-01")
    assert isinstance(e.value, InputError) and e.value.code == "not-json"
    broken = tmp_path / "rules"
    shutil.copytree(MINI, broken)
    (broken / "ruleset.yaml").write_text("id: [unclosed\n", encoding="utf-8")
    with pytest.raises(MdtflagError) as e:
        Evaluator(broken)
    assert isinstance(e.value, RuleSetError) and e.value.diagnostics


def test_evaluate_function_uses_the_given_rules() -> None:
    one = mdtflag.evaluate(json.loads(EXAMPLE.read_bytes()), rules=MINI, as_of="2026-11-01")
    assert one == Evaluator(MINI).evaluate(EXAMPLE, as_of="2026-11-01")


def test_shipped_example_bundle_is_the_first_fhir_example() -> None:
    # the package carries one example patient for `mdtflag example`; it must not drift from its source
    assert mdtflag.api.example_bundle().read_bytes() == EXAMPLE.read_bytes()


@given(st.text(max_size=20))
def test_parse_date_gives_a_date_or_a_usage_error(text: str) -> None:
    try:
        expected: Any = dt.date.fromisoformat(text)
    except ValueError:
        expected = UsageError
    if expected is UsageError:
        with pytest.raises(UsageError):
            mdtflag.api.parse_date(text)
    else:
        assert mdtflag.api.parse_date(text) == expected


@given(st.dates())
def test_parse_date_round_trips(day: dt.date) -> None:
    assert mdtflag.api.parse_date(day.isoformat()) == day == mdtflag.api.parse_date(day)


@pytest.mark.skipif(
    shutil.which("mypy") is None and importlib.util.find_spec("mypy") is None,
    reason="mypy is not installed (pip install -e '.[test]')",
)
def test_type_checker_sees_the_real_types(tmp_path: Path) -> None:
    snippet = tmp_path / "use.py"
    snippet.write_text(
        "from mdtflag import Evaluator, Result, evaluate\n"
        "reveal_type(Evaluator)\nreveal_type(evaluate)\n"
        "def f(ev: Evaluator) -> Result:\n    return ev.evaluate(b'')\n",
        encoding="utf-8",
    )
    r = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--follow-imports=silent", "--no-error-summary", str(snippet)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )
    assert 'Revealed type is "def (rules:' in r.stdout, r.stdout
    assert "mdtflag.api.Evaluator" in r.stdout and "mdtflag.evaluation.result.Result" in r.stdout
    assert "error:" not in r.stdout, r.stdout
