"""Rule authoring: `rules check`, `rules test` (with coverage), `explain` and `rules diff`.

Built on tests/data/rules_min and tests/data/authoring (never the shipped clinical rules, which change).
Golden files live in tests/golden/authoring/; regenerate with `MDTFLAG_UPDATE_GOLDEN=1 python -m pytest`.
"""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT

from mdtflag.api import Evaluator
from mdtflag.authoring.check import check_ruleset
from mdtflag.authoring.coverage import possible_outcomes
from mdtflag.authoring.explain import blockers
from mdtflag.cli.main import main

MINI = "tests/data/rules_min"
AUTH = "tests/data/authoring"
AS_OF = "2026-11-01"


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """``mdtflag ARGS`` in-process, through the real entry point (exit codes included)."""
    capsys.readouterr()
    try:
        main(args)
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def at_root(monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(ROOT)
    return ROOT


def _codes(out: str) -> set[str]:
    return {d["code"] for d in json.loads(out)["diagnostics"]}


# ----------------------------------------------------------------------------- rules check


def test_check_lint_dir_golden(at_root: Path, capsys: pytest.CaptureFixture[str], golden: Any) -> None:
    code, out, _ = run_cli(["rules", "check", f"{AUTH}/lint"], capsys)
    assert code == 3
    golden("authoring/check_lint.txt", out)
    code, out, _ = run_cli(["rules", "check", f"{AUTH}/lint", "--format", "json"], capsys)
    assert code == 3
    golden("authoring/check_lint.json", out)
    data = json.loads(out)
    assert data["summary"]["errors"] == sum(d["severity"] == "error" for d in data["diagnostics"])
    assert all(
        {"code", "severity", "file", "line", "col", "message", "snippet", "help"} <= set(d) for d in data["diagnostics"]
    )


def test_check_reports_every_lint_and_test_code(at_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run_cli(["rules", "check", f"{AUTH}/lint", "--format", "json"], capsys)
    codes = _codes(out)
    lint = {f"L{n:03d}" for n in range(1, 15)}
    assert lint <= codes, sorted(lint - codes)
    assert {"T001", "T002", "T004", "T005", "T006", "T007", "S001", "S002", "S003", "C005"} <= codes
    # every diagnostic points into a file of the rule directory, at a real line
    for d in json.loads(out)["diagnostics"]:
        assert d["file"].startswith(f"{AUTH}/lint/") and d["line"] >= 1 and d["snippet"], d


def test_check_minimal_rules(at_root: Path, capsys: pytest.CaptureFixture[str], golden: Any) -> None:
    code, out, _ = run_cli(["rules", "check", MINI], capsys)
    assert code == 0  # warnings and notes only
    golden("authoring/check_min.txt", out)
    assert run_cli(["rules", "check", MINI, "--strict"], capsys)[0] == 3
    code, out, _ = run_cli(["rules", "check", MINI, "--severity", "error"], capsys)
    assert code == 0 and out.splitlines() == [f"{MINI}: 3 rules, profiles A, B", "0 errors, 5 warnings, 9 notes"]


def test_check_profiles_and_usage(at_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(["rules", "check", MINI, "--profile", "A", "--all-profiles"], capsys)[0] == 64
    code, out, err = run_cli(["rules", "check", MINI, "--profile", "Z", "--format", "json"], capsys)
    assert code == 64 and "unknown profile 'Z'; choose from A, B" in err  # a bad argument, not an invalid rule set
    code, out, _ = run_cli(["rules", "check", f"{AUTH}/lint", "--profile", "A", "--format", "json"], capsys)
    assert "C005" not in _codes(out)  # the parameter is missing from profile B only
    code, out, _ = run_cli(["rules", "check", "no/such/dir"], capsys)
    assert code == 3 and "F001" in out


def test_check_every_diagnostic_has_a_snippet_and_position(at_root: Path) -> None:
    report = check_ruleset(f"{AUTH}/lint")
    assert report.ruleset is not None and set(report.compiled) == {"A"} and report.profiles == ("A", "B")
    for d in report.diagnostics:
        assert d.pos.line >= 1 and d.pos.col >= 1 and d.snippet, d


# ----------------------------------------------------------------------------- rules test


def test_runner_passing_cases_with_coverage(at_root: Path, capsys: pytest.CaptureFixture[str], golden: Any) -> None:
    code, out, _ = run_cli(["rules", "test", f"{AUTH}/cases", "--rules", MINI, "--coverage"], capsys)
    assert code == 0, out
    golden("authoring/test_pass.txt", out)
    assert out.splitlines()[-1] == "5 passed, 0 failed"
    code, out, err = run_cli(["rules", "test", f"{AUTH}/cases", "--rules", MINI, "--fail-under", "90"], capsys)
    assert code == 1 and "below --fail-under 90" in err


def test_runner_failures_text_junit_json(
    at_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], golden: Any
) -> None:
    args = ["rules", "test", f"{AUTH}/failing", "--rules", MINI]
    code, out, _ = run_cli(args, capsys)
    assert code == 1
    golden("authoring/test_fail.txt", out)
    assert out.splitlines()[-1] == "1 passed, 2 failed"
    code, out, _ = run_cli(args + ["--format", "junit"], capsys)
    assert code == 1
    golden("authoring/test_fail.junit.xml", out)
    root = ET.fromstring(out)
    assert root.get("tests") == "3" and root.get("failures") == "2"
    code, out, _ = run_cli(args + ["--format", "json"], capsys)
    golden("authoring/test_fail.json", out)
    assert json.loads(out)["summary"] == {"passed": 1, "failed": 2, "invalid": False}
    xml_file = tmp_path / "junit.xml"
    code, out, _ = run_cli(args + ["--junit-xml", str(xml_file)], capsys)
    assert code == 1 and out.startswith("FAIL") and ET.parse(xml_file).getroot().get("failures") == "2"


def test_runner_keyword_filter(at_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(["rules", "test", f"{AUTH}/failing", "--rules", MINI, "-k", "passes"], capsys)
    assert code == 0 and out.splitlines() == [f"PASS passes ({AUTH}/failing/wrong.yaml:16)", "1 passed, 0 failed"]


def test_runner_invalid_test_files_exit_3(at_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(["rules", "test", f"{AUTH}/lint"], capsys)
    assert code == 3
    assert f"{AUTH}/lint/tests/bad.yaml:7:15: error[T001]: unknown rule 'L-TEXT'" in out
    assert "= help: did you mean 'L-TEXTS'?" in out
    assert "no test cases ran" in out  # every case of the file is invalid: none runs
    code, out, _ = run_cli(["rules", "test", f"{AUTH}/cases", "--rules", f"{AUTH}/missing-rules"], capsys)
    assert code == 64  # --rules must exist


def _project(tmp_path: Path) -> Path:
    """rules_min with a tests/ folder of its own, as `rules test DIR` expects."""
    rules = tmp_path / "rules"
    shutil.copytree(ROOT / MINI, rules)
    shutil.copytree(ROOT / AUTH / "cases", rules / "tests")
    shutil.copytree(ROOT / AUTH / "patients", rules / "patients")
    return rules


COVERAGE_YAML = """coverage:
  ignore:
    T-FIT:
      T-MEAS: {outcomes: [unknown], reason: "measurable disease is always assessed before referral"}
      T-ECOG: {outcomes: [met], reason: "an ignore that a case reaches anyway"}
"""


def test_coverage_ignores_need_reasons_and_go_stale(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], golden: Any
) -> None:
    rules = _project(tmp_path)
    monkeypatch.chdir(tmp_path)
    code, _before, _ = run_cli(["rules", "test", "rules", "--coverage"], capsys)
    assert code == 0
    (rules / "tests" / "coverage.yaml").write_text(COVERAGE_YAML, encoding="utf-8")
    code, out, _ = run_cli(["rules", "test", "rules", "--coverage"], capsys)
    assert code == 0
    golden("authoring/test_coverage_ignore.txt", out)
    assert "ignored but seen: T-FIT/T-ECOG:met" in out
    code, out, _ = run_cli(["rules", "test", "rules", "--coverage", "--format", "json"], capsys)
    cov = json.loads(out)["coverage"][0]
    assert cov["ignored"]["T-FIT/T-MEAS"]["reason"].startswith("measurable")
    assert "T-FIT/T-VAR:unknown" in cov["impossible"]  # a variant always has a gene; absent → not met
    assert cov["counted"] == 3 * cov["criteria"] - len(cov["impossible"]) - 2
    (rules / "tests" / "coverage.yaml").write_text(
        "coverage: {ignore: {T-FIT: {T-MEAS: [unknown]}}}\n", encoding="utf-8"
    )
    code, out, _ = run_cli(["rules", "test", "rules", "--coverage"], capsys)
    assert code == 3 and "T007" in out and "need a reason" in out
    code, out, _ = run_cli(["rules", "check", "rules"], capsys)
    assert code == 3 and "rules/tests/coverage.yaml:1:" in out


def test_possible_outcomes_by_construction() -> None:
    ev = Evaluator(ROOT / MINI)
    possible = possible_outcomes([ev.compiled("A"), ev.compiled("B")])
    assert possible[("T-FIT", "T-VAR")] == {"met", "not_met"}  # gene is required, absent → not met
    assert possible[("T-ADULT", "T-ADULT-AGE")] == {"met", "not_met", "unknown"}  # age needs a birth date
    assert possible[("T-FIT", "T-MEAS")] == {"met", "not_met", "unknown"}  # profile B: constant met; A: the leaf


# ----------------------------------------------------------------------------- explain


def test_explain_golden(at_root: Path, capsys: pytest.CaptureFixture[str], golden: Any) -> None:
    code, out, _ = run_cli(["explain", f"{AUTH}/patients/no-ecog.json", "--rules", MINI, "--as-of", AS_OF], capsys)
    assert code == 0
    golden("authoring/explain_no_ecog.txt", out)
    code, out, _ = run_cli(
        [
            "explain",
            f"{AUTH}/patients/kras-ecog3.json",
            "--rules",
            MINI,
            "--as-of",
            AS_OF,
            "--rule",
            "T-FIT",
            "--lang",
            "sv",
        ],
        capsys,
    )
    golden("authoring/explain_kras_sv.txt", out)
    code, out, _ = run_cli(
        [
            "explain",
            f"{AUTH}/patients/kras-ecog3.json",
            "--rules",
            MINI,
            "--as-of",
            AS_OF,
            "--rule",
            "T-FIT",
            "--format",
            "json",
        ],
        capsys,
    )
    golden("authoring/explain_kras.json", out)
    data = json.loads(out)
    fit = data["rules"][0]
    # not flagged: the row shown is the one closest to flagging (K-KRAS fails on ECOG only)
    assert fit["status"] == "not_flagged" and fit["row"] == "K-KRAS"
    assert [b["criterion"] for b in fit["blocked_by"]] == ["T-ECOG"]
    assert {o["key"]: o["blocked_by"] for o in fit["other_rows"]} == {"K-BRAF": ["T-ECOG", "T-VAR"]}
    assert fit["skipped_rows"] == ["K-OLD"]


def test_explain_test_case_and_errors(
    at_root: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path, golden: Any
) -> None:
    suite = f"{AUTH}/cases/suite.yaml"
    code, out, _ = run_cli(
        ["explain", suite, "--case", "child written inline is not applicable", "--rules", MINI], capsys
    )
    assert code == 0
    golden("authoring/explain_child_case.txt", out)
    assert out.startswith("Patient/c1 — as of 2026-11-01 — profile A")  # the case's own date
    assert run_cli(["explain", suite, "--rules", MINI], capsys)[0] == 64  # several cases, none chosen
    assert run_cli(["explain", suite, "--case", "nope", "--rules", MINI], capsys)[0] == 64
    code, _, err = run_cli(["explain", f"{AUTH}/patients/child.json", "--rules", MINI, "--rule", "T-FTI"], capsys)
    assert code == 64 and "did you mean 'T-FIT'" in err
    bad = tmp_path / "bad.json"
    bad.write_text("{", encoding="utf-8")
    code, _, err = run_cli(["explain", str(bad), "--rules", MINI], capsys)
    assert code == 2 and "not-json" in err
    assert run_cli(["explain", str(bad), "--rules", str(tmp_path)], capsys)[0] == 3


def test_blockers_report_an_any_as_a_whole(at_root: Path) -> None:
    """Below an `all` the not-met parts; an `any` that is not met is one blocker, not its children."""
    bundle = json.loads((ROOT / AUTH / "patients" / "fit-braf.json").read_text())
    for e in bundle["entry"]:
        if e["resource"]["id"] == "m1":
            e["resource"]["valueBoolean"] = False  # not measurable: T-MEAS (an any) is not met in profile A
    ev = Evaluator(ROOT / MINI)
    _result, _fs, evals = ev.run(
        __import__("mdtflag.fhir.load", fromlist=["load_bundle"]).load_bundle(bundle), AS_OF, "A"
    )
    fit = next(e for e in evals if e.rule.id == "T-FIT")
    assert fit.status == "not_flagged" and fit.best is not None
    found = [getattr(n.node, "id", None) for n, _ in blockers(fit.best.result, "not_met")]
    assert found == ["T-MEAS"]


# ----------------------------------------------------------------------------- rules diff


def _two_versions(tmp_path: Path) -> tuple[Path, Path]:
    old, new = tmp_path / "old", tmp_path / "new"
    shutil.copytree(ROOT / MINI, old)
    shutil.copytree(ROOT / MINI, new)
    prof = new / "profiles.yaml"
    prof.write_text(prof.read_text().replace("A: {ecog_max: 2,", "A: {ecog_max: 3,"), encoding="utf-8")
    uln = (new / "criteria" / "uln.yaml").read_text().replace("T-ULN", "T-ULN2").replace("T-BILI", "T-BILI2")
    (new / "criteria" / "uln.yaml").unlink()
    (new / "criteria" / "uln2.yaml").write_text(uln, encoding="utf-8")
    return old, new


def test_diff_golden(at_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], golden: Any) -> None:
    old, new = _two_versions(tmp_path)
    args = [
        "rules",
        "diff",
        str(old),
        str(new),
        "--cohort",
        f"{AUTH}/patients",
        f"{AUTH}/cases/suite.yaml",
        "--as-of",
        AS_OF,
    ]
    code, out, _ = run_cli(args, capsys)
    assert code == 0
    golden("authoring/diff.txt", out)
    code, out, _ = run_cli(args + ["--format", "json"], capsys)
    golden("authoring/diff.json", out)
    data = json.loads(out)
    assert data["rules_added"] == ["T-ULN2"] and data["rules_removed"] == ["T-ULN"]
    assert data["summary"] == {
        "patients": 8,
        "changed": 1,
        "unchanged": 7,
        "errors": 0,
        "changes_by_rule": {"T-FIT": 1},
    }
    change = data["patients"][0]["rules"][0]
    assert change["best_row"] == {"old": "K-BRAF", "new": "K-KRAS"}
    assert change["rows"] == [
        {
            "row": "K-KRAS",
            "old": "not_flagged",
            "new": "flagged",
            "criteria": [{"criterion": "T-ECOG", "old": "not_met", "new": "met"}],
        }
    ]


def test_diff_same_rules_and_bad_inputs(at_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "bad.json").write_text("[1", encoding="utf-8")
    code, out, _ = run_cli(["rules", "diff", MINI, MINI, "--cohort", str(tmp_path), "--as-of", AS_OF], capsys)
    assert code == 0 and out.splitlines()[-1] == "1 patients: 0 changed, 0 unchanged, 1 errors"
    assert "not-json" in out
    assert run_cli(["rules", "diff", MINI, MINI], capsys)[0] == 64


def _expect_file(tmp_path: Path, text: str, name: str = "x.expected.yaml") -> Path:
    shutil.copy(ROOT / AUTH / "patients" / "fit-braf.json", tmp_path / "p.json")
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "text, code, needle",
    [
        ("bundle: p.json\nas_of: 2026-11-01\nexpect: {rules: {T-FIT: flagged}}\n", 0, "PASS x"),
        ("bundle: p.json\nexpect: {rules: {T-FIT: flagged}}\n", 3, "T003"),
        ("bundle: p.json\nas_of: 2026-11-01\nprofile: Q\nexpect: {}\n", 3, "T002"),
        ("bundle: p.json\nresources: [{resourceType: Patient}]\nas_of: 2026-11-01\nexpect: {}\n", 3, "either 'bundle'"),
        ("resources: []\nas_of: 2026-11-01\nexpect: {}\n", 3, "at least 1 item"),
        (
            "bundle: p.json\nas_of: 2026-11-01\nexpect: {targets: {T-FIT: vastra}, suggested: {T-FIT: [BRAF]}}\n",
            3,
            "T005",
        ),
        ("bundle: p.json\nas_of: 2026-11-01\nexpect: {targets: {T-ADULT: sodra}}\n", 1, "expected sodra, got vastra"),
        (
            "bundle: p.json\nas_of: 2026-11-01\nexpect: {cohorts: {T-FIT: {K-KRAS: {failed: [T-ECOG]}}}}\n",
            1,
            "cohorts.T-FIT.K-KRAS.failed (line 3): expected [T-ECOG] among the row's failed, got [T-VAR]",
        ),
        ("bundle: p.json\nas_of: 2026-11-01\nexpect: {decisions: {mdk: {level: regional}}}\n", 3, "T006"),
        (
            "bundle: p.json\nas_of: 2026-11-01\nexpect: {criteria: {T-FIT: {T-ECOG: met}}, rules: {T-ULN: indeterminate}}\n",
            0,
            "PASS",
        ),
        ("[1, 2]\n", 3, "S001"),
        ("bundle: p.json\nas_of: 2026-11-01\nexpect: {rules: {T-FIT: flagged}}\nbundle: q.json\n", 3, "Y004"),
    ],
)
def test_test_file_validation(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, code: int, needle: str
) -> None:
    path = _expect_file(tmp_path, text)
    got, out, _ = run_cli(["rules", "test", str(path), "--rules", str(ROOT / MINI)], capsys)
    assert got == code and needle in out, out


def test_rule_directory_tests_and_shared_bundle_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = _project(tmp_path)
    monkeypatch.chdir(tmp_path)
    code, out, _ = run_cli(["rules", "check", "rules", "--severity", "error"], capsys)
    assert code == 0, out  # the copied tests validate against the rules
    (rules / "patients" / "no-ecog.json").write_text("{", encoding="utf-8")
    code, out, _ = run_cli(["rules", "test", "rules"], capsys)
    assert (
        code == 3
        and "ERROR no ECOG leaves the trial indeterminate" in out
        and "T004" in out
        and "the bundle cannot be read" in out
    )


def test_rule_directory_without_tests_has_zero_coverage(at_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(["rules", "test", MINI, "--coverage", "--fail-under", "1"], capsys)
    assert (
        code == 1
        and f"coverage of {MINI}: 0.0%" in out
        and "no test cases ran" in out
        and "below --fail-under 1" in err
    )
