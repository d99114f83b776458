"""The shipped rule set (rules/) against the example bundles (fhir_examples/).

For every ``fhir_examples/NN-*.expected.yaml`` the bundle is evaluated through the public API and every
expectation in the file is checked. Expected files (all keys under ``expect`` optional):

    bundle: 01-....json
    as_of: 2026-11-01
    profile: FOCUSE_PROXY_MEGALIT
    expect:
      decisions: {mdk: {level: national, target_region: vastra, pending: [MDK-NAT-1]}}
      rules: {TRIAL-FOCUSE: flagged, HER-1: not_flagged}           # flag status
      criteria: {TRIAL-FOCUSE: {TRIAL-I4: met}}                   # reason outcome (the deciding row)
      cohorts: {TRIAL-FOCUSE: {K-BRAF-DT: flagged,                 # cohort status, or
                               K-HER2-TP: {status: not_flagged, failed: [TRIAL-E1], not_failed: [TRIAL-C1]}}}
      targets: {HER-1: vastra}                                     # routing region of a flag (null = unknown)
      suggested: {HER-1: [BRCA2]}                                  # keys of suggested codes

``failed``/``unknown`` are subsets of the cohort's lists; ``not_failed`` must not be in its failed list.
Every bundle must also validate as a FHIR R4B Bundle (fhir.resources).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from mdtflag.api import Evaluator

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "fhir_examples"
RULES = ROOT / "rules"
EXPECTED = sorted(EXAMPLES.glob("*.expected.yaml"))
BUNDLES = sorted(p for p in EXAMPLES.glob("*.json"))
STATUSES = {"flagged", "not_flagged", "indeterminate", "not_applicable"}
OUTCOMES = {"met", "not_met", "unknown"}


def _ids(paths: list[Path]) -> list[str]:
    return [p.name.split(".")[0] for p in paths]


@pytest.fixture(scope="module")
def evaluator() -> Evaluator:
    return Evaluator(RULES)


def _load(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as fh:
        doc = yaml.safe_load(fh)
    assert isinstance(doc, dict) and "bundle" in doc and "expect" in doc, f"{path.name}: needs 'bundle' and 'expect'"
    return doc


def test_enough_examples() -> None:
    assert len(EXPECTED) >= 30, f"only {len(EXPECTED)} expected files"
    stems = {p.name[: -len(".expected.yaml")] for p in EXPECTED}
    bundles = {p.stem for p in BUNDLES}
    assert stems == bundles, (
        f"bundles without expectations: {sorted(bundles - stems)}; "
        f"expectations without bundles: {sorted(stems - bundles)}"
    )
    for p in BUNDLES:
        assert re.match(r"^\d\d-[a-z0-9-]+\.json$", p.name), f"{p.name}: name must be NN-short-description.json"


@pytest.mark.parametrize("path", BUNDLES, ids=_ids(BUNDLES))
def test_bundle_is_valid_fhir_r4b(path: Path) -> None:
    from fhir.resources.R4B.bundle import Bundle

    data = json.loads(path.read_text(encoding="utf-8"))
    assert data.get("resourceType") == "Bundle" and data.get("type") == "collection"
    Bundle.model_validate(data)
    patients = [e["resource"] for e in data["entry"] if e["resource"]["resourceType"] == "Patient"]
    assert len(patients) == 1, f"{path.name}: exactly one Patient"


def _fmt(problems: list[str], name: str, text: str) -> str:
    return (
        f"{name}: {len(problems)} expectation(s) not met:\n  - "
        + "\n  - ".join(problems)
        + "\n--- result (text) ---\n"
        + text
    )


@pytest.mark.parametrize("path", EXPECTED, ids=_ids(EXPECTED))
def test_example_outcome(path: Path, evaluator: Evaluator) -> None:
    from mdtflag.output.render import to_text

    doc = _load(path)
    bundle = EXAMPLES / doc["bundle"]
    assert bundle.is_file(), f"{path.name}: bundle {doc['bundle']} not found"
    as_of = doc.get("as_of")
    as_of = as_of.isoformat() if isinstance(as_of, dt.date) else str(as_of)
    from mdtflag.fhir.load import load_bundle

    result, _, evals = evaluator.run(load_bundle(bundle), as_of, doc.get("profile"))
    # criterion outcomes from the evaluation itself: the result's reasons of a rule that did not fire
    # show only what blocked it
    tree = {e.rule.id: e for e in evals}
    expect = doc["expect"] or {}
    problems: list[str] = []

    for group, want in (expect.get("decisions") or {}).items():
        got = result.decisions.get(group)
        if got is None:
            problems.append(f"decision '{group}' missing")
            continue
        if "level" in want and got.level != want["level"]:
            problems.append(
                f"decision {group}: level {got.level!r}, expected {want['level']!r} (decided by {got.rules})"
            )
        if "target_region" in want:
            region = got.target.healthcare_region if got.target is not None else None
            if region != want["target_region"]:
                problems.append(f"decision {group}: target region {region!r}, expected {want['target_region']!r}")
        if "pending" in want:
            pending = sorted(p.rule for p in got.pending)
            if pending != sorted(want["pending"]):
                problems.append(f"decision {group}: pending {pending}, expected {sorted(want['pending'])}")

    for rule, status in (expect.get("rules") or {}).items():
        assert status in STATUSES, f"{path.name}: bad status {status!r} for {rule}"
        flag = result.flag(rule)
        if flag is None:
            problems.append(f"rule {rule} not in result")
        elif flag.status != status:
            problems.append(f"rule {rule}: {flag.status}, expected {status} — {flag.text.en}")

    for rule, crits in (expect.get("criteria") or {}).items():
        flag = result.flag(rule)
        if flag is None:
            problems.append(f"rule {rule} not in result")
            continue
        outcomes = {}
        for cid in crits:
            node = tree[rule].criterion(cid)
            if node is not None:
                outcomes[cid] = node.outcome
        for cid, outcome in crits.items():
            assert outcome in OUTCOMES, f"{path.name}: bad outcome {outcome!r} for {cid}"
            if outcomes.get(cid) != outcome:
                problems.append(f"{rule} criterion {cid}: {outcomes.get(cid)}, expected {outcome}")

    for rule, cohorts in (expect.get("cohorts") or {}).items():
        flag = result.flag(rule)
        got = {c.key: c for c in (flag.cohorts or [])} if flag is not None else {}
        for key, want in cohorts.items():
            c = got.get(key)
            if c is None:
                problems.append(f"{rule} cohort {key} not in result")
                continue
            want = {"status": want} if isinstance(want, str) else want
            if "status" in want and c.status != want["status"]:
                problems.append(
                    f"{rule} cohort {key}: {c.status}, expected {want['status']} "
                    f"(failed {c.failed}, unknown {c.unknown})"
                )
            for cid in want.get("failed", []):
                if cid not in c.failed:
                    problems.append(f"{rule} cohort {key}: {cid} expected among failed {c.failed}")
            for cid in want.get("unknown", []):
                if cid not in c.unknown:
                    problems.append(f"{rule} cohort {key}: {cid} expected among unknown {c.unknown}")
            for cid in want.get("not_failed", []):
                if cid in c.failed:
                    problems.append(f"{rule} cohort {key}: {cid} must not be failed")

    for rule, region in (expect.get("targets") or {}).items():
        flag = result.flag(rule)
        got_region = flag.target.healthcare_region if flag is not None and flag.target is not None else "<no target>"
        if got_region != region:
            problems.append(f"{rule}: target region {got_region!r}, expected {region!r}")

    for rule, keys in (expect.get("suggested") or {}).items():
        flag = result.flag(rule)
        got_keys = sorted(s.key for s in (flag.suggested_codes or [])) if flag is not None else []
        if got_keys != sorted(keys):
            problems.append(f"{rule}: suggested codes for {got_keys}, expected {sorted(keys)}")

    unresolved = sorted(set(_unresolved_placeholders(result.to_dict())))
    if unresolved:
        problems.append(f"unresolved text placeholders: {unresolved}")

    assert not problems, _fmt(problems, path.name, to_text(result, "en", detail=True))


def _unresolved_placeholders(node: Any) -> list[str]:
    """``{field}`` left in a text: the fact behind the outcome lacks the field (or the text names a wrong one)."""
    if isinstance(node, dict):
        return [x for v in node.values() for x in _unresolved_placeholders(v)]
    if isinstance(node, list):
        return [x for v in node for x in _unresolved_placeholders(v)]
    if isinstance(node, str):
        return [f"{m} in {node[:60]!r}" for m in re.findall(r"\{[A-Za-z_][A-Za-z0-9_.]*\}", node)]
    return []


def test_every_rule_reaches_every_status_across_examples(evaluator: Evaluator) -> None:
    """Coverage: each rule is flagged, not flagged and (where the rule can be) indeterminate in some example."""
    seen: dict[str, set[str]] = {}
    for path in EXPECTED:
        doc = _load(path)
        for rule, status in ((doc["expect"] or {}).get("rules") or {}).items():
            seen.setdefault(rule, set()).add(status)
    # Rules whose every leaf decides on present data (missing: not_met) cannot be indeterminate.
    never_unknown = {"F-ACT", "DQ-1", "DQ-2", "DQ-6", "DQ-7", "DQ-8", "DQ-9"}
    missing = []
    for rule in sorted(r.id for r in evaluator.ruleset.rules):
        want = {"flagged", "not_flagged"} | (set() if rule in never_unknown else {"indeterminate"})
        if not want <= seen.get(rule, set()):
            missing.append(f"{rule}: {sorted(want - seen.get(rule, set()))}")
    assert not missing, "statuses not covered by any expected file:\n  " + "\n  ".join(missing)


def test_shared_blocks_are_fragments_used_where_expected(evaluator: Evaluator) -> None:
    """The biomarker block and the on-label tumour block exist once, as fragments, and each rule that needs them uses them."""
    rs = evaluator.ruleset
    used_in = {name: sorted({p.file for p in uses}) for name, uses in rs.fragment_uses.items()}
    assert used_in == {
        "advanced-disease": [
            "criteria/dq/DQ-3.yaml",
            "criteria/dq/DQ-4.yaml",
            "criteria/mdk/MDK-NAT-1.yaml",
            "criteria/mdk/MDK-REG-1.yaml",
            "criteria/trial/TRIAL-FOCUSE.yaml",
        ],
        "biomarker-match": [
            "criteria/derived/F-ACT.yaml",
            "criteria/derived/F-ONLABEL-ANY.yaml",
            "criteria/mdk/MDK-NAT-1.yaml",
            "criteria/trial/TRIAL-FOCUSE.yaml",
        ],
        "on-label-tumour": ["criteria/derived/F-ONLABEL-ANY.yaml", "criteria/mdk/MDK-NAT-1.yaml"],
    }
    first = "{param: row.biomarker, equals: [BRAF-V600]}"  # the fragment's first branch is written nowhere else
    assert first in (RULES / "fragments" / "biomarker-match.yaml").read_text(encoding="utf-8")
    assert not [f for f in (RULES / "criteria").rglob("*.yaml") if first in f.read_text(encoding="utf-8")]


def test_biomarker_block_covers_every_biomarker_key() -> None:
    table = yaml.safe_load((RULES / "tables" / "biomarkers.yaml").read_text(encoding="utf-8"))
    text = (RULES / "fragments" / "biomarker-match.yaml").read_text(encoding="utf-8")
    gated = set()
    for m in re.finditer(r"param: row\.biomarker, equals: \[([^\]]*)\]", text):
        gated |= {k.strip() for k in m.group(1).split(",")}
    # MET-EX14 has no v1 fact field (biomarkers.yaml note); it cannot be matched.
    missing = {r["key"] for r in table["rows"]} - gated - {"MET-EX14"}
    assert not missing, f"biomarker keys without a branch in the biomarker block: {sorted(missing)}"


@pytest.mark.parametrize("profile", ["FOCUSE_PROXY_MEGALIT", "FINPROVE", "IMPRESS"])
def test_every_profile_keeps_every_open_cohort(profile: str, evaluator: Evaluator) -> None:
    table = evaluator.ruleset.tables["cohorts"]
    open_rows = [r["key"] for r in table.rows if r.get("state") != "closed"]
    crs = evaluator.compiled(profile)
    trial = next(cr for cr in crs.rules if cr.rule.id == "TRIAL-FOCUSE")
    assert [i.row["key"] for i in trial.instances] == open_rows


def test_example_is_profile_sensitive(evaluator: Evaluator) -> None:
    """FINPROVE reads 'Hb > 8.0 mmol/L' literally (128.9 g/L): example 01 (Hb 124 g/L) is eligible only under MEGALiT."""
    bundle = EXAMPLES / "01-cholangio-braf-v600e-focuse-eligible.json"
    assert evaluator.evaluate(bundle, as_of="2026-11-01").flag("TRIAL-FOCUSE").status == "flagged"
    fin = evaluator.evaluate(bundle, as_of="2026-11-01", profile="FINPROVE").flag("TRIAL-FOCUSE")
    assert fin.status == "not_flagged"
    assert "TRIAL-I6b" in next(c for c in fin.cohorts if c.key == "K-BRAF-DT").failed
