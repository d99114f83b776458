"""Fuzzing the authoring tools: any rule file or test file text gives diagnostics, never a traceback or a hang.

Random text and mutated copies of valid files (tests/data/rules_min, tests/data/authoring/cases) are
written into a rule directory, then `rules check` and `rules test` run in-process under a time limit.
``MDTFLAG_FUZZ_SCALE=N`` runs N times as many examples.
"""

from __future__ import annotations

import contextlib
import faulthandler
import os
import re
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import DATA
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mdtflag.authoring.check import check_ruleset, render_json, render_text
from mdtflag.authoring.reporters import render_junit
from mdtflag.authoring.reporters import render_text as render_tests
from mdtflag.authoring.runner import run_tests

MINI = DATA / "rules_min"
CASES = DATA / "authoring" / "cases"
LIMIT_S = 10
CODE = re.compile(r"^[A-Z]\d{3}$")
TARGETS = ["criteria/fit.yaml", "criteria/adult.yaml", "profiles.yaml", "tables/cohorts.yaml", "valuesets/lung.yaml"]
TOKENS = [
    "all:",
    "any:",
    "not:",
    "- fact: ecog",
    "fact: nope",
    "param: ecog_max",
    "{param: row.genes}",
    "{param: row.nope}",
    "{valueset: lung}",
    "{valuesets: {param: row.on_label}}",
    "lookup: {table: cohorts, match: key, column: genes}",
    "latest: true",
    "max_age_days: -1",
    "missing: met",
    "test: {value: {lte: 2}}",
    "test: {value: {in: []}}",
    "equals: [1, 2]",
    "id: T-ECOG",
    "id: lower",
    "text: {sv: '{x}', en: '{p.y}'}",
    "rule: T-FIT",
    "status: [flagged]",
    "criterion: T-ECOG",
    "outcome: [met]",
    "null",
    "~",
    "[]",
    "{}",
    "&a [1]",
    "*a",
    "<<: {}",
    "!!python/object:x {}",
    "'\\x00'",
    "1e400",
    "2026-02-30x",
    "0x1F",
    "- - -",
    ": :",
    "'",
    '"',
    "\t",
    "   ",
    "key: K-OLD",
    "state: closed",
]


@contextlib.contextmanager
def time_limit(seconds: int) -> Iterator[None]:
    """A hang fails the test: SIGALRM in Python code, faulthandler as the backstop for a hang in C."""

    def expire(signum: int, frame: object) -> None:
        raise TimeoutError(f"took longer than {seconds} s")

    old = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    faulthandler.dump_traceback_later(seconds * 3, exit=True)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
        faulthandler.cancel_dump_traceback_later()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fuzz") / "rules"
    shutil.copytree(MINI, root)
    (root / "tests").mkdir()
    shutil.copytree(DATA / "authoring" / "patients", root / "patients")
    return root


def _restore(root: Path) -> None:
    for rel in TARGETS:
        shutil.copy(MINI / rel, root / rel)
    for f in (root / "criteria").glob("fuzz*.yaml"):
        f.unlink()
    for f in (root / "tests").glob("*.yaml"):
        f.unlink()


def _assert_reported(root: Path) -> None:
    with time_limit(LIMIT_S):
        report = check_ruleset(root)
        render_text([report])
        render_json([report])
    for d in report.diagnostics:
        assert CODE.match(d.code) and d.severity in ("error", "warning", "info") and d.pos.file, d
    if report.ruleset is None:
        assert any(d.severity == "error" for d in report.diagnostics)


@st.composite
def mutated(draw: st.DrawFn, text: str) -> str:
    lines = text.splitlines()
    for _ in range(draw(st.integers(1, 3))):
        if not lines:
            break
        i = draw(st.integers(0, len(lines) - 1))
        op = draw(st.sampled_from(["delete", "duplicate", "swap", "token", "indent", "truncate", "replace_value"]))
        if op == "delete":
            del lines[i]
        elif op == "duplicate":
            lines.insert(i, lines[i])
        elif op == "swap":
            j = draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
        elif op == "token":
            indent = len(lines[i]) - len(lines[i].lstrip())
            lines.insert(i, " " * indent + draw(st.sampled_from(TOKENS)))
        elif op == "indent":
            lines[i] = " " * draw(st.integers(0, 8)) + lines[i].lstrip()
        elif op == "truncate":
            lines[i] = lines[i][: draw(st.integers(0, len(lines[i])))]
        else:
            head, sep, _ = lines[i].partition(": ")
            lines[i] = head + (sep or ": ") + draw(st.sampled_from(TOKENS))
    return "\n".join(lines) + "\n"


