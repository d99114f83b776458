"""Hostile rule files: every one is a diagnostic with file:line:col in every command, never a traceback.

Deep nesting (500 ``not:``, 1,000 ``[``) is stopped while the YAML is composed; a number that is not
finite, a file that is only ``null``, a file that is not UTF-8, a criterion id used twice, two levels at one
decision rank and an engine limit each name the place. ``evaluate`` and ``batch`` refuse every rule set
``rules check`` rejects (exit 3) before reading any patient.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Callable

import pytest
from conftest import DATA, ROOT
from test_authoring import run_cli

from mdtflag.authoring.check import check_ruleset
from mdtflag.ruleset.diagnostics import Diagnostics
from mdtflag.ruleset.yamlpos import MAX_DEPTH, read_yaml

MINI = DATA / "rules_min"
PATIENT = str(DATA / "authoring" / "patients" / "fit-braf.json")
AS_OF = "2026-11-01"
ADULT_HEAD = (MINI / "criteria" / "adult.yaml").read_text(encoding="utf-8").split("criteria:")[0]


def _deep_not(root: Path) -> None:
    inner = "{fact: patient, test: {age: {gte: 18}}}"
    for _ in range(600):
        inner = "{not: " + inner + "}"
    (root / "criteria" / "adult.yaml").write_text(ADULT_HEAD + "criteria:\n  " + inner + "\n", encoding="utf-8")


def _brackets(root: Path) -> None:
    (root / "criteria" / "adult.yaml").write_text(ADULT_HEAD + "criteria: " + "[" * 1200 + "]" * 1200 + "\n")


def _nan(root: Path) -> None:
    p = root / "profiles.yaml"
    p.write_text(p.read_text(encoding="utf-8").replace("anc_min: 1.5", "anc_min: .nan"), encoding="utf-8")


def _inf(root: Path) -> None:
    p = root / "profiles.yaml"
    p.write_text(p.read_text(encoding="utf-8").replace("anc_min: 2.0", "anc_min: -.inf"), encoding="utf-8")


def _null(root: Path) -> None:
    (root / "criteria" / "uln.yaml").write_text("# nothing left\nnull\n", encoding="utf-8")


def _latin1(root: Path) -> None:
    p = root / "criteria" / "adult.yaml"
    p.write_bytes(p.read_text(encoding="utf-8").replace("Vuxen", "Ålder").encode("latin-1", errors="replace"))


def _dup_criterion(root: Path) -> None:
    p = root / "criteria" / "fit.yaml"
    p.write_text(p.read_text(encoding="utf-8").replace("id: T-ANC", "id: T-ECOG"), encoding="utf-8")


def _same_rank(root: Path) -> None:
    p = root / "criteria" / "adult.yaml"
    p.write_text(p.read_text(encoding="utf-8").replace("rank: 3", "rank: 1"), encoding="utf-8")


def _engine_limit(root: Path) -> None:
    codes = ", ".join(f"C{i // 10:02d}.{i % 10}" for i in range(700))
    leaf = "  - fact: diagnosis\n    test: {icd10: {in: [" + codes + "]}}\n"
    (root / "criteria" / "big.yaml").write_text(
        ADULT_HEAD.replace("T-ADULT", "T-BIG").replace("rank: 3", "rank: 4") + "criteria:\n  all:\n" + leaf,
        encoding="utf-8",
    )


#: name → (how to break the rule directory, code, file, line, col)
CASES: dict[str, tuple[Callable[[Path], None], str, str, int, int]] = {
    "600 nested not": (_deep_not, "Y005", "criteria/adult.yaml", 12, 4 + 6 * (MAX_DEPTH - 1)),
    "1200 [": (_brackets, "Y005", "criteria/adult.yaml", 11, 11 + MAX_DEPTH),
    "NaN": (_nan, "Y003", "profiles.yaml", 8, 29),
    "-Inf": (_inf, "Y003", "profiles.yaml", 9, 29),
    "null file": (_null, "Y002", "criteria/uln.yaml", 2, 1),
    "latin-1": (_latin1, "F002", "criteria/adult.yaml", 3, 13),
    "duplicate criterion id": (_dup_criterion, "L006", "criteria/fit.yaml", 22, 7),
    "same rank": (_same_rank, "S008", "criteria/fit.yaml", 7, 11),
    "engine limit": (_engine_limit, "C010", "criteria/big.yaml", 14, 12),
}


@pytest.fixture(params=sorted(CASES))
def broken(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, str, str, int, int]:
    make, code, file, line, col = CASES[request.param]
    root = tmp_path / "rules"
    shutil.copytree(MINI, root)
    make(root)
    return root, code, file, line, col


def test_rules_check_names_the_place(broken: tuple[Path, str, str, int, int]) -> None:
    root, code, file, line, col = broken
    report = check_ruleset(root)
    got = [(d.pos.file, d.pos.line, d.pos.col) for d in report.diagnostics if d.code == code]
    assert (file, line, col) in got, [d.format() for d in report.diagnostics if d.severity == "error"]


@pytest.mark.parametrize(
    "command",
    [
        ["rules", "check", "{root}"],
        ["evaluate", PATIENT, "--rules", "{root}", "--as-of", AS_OF],
        ["evaluate", PATIENT, "--rules", "{root}", "--as-of", AS_OF, "--format", "text"],
        ["batch", PATIENT, "--rules", "{root}", "--as-of", AS_OF, "-o", "{out}"],
        ["explain", PATIENT, "--rules", "{root}", "--as-of", AS_OF],
        ["rules", "test", str(DATA / "authoring" / "cases"), "--rules", "{root}"],
    ],
    ids=lambda c: " ".join(c[:2]),
)
def test_every_command_refuses_with_the_diagnostic(
    broken: tuple[Path, str, str, int, int], capsys: pytest.CaptureFixture[str], tmp_path: Path, command: list[str]
) -> None:
    root, code, file, line, col = broken
    out_file = tmp_path / "out.ndjson"
    args = [a.format(root=root, out=out_file) for a in command]
    exit_code, out, err = run_cli(args, capsys)
    text = out + err
    assert "Traceback" not in text and "RecursionError" not in text
    # `explain` and `rules test` load the rule set without lint: a duplicate id is a finding of `rules check`
    lint_only = code == "L006" and (command[0] == "explain" or command[:2] == ["rules", "test"])
    if not lint_only:
        assert exit_code == 3, text
        assert re.search(rf"{re.escape(file)}:{line}:{col}: error\[{code}\]", text), text
    assert not out_file.exists() or out_file.read_bytes() == b""


def test_evaluate_refuses_lint_errors_before_reading_the_patient(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "rules"
    shutil.copytree(MINI, root)
    _dup_criterion(root)
    code, out, err = run_cli(["evaluate", str(tmp_path / "no-such-patient.json"), "--rules", str(root)], capsys)
    assert code == 3 and out == "" and "error[L006]" in err and "no such file" not in err


def test_a_profile_failing_to_compile_is_refused_even_when_another_is_used(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "rules"
    shutil.copytree(MINI, root)
    p = root / "profiles.yaml"
    p.write_text(p.read_text(encoding="utf-8").replace("anc_min: 2.0", "anc_min: many"), encoding="utf-8")
    code, _, err = run_cli(["evaluate", PATIENT, "--rules", str(root), "--profile", "A", "--as-of", AS_OF], capsys)
    assert code == 3 and "error[C003]" in err


def test_the_shipped_rules_pass_and_evaluate(capsys: pytest.CaptureFixture[str]) -> None:
    example = str(ROOT / "fhir_examples" / "01-cholangio-braf-v600e-focuse-eligible.json")
    code, out, err = run_cli(["evaluate", example, "--rules", str(ROOT / "rules"), "--as-of", AS_OF], capsys)
    assert code == 0, err
    assert '"level": "national"' in out


@pytest.mark.parametrize("depth", [MAX_DEPTH, MAX_DEPTH + 1, 500, 5000])
def test_depth_limit_applies_while_composing(depth: int) -> None:
    diags = Diagnostics()
    data = read_yaml("a: " + "[" * depth + "]" * depth + "\n", "f.yaml", diags)
    if depth <= MAX_DEPTH:
        assert data is not None and not diags.items
    else:
        assert data is None and [d.code for d in diags.items] == ["Y005"]
        assert diags.items[0].pos.line == 1 and diags.items[0].pos.col == 4 + MAX_DEPTH
