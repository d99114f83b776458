"""Rule fragments: a shared criteria block in fragments/<name>.yaml, used in rules as {use: NAME}."""
from __future__ import annotations

import shutil
from pathlib import Path

from conftest import DATA
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mdtflag.authoring.check import check_ruleset, render_json, render_text
from mdtflag.ruleset.model import AnyNode, FactLeaf, NotNode, read_ruleset
from mdtflag.ruleset.schema import rule_json_schema
from mdtflag.ruleset.walk import criterion_ids

MINI = DATA / "rules_min"

RULE = """id: T-FRAG
version: 1.0.0
title: {sv: Frag, en: Frag}
kind: trial
tag: DA
sources: [test]
texts:
  flagged: {sv: a, en: a}
criteria:
  all:
    - id: T-FRAG-A
      text: {sv: "Melanom", en: "Melanoma"}
      use: %s
    - not: {use: %s}
"""

FRAGMENT = """id: %s
title: {sv: Melanom, en: Melanoma}
criterion:
  any:
    - {fact: diagnosis, where: {active: true}, test: {icd10_3: {in: {valueset: melanoma}}}, missing: not_met}
    - %s
"""

LEAF = "{fact: ecog, latest: true, test: {value: {lte: 1}}}"


def _rules(tmp_path: Path, fragments: dict[str, str], rule: str) -> Path:
    root = tmp_path / "rules"
    shutil.copytree(MINI, root)
    (root / "fragments").mkdir()
    for name, text in fragments.items():
        (root / "fragments" / f"{name}.yaml").write_text(text, encoding="utf-8")
    (root / "criteria" / "frag.yaml").write_text(rule, encoding="utf-8")
    return root


def _copied(tmp_path: Path) -> Path:
    """The same rule with the fragment written out in both places."""
    block = ("any:\n        - {fact: diagnosis, where: {active: true}, test: {icd10_3: {in: {valueset: melanoma}}}, missing: not_met}\n"
             f"        - {LEAF}")
    text = RULE.split("criteria:")[0] + (
        "criteria:\n  all:\n    - id: T-FRAG-A\n      text: {sv: \"Melanom\", en: \"Melanoma\"}\n      " + block.replace("\n        ", "\n        ")
        + "\n    - not:\n        " + block.replace("\n        ", "\n          ") + "\n")
    root = tmp_path / "copied"
    shutil.copytree(MINI, root)
    (root / "criteria" / "frag.yaml").write_text(text, encoding="utf-8")
    return root


def test_a_use_is_the_fragment_with_the_id_and_texts_written_beside_it(tmp_path: Path) -> None:
    root = _rules(tmp_path, {"mel": FRAGMENT % ("mel", LEAF)}, RULE % ("mel", "mel"))
    rs, diags = read_ruleset(root)
    assert rs is not None, [d.format() for d in diags]
    rule = rs.rule("T-FRAG")
    assert rule is not None
    first, second = rule.criteria.all  # type: ignore[union-attr]
    assert isinstance(first, AnyNode) and first.id == "T-FRAG-A" and first.text is not None and first.text.en == "Melanoma"
    assert isinstance(second, NotNode) and isinstance(second.not_, AnyNode) and second.not_.id is None
    leaf = first.any[0]
    assert isinstance(leaf, FactLeaf)
    # nodes from the fragment keep the fragment's position and where it was used
    assert (leaf.pos.file, leaf.pos.line) == ("fragments/mel.yaml", 5)
    assert [str(v) for v in leaf.pos.via] == ["criteria/frag.yaml:11:7"]
    assert criterion_ids(rule) == ["T-FRAG-A"]
    assert dict(rs.fragment_uses) == {"mel": tuple(rs.fragment_uses["mel"])} and len(rs.fragment_uses["mel"]) == 2
    assert "fragments/mel.yaml" in rs.sources


def test_a_use_equals_the_block_copied_in(tmp_path: Path) -> None:
    used, _ = read_ruleset(_rules(tmp_path, {"mel": FRAGMENT % ("mel", LEAF)}, RULE % ("mel", "mel")))
    copied, diags = read_ruleset(_copied(tmp_path))
    assert used is not None and copied is not None, [d.format() for d in diags]
    a, b = used.rule("T-FRAG"), copied.rule("T-FRAG")
    assert a is not None and b is not None
    assert a.model_dump() == b.model_dump()
    assert used.digest != copied.digest


def test_error_inside_a_fragment_names_the_fragment_and_each_use(tmp_path: Path) -> None:
    bad = "{fact: ecog, latest: true, test: {valu: {lte: 1}}}"
    root = _rules(tmp_path, {"mel": FRAGMENT % ("mel", bad)}, RULE % ("mel", "mel"))
    report = check_ruleset(root)
    errors = [d for d in report.diagnostics if d.severity == "error"]
    assert errors and all(d.code == "C002" and d.pos.file == "fragments/mel.yaml" and d.pos.line == 6 for d in errors)
    assert sorted(str(d.pos.via[0]) for d in errors) == ["criteria/frag.yaml:11:7", "criteria/frag.yaml:14:12"]
    text = render_text([report])
    assert f"{root}/fragments/mel.yaml:6:" in text and f"= used at {root}/criteria/frag.yaml:11:7" in text
    data = render_json([report])
    assert {tuple(d["used_at"]) for d in data["diagnostics"] if d["code"] == "C002"} == {
        (f"{root}/criteria/frag.yaml:11:7",), (f"{root}/criteria/frag.yaml:14:12",)}


