"""Text output cannot be forged: data never starts a line of its own or sends control sequences.

A patient id, resource id, test case name or rule set folder holding a newline, an ANSI escape, another
C0/C1 control or a bidirectional override reaches every text rendering (``evaluate --format text``,
``explain``, the ``rules test`` reporter, ``rules check``, the batch summary) escaped, as ``\\n``,
``\\x1b``, ``\\u202e``.
"""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
from pathlib import Path

import pytest
from conftest import ROOT
from hypothesis import given, settings
from hypothesis import strategies as st
from test_authoring import run_cli

from mdtflag.api import Evaluator
from mdtflag.errors import one_line
from mdtflag.evaluation.result import Result
from mdtflag.output.render import to_text
from mdtflag.ruleset.diagnostics import Diagnostic, Pos

EXAMPLE = ROOT / "fhir_examples" / "01-cholangio-braf-v600e-focuse-eligible.json"
MINI = ROOT / "tests" / "data" / "rules_min"
AS_OF = "2026-11-01"
FORGED = "p01\nDecision MDK: NONE \x1b[2J\x1b[31mred\u202eevil\x85\r"
#: what must never reach a text rendering: C0 except the line ends the renderer writes, DEL, C1, bidi, separators
UNSAFE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _forged_bundle(tmp_path: Path) -> Path:
    """The shipped example with a hostile Patient.id, the references to it and one Condition id."""
    bundle = json.loads(EXAMPLE.read_text(encoding="utf-8"))
    old = next(e["resource"]["id"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient")
    text = json.dumps(bundle).replace(json.dumps(f"Patient/{old}"), json.dumps(f"Patient/{FORGED}"))
    bundle = json.loads(text)
    for e in bundle["entry"]:
        if e["resource"]["resourceType"] == "Patient":
            e["resource"]["id"] = FORGED
        if e["resource"]["resourceType"] == "Condition":
            e["resource"]["id"] = "c\x1b]0;title\x07\nPASS"
            break
    path = tmp_path / "forged.json"
    path.write_text(json.dumps(bundle), encoding="utf-8")
    return path


def _assert_clean(text: str) -> None:
    assert not UNSAFE.search(text), repr(UNSAFE.search(text))
    assert "\r" not in text


def test_one_line_escapes_controls_and_keeps_the_rest() -> None:
    assert one_line("a\nb") == "a\\nb"
    assert one_line("\x1b[31m") == "\\x1b[31m"
    assert one_line("x\u202ey") == "x\\u202ey"
    assert one_line("\x85\x7f\t\r") == "\\x85\\x7f\\t\\r"
    assert one_line("Ålder ≥ 18 – ok") == "Ålder ≥ 18 – ok"


@given(st.text())
def test_one_line_is_one_safe_line(s: str) -> None:
    out = one_line(s)
    _assert_clean(out)
    assert "\n" not in out
    if not UNSAFE.search(s) and "\n" not in s and "\r" not in s:
        assert out == s


@pytest.fixture(scope="module")
def example_result() -> Result:
    return Evaluator(str(ROOT / "rules")).evaluate(str(EXAMPLE), as_of=AS_OF)


@settings(max_examples=60, deadline=None)
@given(st.text(min_size=1))
def test_text_has_the_same_lines_whatever_the_patient_id(example_result: Result, pid: str) -> None:
    plain = to_text(example_result)
    forged = to_text(Result({**example_result, "patient": f"Patient/{pid}"}))  # type: ignore[call-arg,arg-type]
    _assert_clean(forged)
    assert forged.count("\n") == plain.count("\n")
    assert forged.splitlines()[1:] == plain.splitlines()[1:]


def test_evaluate_text_cannot_print_a_forged_decision(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _forged_bundle(tmp_path)
    code, summary, _ = run_cli(["evaluate", str(path), "--as-of", AS_OF, "--format", "text", "--lang", "en"], capsys)
    assert code == 0
    _assert_clean(summary)
    levels = [line for line in summary.splitlines() if line.strip().startswith("MDT level:")]
    code, out, _ = run_cli(
        ["evaluate", str(path), "--as-of", AS_OF, "--format", "text", "--lang", "en", "--detail"], capsys
    )
    assert code == 0
    _assert_clean(out)
    decisions = [line for line in out.splitlines() if line.startswith("Decision ")]
    text_out = out
    code, out, _ = run_cli(["evaluate", str(path), "--as-of", AS_OF], capsys)
    result = json.loads(out)
    assert result["patient"] == f"Patient/{FORGED}"  # the JSON keeps the data as it is
    assert len(decisions) == 1 and decisions[0].startswith(
        f"Decision MDK: {result['decisions']['mdk']['level'].upper()}"
    )
    assert len(levels) == 1
    first = text_out.splitlines()[0]
    assert first.startswith("Patient/p01\\nDecision MDK: NONE \\x1b[2J\\x1b[31mred\\u202eevil\\x85\\r — ")


def test_explain_text_is_escaped(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _forged_bundle(tmp_path)
    code, out, _ = run_cli(["explain", str(path), "--rules", str(MINI), "--as-of", AS_OF], capsys)
    assert code == 0
    _assert_clean(out)
    assert not any(line.startswith("Decision ") for line in out.splitlines())
    assert out.startswith("Patient/p01\\nDecision MDK")


def test_rules_test_reporter_escapes_case_names_and_reasons(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bundle = _forged_bundle(tmp_path)
    cases = tmp_path / "cases"
    cases.mkdir()
    name = "forged\nPASS everything (x.yaml:1)\n0 failed\x1b[2K"
    (cases / "t.yaml").write_text(
        json.dumps(
            {
                "as_of": AS_OF,
                "cases": [{"name": name, "bundle": str(bundle), "expect": {"rules": {"T-ADULT": "not_applicable"}}}],
            }
        ),
        encoding="utf-8",
    )
    code, out, _ = run_cli(["rules", "test", str(cases), "--rules", str(MINI)], capsys)
    assert code == 1
    _assert_clean(out)
    lines = out.splitlines()
    assert lines[0].startswith("FAIL forged\\nPASS everything (x.yaml:1)\\n0 failed\\x1b[2K (")
    assert not any(line.startswith(("PASS", "0 failed")) for line in lines)
    assert lines[-1] == "0 passed, 1 failed"


def test_rules_check_escapes_the_folder_and_diagnostics(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rules = tmp_path / "r\nok\x1b[0m"
    shutil.copytree(MINI, rules)
    adult = rules / "criteria" / "adult.yaml"
    adult.write_text(
        adult.read_text(encoding="utf-8").replace("kind: mdk", 'kind: "mdk\\n0 errors\\x1b[2J"'), encoding="utf-8"
    )
    code, out, _ = run_cli(["rules", "check", str(rules)], capsys)
    assert code == 3
    _assert_clean(out)
    assert not any(line.startswith(("0 errors", "ok")) for line in out.splitlines())


def test_diagnostic_format_escapes_every_part() -> None:
    d = Diagnostic("S001", "error", "bad\nS001 fake", Pos("a\nb.yaml", 1, 2), snippet="x\x1b[31m", help="h\u202e")
    text = d.format()
    _assert_clean(text)
    assert text.splitlines() == [
        "a\\nb.yaml:1:2: error[S001]: bad\\nS001 fake",
        "    | x\\x1b[31m",
        "    = help: h\\u202e",
    ]


def test_batch_summary_cells_are_escaped(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bundle = _forged_bundle(tmp_path)
    summary = tmp_path / "summary.csv"
    code, _, err = run_cli(
        ["batch", str(bundle), "--as-of", AS_OF, "-o", str(tmp_path / "r.ndjson"), "--summary", str(summary)], capsys
    )
    assert code == 0, err
    text = summary.read_text(encoding="utf-8")
    _assert_clean(text)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(text.splitlines()) == 2 and len(rows) == 1
    assert rows[0]["patient"] == f"Patient/{one_line(FORGED)}"
