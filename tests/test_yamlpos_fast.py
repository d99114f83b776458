"""Rule files read with libyaml's parser give what the pure-Python loader gives: data, positions, diagnostics."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from mdtflag.ruleset import yamlpos
from mdtflag.ruleset.diagnostics import Diagnostics

ROOT = Path(__file__).resolve().parent.parent
TESTS = Path(__file__).resolve().parent

pytestmark = pytest.mark.skipif(yamlpos._FAST_LOADER is None, reason="PyYAML built without libyaml")

sys.path.insert(0, str(TESTS))
from yaml_crosscheck import shape  # noqa: E402


def _both(text: str, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Any, bool]:
    """(libyaml path, pure loader, whether the libyaml path kept its own answer) through ``read_yaml``."""
    out = []
    for loader in (yamlpos._FAST_LOADER, None):
        monkeypatch.setattr(yamlpos, "_FAST_LOADER", loader)
        diags = Diagnostics()
        data = yamlpos.read_yaml(text, "f.yaml", diags)
        out.append((shape(data), [repr(d) for d in diags.sorted()]))
    monkeypatch.undo()
    kept = not yamlpos._PURE_ONLY.search(text) and yamlpos._read_fast(text, "f.yaml") is not yamlpos._FALLBACK
    return out[0], out[1], kept


def test_every_shipped_yaml_file_is_read_alike_and_mostly_by_libyaml(monkeypatch: pytest.MonkeyPatch) -> None:
    files = sorted(ROOT.glob("rules/**/*.yaml")) + sorted(ROOT.glob("tests/**/*.yaml"))
    assert len(files) > 20
    kept = 0
    for path in files:
        fast, pure, k = _both(path.read_text(encoding="utf-8"), monkeypatch)
        assert fast == pure, path
        kept += k
    assert kept >= 0.9 * len(files)  # the fast path is the one rule files take


@pytest.mark.parametrize(
    "text",
    [
        "a: [1, 2\n",
        "a: 1\n  b: 2\n",
        "",
        "~\n",
        "a: 1\na: 2\n",
        "<<: {a: 1}\n",
        "a: \x07\n",
        "d: 2026-13-45\n",
        "v: .nan\n",
        "k: &x {a: 1}\nm: *x\n",
        "m: *nope\n",
        "? [1]\n: 2\n",
        "a: 'é ü'\nb: [x, {c: d}]\n",
        "a:\t1\n",
        "- a\n- b: c\n",
        "!",
        "|#",
        "a: !!str 1\n",
        "a: !!python/object:os.system x\n",
        "%YAML 1.1\n---\na: 1\n",
        "a: >-#\n  x\n",
        "a: 1 # c\nb: |\n  x\n  y\n",
        "a: 1\r\nb:\r\n  - 2\r\n",
        "a: 1\rb: 2\r",
        "\ufeffa: 1\n",
        "a: x\u2028b: y\n",
        "a: 1\n---\nb: 2\n",
        "a: `x`\n",
        "a: @x\n",
        "'" + "k" * 1100 + "': 1\n",
        "[" * 70 + "]" * 70 + "\n",
        "a:\n" + "".join("  " * i + "- \n" for i in range(1, 80)),
        "a: \"\\x41\\u00e9\"\nb: 'it''s'\n",
        "a: 0o17\nb: 0x1F\nc: 1_000\nd: 1e3\ne: yes\nf: ~\n",
    ],
)
def test_malformed_and_edge_documents(text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    fast, pure, _ = _both(text, monkeypatch)
    assert fast == pure


def test_clean_document_takes_the_libyaml_path() -> None:
    """The fast path is used (so the comparisons above compare two readers, not one)."""
    text = "id: X\ncriteria:\n  all:\n    - {fact: lab, where: {code: '1'}}\n"
    assert yamlpos._read_fast(text, "f.yaml") is not yamlpos._FALLBACK
    assert yamlpos._read_fast("a: [1, 2\n", "f.yaml") is yamlpos._FALLBACK


_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.text(max_size=12),
    st.floats(allow_nan=False, allow_infinity=False),
    st.dates(),
)
_data = st.recursive(
    _scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(_data, st.sampled_from([None, True, False]), st.booleans(), st.integers(2, 6))
def test_random_documents(data: Any, flow: bool | None, unicode: bool, indent: int) -> None:
    """Documents as people and tools write them, in block and flow style: same data, positions, diagnostics."""
    text = yaml.safe_dump({"k": data, "l": [data]}, default_flow_style=flow, allow_unicode=unicode, indent=indent)
    mp = pytest.MonkeyPatch()
    fast, pure, _ = _both(text, mp)
    assert fast == pure


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ab:-[]{},'\"#&*|>?\n  \t!%.0~")), max_size=60))
def test_random_text(text: str) -> None:
    """Random, mostly malformed, text: the same answer and the same diagnostics at the same line:col."""
    mp = pytest.MonkeyPatch()
    fast, pure, _ = _both(text, mp)
    assert fast == pure


# every test of tests/ that reads rule files or rule test files, malformed ones included
_DIAGNOSTIC_TESTS = [
    "test_rule_files_hostile.py",
    "test_load.py",
    "test_fragments.py",
    "test_rulemodel.py",
    "test_authoring.py",
    "test_authoring_fuzz.py",
    "test_terminology.py",
    "test_hostile_text.py",
    "test_diagnostic_codes.py",
]


def test_diagnostic_tests_read_every_document_alike(tmp_path: Path) -> None:
    """The tests of malformed rule files (and every other test that reads YAML) run with each document
    read by both loaders: they pass, and no document the libyaml path keeps reads differently."""
    out = tmp_path / "crosscheck.json"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(TESTS)]),
        "MDTFLAG_YAML_CROSSCHECK_OUT": str(out),
    }
    env["MDTFLAG_NO_CACHE"] = "1"
    args = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "yaml_crosscheck", "-p", "no:cacheprovider"]
    run = subprocess.run(
        [*args, *(str(TESTS / t) for t in _DIAGNOSTIC_TESTS)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    seen = json.loads(out.read_text(encoding="utf-8"))
    assert seen["differences"] == []
    assert seen["fast"] > 100 and seen["handed_over"] > 10  # both paths were exercised
