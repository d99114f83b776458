"""Terminology as FHIR data: loading and checking the files, the shipped maps, a site's own maps on top
(``--terminology`` / ``MDTFLAG_TERMINOLOGY``), the rule set digest, and ``mdtflag facts``."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mdtflag.api import Evaluator
from mdtflag.fhir.facts.codes import ATC, HGNC_ID, ICD10, MARKER, RXNORM, SNOMED, UNITS
from mdtflag.fhir.facts.terminology import PROVENANCE_SYSTEM, default_terminology, read_terminology_files
from mdtflag.ruleset.diagnostics import RuleSetError
from mdtflag.ruleset.load import read_ruleset

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "rules"
EXAMPLE = ROOT / "fhir_examples" / "01-cholangio-braf-v600e-focuse-eligible.json"
TAG = {"tag": [{"system": PROVENANCE_SYSTEM, "code": "site"}]}


def _map(source: str, target: str, code: str, to: str, **extra: object) -> dict[str, object]:
    res: dict[str, object] = {
        "resourceType": "ConceptMap",
        "url": "urn:site:map",
        "version": "1",
        "date": "2026-12-01",
        "publisher": "a site",
        "meta": TAG,
        "group": [
            {
                "source": source,
                "target": target,
                "element": [{"code": code, "target": [{"code": to, "equivalence": "equivalent"}]}],
            }
        ],
    }
    res.update(extra)
    return res


def test_every_shipped_file_is_used_with_its_provenance() -> None:
    terms, problems = read_terminology_files(
        (p.name, p.read_bytes()) for p in sorted((RULES / "terminology").glob("*.json"))
    )
    assert problems == []
    assert {s.file for s in terms.sources} == {p.name for p in (RULES / "terminology").glob("*.json")}
    assert all(s.version and s.date and s.publisher and s.provenance and s.entries > 0 for s in terms.sources)


@pytest.mark.parametrize(
    "source,code,target,expected",
    [
        (SNOMED, "363418001", ICD10, "C25.9"),  # malignant tumour of pancreas
        (SNOMED, "94222008", ICD10, "C79.5"),  # secondary malignant neoplasm of bone
        (SNOMED, "82711006", "http://terminology.hl7.org/codesystem/icd-o-3", "8500/3"),
        (RXNORM, "1736854", ATC, "L01XA01"),  # cisplatin
        (RXNORM, "84857", ATC, "L02BG03"),  # anastrozole
        (SNOMED, "108761006", ATC, "L01BC06"),  # capecitabine (product)
        ("http://loinc.org", "18474-7", MARKER, "HER2"),
        ("http://loinc.org", "40556-3", MARKER, "ER"),
    ],
)
def test_shipped_maps(source: str, code: str, target: str, expected: str) -> None:
    assert default_terminology().map_one(source, code, target) == expected


def test_shipped_code_properties() -> None:
    t = default_terminology()
    assert t.prop(HGNC_ID, "HGNC:3467", "display") == "ESR1"
    assert (t.prop(UNITS, "10*3/uL", "canonical"), t.prop(UNITS, "10*3/uL", "factor")) == ("10*9/L", "1")
    assert t.prop("http://loinc.org", "38483-4", "analyte") == "creatinine"
    assert t.map(SNOMED, "126906006", ICD10) == ()  # looked at, no target: stays unknown


@pytest.mark.parametrize(
    "broken,message",
    [
        ({"version": None}, "version is required"),
        ({"meta": {}}, "provenance tag"),
        ({"resourceType": "NamingSystem"}, "is not one of"),
        ({"group": [{"source": SNOMED}]}, "source and target"),
    ],
)
def test_a_broken_resource_is_refused_whole(broken: dict[str, object], message: str) -> None:
    res = dict(_map(SNOMED, ICD10, "1", "C00"))
    res.update(broken)
    terms, problems = read_terminology_files([("x.json", json.dumps(res).encode())])
    assert terms.sources == () and any(message in str(p) for p in problems)


def test_rules_check_reports_a_broken_terminology_file(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    shutil.copytree(RULES, rules)
    (rules / "terminology" / "bad.json").write_text(json.dumps(_map(SNOMED, ICD10, "1", "C00", date=None)))
    rs, diags = read_ruleset(rules)
    assert rs is None and any(d.code == "S009" and d.pos.file == "terminology/bad.json" for d in diags)


def test_the_digest_counts_the_terminology(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    shutil.copytree(RULES, rules)
    before = read_ruleset(rules)[0]
    (rules / "terminology" / "site.json").write_text(json.dumps(_map(RXNORM, ATC, "1", "L01XA01")))
    after = read_ruleset(rules)[0]
    assert before is not None and after is not None and before.digest != after.digest


def test_a_site_map_replaces_and_adds_entries_and_changes_the_digest(tmp_path: Path) -> None:
    (tmp_path / "site.json").write_text(json.dumps(_map(RXNORM, ATC, "99999999", "L01XE01")))
    plain, site = Evaluator(), Evaluator(terminology=tmp_path)
    assert plain.ruleset.terminology.map_one(RXNORM, "99999999", ATC) is None
    assert site.ruleset.terminology.map_one(RXNORM, "99999999", ATC) == "L01XE01"
    assert site.ruleset.terminology.map_one(RXNORM, "1736854", ATC) == "L01XA01"  # shipped entries stay
    assert site.ruleset.digest != plain.ruleset.digest


def test_a_broken_site_folder_is_a_rule_set_error(tmp_path: Path) -> None:
    with pytest.raises(RuleSetError):
        Evaluator(terminology=tmp_path / "absent")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(RuleSetError):
        Evaluator(terminology=tmp_path)


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mdtflag.cli", *args], cwd=ROOT, capture_output=True, text=True, timeout=120, env=env
    )


def test_facts_command_lists_facts_and_what_could_not_be_used(tmp_path: Path) -> None:
    bundle = json.loads(EXAMPLE.read_text(encoding="utf-8"))
    bundle["entry"].append(
        {
            "resource": {
                "resourceType": "MedicationStatement",
                "id": "m-unknown",
                "status": "active",
                "subject": {"reference": "Patient/p01"},
                "medicationCodeableConcept": {"coding": [{"system": RXNORM, "code": "99999999"}]},
            }
        }
    )
    path = tmp_path / "b.json"
    path.write_text(json.dumps(bundle))
    out = _cli("facts", str(path), "--as-of", "2026-11-01", "--format", "json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["schema"] == "mdtflag.facts/1" and doc["counts"]["diagnosis"] >= 1
    (note,) = [n for n in doc["not_understood"] if n["resource"] == "MedicationStatement/m-unknown"]
    assert note["code"] == "unmapped-code" and "99999999" in note["message"]
    assert any(m.get("atc") is None for m in doc["facts"]["medication"])
    # a site map given with --terminology identifies the drug
    site = tmp_path / "site"
    site.mkdir()
    (site / "m.json").write_text(json.dumps(_map(RXNORM, ATC, "99999999", "L01XE01")))
    out = _cli("facts", str(path), "--as-of", "2026-11-01", "--format", "json", "--terminology", str(site))
    doc = json.loads(out.stdout)
    assert not [n for n in doc["not_understood"] if n["resource"] == "MedicationStatement/m-unknown"]
    assert "L01XE01" in {m.get("atc") for m in doc["facts"]["medication"]}
    text = _cli("facts", str(path), "--as-of", "2026-11-01").stdout
    assert "Coded elements not understood" in text and "diagnosis (" in text