def test_schema_error_inside_a_fragment_is_placed_in_the_fragment(tmp_path: Path) -> None:
    bad = "{fact: ecog, latest: maybe}"
    root = _rules(tmp_path, {"mel": FRAGMENT % ("mel", bad)}, RULE % ("mel", "mel"))
    rs, diags = read_ruleset(root)
    assert rs is None
    s001 = [d for d in diags if d.code == "S001"]
    assert s001 and {d.pos.file for d in s001} == {"fragments/mel.yaml"} and all(d.pos.via for d in s001)


def test_unknown_fragment_cycle_and_unused_fragment(tmp_path: Path) -> None:
    root = _rules(tmp_path, {"mel": FRAGMENT % ("mel", LEAF)}, RULE % ("mle", "mel"))
    rs, diags = read_ruleset(root)
    assert rs is None
    [unknown] = [d for d in diags if d.code == "S006"]
    assert (unknown.pos.file, unknown.pos.line) == ("criteria/frag.yaml", 11) and "did you mean 'mel'" in unknown.help

    cyc = {"a": FRAGMENT % ("a", "{use: b}"), "b": FRAGMENT % ("b", "{use: a}")}
    rs, diags = read_ruleset(_rules(tmp_path / "c", cyc, RULE % ("a", "a")))
    assert rs is None
    assert any(d.code == "S007" and "a → b → a" in d.message for d in diags)

    spare = {"mel": FRAGMENT % ("mel", LEAF), "spare": FRAGMENT % ("spare", LEAF)}
    report = check_ruleset(_rules(tmp_path / "u", spare, RULE % ("mel", "mel")))
    assert report.count("error") == 0, [d.format() for d in report.diagnostics]
    [unused] = [d for d in report.diagnostics if d.code == "L015"]
    assert unused.severity == "warning" and unused.pos.file == "fragments/spare.yaml"


def test_an_unused_fragment_is_still_checked(tmp_path: Path) -> None:
    frags = {"mel": FRAGMENT % ("mel", LEAF), "spare": FRAGMENT % ("spare", "{fact: nosuch}")}
    rs, diags = read_ruleset(_rules(tmp_path, frags, RULE % ("mel", "mel")))
    # an unknown fact kind is found when compiling; the schema of the unused fragment is checked when reading
    assert rs is not None
    frags["spare"] = FRAGMENT % ("spare", "{fact: ecog, min_count: 0}")
    rs, diags = read_ruleset(_rules(tmp_path / "2", frags, RULE % ("mel", "mel")))
    assert rs is None and any(d.pos.file == "fragments/spare.yaml" and not d.pos.via for d in diags)


def test_only_id_and_texts_may_stand_beside_use(tmp_path: Path) -> None:
    rule = (RULE % ("mel", "mel")).replace("      use: mel", "      use: mel\n      latest: true")
    rs, diags = read_ruleset(_rules(tmp_path, {"mel": FRAGMENT % ("mel", LEAF)}, rule))
    assert rs is None
    assert any(d.code == "S002" and "'latest' beside 'use'" in d.message for d in diags)


def test_rule_schema_knows_use() -> None:
    schema = rule_json_schema()
    assert schema["$defs"]["FragmentUse"]["required"] == ["use"]
    assert {"$ref": "#/$defs/FragmentUse"} in schema["properties"]["criteria"]["oneOf"]
    assert {"$ref": "#/$defs/FragmentUse"} in schema["$defs"]["AllNode"]["properties"]["all"]["items"]["oneOf"]
    assert set(schema["$defs"]["Fragment"]["required"]) == {"id", "title", "criterion"}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(depth=st.integers(min_value=1, max_value=4))
def test_nested_uses_record_the_whole_chain(tmp_path_factory: object, depth: int) -> None:
    """f0 uses f1 … uses f{depth}; a leaf at the bottom carries every use site, nearest first."""
    tmp = tmp_path_factory.mktemp("nest")  # type: ignore[attr-defined]
    frags = {f"f{i}": FRAGMENT % (f"f{i}", f"{{use: f{i + 1}}}") for i in range(depth)}
    frags[f"f{depth}"] = FRAGMENT % (f"f{depth}", LEAF)
    rs, diags = read_ruleset(_rules(tmp, frags, RULE % ("f0", "f0")))
    assert rs is not None, [d.format() for d in diags]
    rule = rs.rule("T-FRAG")
    assert rule is not None
    node = rule.criteria.all[0]  # type: ignore[union-attr]
    for _ in range(depth):
        node = node.any[1]
    leaf = node.any[1]
    assert isinstance(leaf, FactLeaf) and leaf.pos.file == f"fragments/f{depth}.yaml"
    assert [v.file for v in leaf.pos.via] == [f"fragments/f{i}.yaml" for i in reversed(range(depth))] + ["criteria/frag.yaml"]