#: MDTFLAG_FUZZ_SCALE=20 runs twenty times as many examples (for a longer local run).
SCALE = max(1, int(os.environ.get("MDTFLAG_FUZZ_SCALE", "1")))
FUZZ = settings(
    max_examples=60 * SCALE,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@FUZZ
@given(text=st.text(max_size=400))
def test_random_rule_file_text(workdir: Path, text: str) -> None:
    _restore(workdir)
    (workdir / "criteria" / "fuzz.yaml").write_text(text, encoding="utf-8")
    _assert_reported(workdir)


@settings(FUZZ, max_examples=150 * SCALE)
@given(data=st.data())
def test_mutated_valid_rule_files(workdir: Path, data: st.DataObject) -> None:
    _restore(workdir)
    rel = data.draw(st.sampled_from(TARGETS))
    (workdir / rel).write_text(data.draw(mutated((MINI / rel).read_text(encoding="utf-8"))), encoding="utf-8")
    _assert_reported(workdir)


def _run_tests(root: Path) -> None:
    with time_limit(LIMIT_S):
        run = run_tests([str(root)], coverage=True)
        render_tests(run)
        render_junit(run)
    for d in run.diagnostics:
        assert CODE.match(d.code) and d.pos.file, d


@settings(FUZZ, max_examples=80 * SCALE)
@given(data=st.data())
def test_mutated_and_random_test_files(workdir: Path, data: st.DataObject) -> None:
    _restore(workdir)
    source = data.draw(st.sampled_from(["suite.yaml", "01-kras-ecog3.expected.yaml", "random"]))
    if source == "random":
        text = data.draw(st.text(max_size=300))
    else:
        original = (CASES / source).read_text(encoding="utf-8")  # bundles: ../patients/, as in workdir
        text = data.draw(mutated(original))
    (workdir / "tests" / "case.yaml").write_text(text, encoding="utf-8")
    _run_tests(workdir)
    _assert_reported(workdir)  # `rules check` validates the rule directory's test files too


def test_impossible_yaml_date_is_a_diagnostic() -> None:
    from mdtflag.ruleset.diagnostics import Diagnostics
    from mdtflag.ruleset.yamlpos import read_yaml

    diags = Diagnostics()
    assert read_yaml("date: 2026-13-45\n", "f.yaml", diags) is None or diags.items
    assert any(d.code == "Y003" for d in diags.items)


# ----------------------------------------------------------------------------- hostile rule files
# Deep nesting (past the recursion limit of a recursive YAML composer), numbers that are not finite,
# documents that are only null, and encodings other than UTF-8: diagnostics with file:line:col only.

NON_FINITE = [".nan", ".NaN", ".inf", "-.inf", "+.Inf", ".INF"]
NULLS = ["null", "~", "Null", "NULL", "null\n...\n", "--- null\n", "# only a comment\nnull\n"]


def _nested(draw: st.DrawFn) -> str:
    depth = draw(st.integers(65, 3000))
    style = draw(st.sampled_from(["not", "brackets", "braces", "block", "mixed"]))
    if style == "not":
        return "criteria:\n  " + "{not: " * depth + "{fact: patient, test: {age: {gte: 18}}}" + "}" * depth + "\n"
    if style == "brackets":
        return "id: " + "[" * depth + "]" * draw(st.integers(0, depth)) + "\n"
    if style == "braces":
        return "id: " + "{a: " * depth + "1" + "}" * depth + "\n"
    if style == "block":
        depth = min(depth, 400)
        return "".join("  " * i + "not:\n" for i in range(depth)) + "  " * depth + "fact: patient\n"
    return "criteria: " + "".join(draw(st.sampled_from(["[", "{a: ", "{not: [", "- "])) for _ in range(depth)) + "\n"


@st.composite
def hostile_rule_text(draw: st.DrawFn) -> bytes:
    base = (MINI / "criteria" / "adult.yaml").read_text(encoding="utf-8")
    kind = draw(st.sampled_from(["nested", "non-finite", "null", "encoding"]))
    if kind == "nested":
        return _nested(draw).encode()
    if kind == "non-finite":
        return base.replace("rank: 3", f"rank: {draw(st.sampled_from(NON_FINITE))}").encode()
    if kind == "null":
        return draw(st.sampled_from(NULLS)).encode()
    text = base.replace("Vuxen", draw(st.sampled_from(["Vuxen åäö", "Ålder ≥ 18", "\u00c4lder"])))
    codec = draw(st.sampled_from(["latin-1", "utf-16", "utf-16-le", "utf-32", "cp1252"]))
    raw = text.encode(codec, errors="replace")
    if draw(st.booleans()):  # a bad byte at a random place
        i = draw(st.integers(0, len(raw)))
        raw = raw[:i] + bytes([draw(st.integers(0x80, 0xFF))]) + raw[i:]
    return raw


@settings(FUZZ, max_examples=60 * SCALE)
@given(raw=hostile_rule_text(), target=st.sampled_from(["criteria/adult.yaml", "profiles.yaml", "criteria/fuzz.yaml"]))
def test_hostile_rule_files_are_diagnostics(workdir: Path, raw: bytes, target: str) -> None:
    _restore(workdir)
    (workdir / target).write_bytes(raw)
    _assert_reported(workdir)


@settings(FUZZ, max_examples=40 * SCALE)
@given(
    value=st.sampled_from(NON_FINITE),
    param=st.sampled_from(["ecog_max", "anc_min", "min_age_years", "ecog_max_age_days"]),
)
def test_non_finite_profile_values_are_y003_at_the_value(workdir: Path, value: str, param: str) -> None:
    _restore(workdir)
    text = (MINI / "profiles.yaml").read_text(encoding="utf-8")
    line_no, line = next((n, x) for n, x in enumerate(text.splitlines(), 1) if x.strip().startswith("A:"))
    col = line.index(f"{param}: ") + len(param) + 3
    new = re.sub(rf"(A: \{{.*?{param}: )[^,}}]+", rf"\g<1>{value}", text, count=1)
    (workdir / "profiles.yaml").write_text(new, encoding="utf-8")
    report = check_ruleset(workdir)
    y003 = [d for d in report.diagnostics if d.code == "Y003"]
    assert [(d.pos.file, d.pos.line, d.pos.col) for d in y003] == [("profiles.yaml", line_no, col)]
    assert report.ruleset is None
