"""Rule files → immutable model; every error has file:line:col (golden messages)."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mdtflag.ruleset.diagnostics import RuleSetError
from mdtflag.ruleset.model import FactLeaf, load_ruleset, read_ruleset
from mdtflag.ruleset.schema import rule_json_schema
from mdtflag.ruleset.yamlpos import read_yaml
from mdtflag.ruleset.diagnostics import Diagnostics

from conftest import DATA

MINI = DATA / "rules_min"


def _with_rule(tmp_path: Path, text: str, name: str = "x.yaml") -> Path:
    root = tmp_path / "rules"
    shutil.copytree(MINI, root)
    (root / "criteria" / name).write_text(text, encoding="utf-8")
    return root


def test_mini_ruleset_loads_with_positions() -> None:
    rs = load_ruleset(MINI)
    assert [r.id for r in rs.rules] == ["T-ADULT", "T-FIT", "T-ULN"]
    fit = rs.rule("T-FIT")
    assert fit is not None
    ecog = fit.criteria.all[0]
    assert isinstance(ecog, FactLeaf)
    assert (ecog.pos.file, ecog.pos.line) == ("criteria/fit.yaml", 15)
    assert rs.digest.startswith("sha256:") and len(rs.digest) == 71


def test_digest_changes_with_content(tmp_path: Path) -> None:
    root = tmp_path / "r"
    shutil.copytree(MINI, root)
    d1 = load_ruleset(root).digest
    p = root / "criteria" / "uln.yaml"
    p.write_text(p.read_text().replace("lt: 2.0", "lt: 2.5"))
    assert load_ruleset(root).digest != d1


def test_model_is_immutable() -> None:
    rs = load_ruleset(MINI)
    with pytest.raises(Exception):
        rs.rules[0].id = "OTHER"  # type: ignore[misc]


BAD = """id: X-1
version: 1.0
title: {sv: a, en: b}
kind: trial
tag: DA
sources: [x]
texts: {flagged: {sv: a, en: b}}
criteria:
  all:
    - fact: ecog
      tset: {value: 1}
    - fakt: ecog
    - fact: lab
      test: {value: {lt: 1, gt: 2}}
    - rule: T-ADULT
"""


def test_schema_errors_golden(tmp_path: Path, golden) -> None:
    root = _with_rule(tmp_path, BAD)
    rs, diags = read_ruleset(root)
    assert rs is None
    golden("rulemodel_schema_errors.txt", "\n".join(d.format() for d in diags) + "\n")


@pytest.mark.parametrize(
    "text, code, line",
    [
        ("id: [unclosed\n", "Y001", 2),
        ("", "Y002", 1),
        ("id: A\nid: B\n", "Y004", 2),
        ("a: &x [1]\nb: {<<: *x}\n", "Y004", 2),
        ("- just\n- a list\n", "S001", 1),
    ],
)
def test_yaml_level_errors(tmp_path: Path, text: str, code: str, line: int) -> None:
    root = _with_rule(tmp_path, text)
    rs, diags = read_ruleset(root)
    assert rs is None
    assert any(d.code == code and d.pos.line == line and d.pos.file == "criteria/x.yaml" for d in diags), [d.format() for d in diags]


def test_duplicate_rule_id(tmp_path: Path) -> None:
    root = _with_rule(tmp_path, (MINI / "criteria" / "uln.yaml").read_text(), "dup.yaml")
    with pytest.raises(RuleSetError) as e:
        load_ruleset(root)
    assert any(d.code == "S005" and "T-ULN" in d.message for d in e.value.diagnostics)


def test_missing_directory() -> None:
    rs, diags = read_ruleset("/nonexistent/rules")
    assert rs is None and diags[0].code == "F001"


def test_rule_json_schema_has_no_internal_keys() -> None:
    text = str(rule_json_schema())
    assert "__pos__" not in text and "mdtflag.rule/1" in text


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(max_size=300))
def test_yaml_reader_never_raises(text: str) -> None:
    d = Diagnostics()
    read_yaml(text, "f.yaml", d)  # problems become diagnostics, never exceptions
    for item in d.items:
        assert item.pos.file == "f.yaml"
