"""The fact package's single sources: the schema derived from the models, one engine encoding, and
the county -> region map taken from the rule set's regions table only."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Optional

import pytest
from conftest import ROOT
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from mdtflag.api import Evaluator
from mdtflag.compile.compiler import compile_ruleset
from mdtflag.fhir.facts import FACT_MODELS, FACT_SCHEMA, FactBase, extract_facts
from mdtflag.fhir.facts.encoding import ENCODERS, ENGINE_TYPE, EPOCH, encode_constant, encode_value
from mdtflag.fhir.facts.extract import HANDLERS
from mdtflag.fhir.facts.models import schema_of
from mdtflag.fhir.load import load_bundle
from mdtflag.fhir.regions import COUNTIES, HALLAND_MUNICIPALITIES, RegionMap, region_map
from mdtflag.ruleset.load import load_ruleset
from mdtflag.ruleset.model import Target

RULES = load_ruleset(ROOT / "rules")
REGIONS = RULES.tables["regions"]

# The field table as it was written by hand before it was derived from the models: the derivation
# must give exactly this (kinds, fields, order and types).
WRITTEN_SCHEMA = {
    "patient": {
        "age": "int",
        "sex": "str",
        "deceased": "bool",
        "county": "str",
        "municipality": "str",
        "healthcare_region": "str",
    },
    "diagnosis": {
        "icd10": "str",
        "icd10_3": "str",
        "snomed": "str",
        "icdo3_topography": "str",
        "morphology": "str",
        "cancer": "bool",
        "secondary": "bool",
        "metastasis_site": "str",
        "active": "bool",
        "confirmed": "bool",
        "histology_confirmed": "bool",
        "onset": "date",
        "onset_days_ago": "int",
        "age_at_onset": "int",
    },
    "extent": {"value": "str", "source": "str", "date": "date"},
    "ecog": {"value": "int", "date": "date", "age_days": "int", "derived": "bool"},
    "performance": {"scale": "str", "value": "int", "date": "date", "age_days": "int"},
    "lab": {
        "analyte": "str",
        "value": "decimal",
        "unit": "str",
        "uln": "decimal",
        "x_uln": "decimal",
        "date": "date",
        "age_days": "int",
    },
    "pregnancy": {"status": "str", "source": "str", "date": "date", "age_days": "int"},
    "variant": {
        "gene": "str",
        "present": "bool",
        "protein": "str",
        "cdna": "str",
        "change_type": "str",
        "copy_number": "decimal",
        "cn_change": "str",
        "fusion_partner": "str",
        "origin": "str",
        "significance": "str",
        "vaf": "decimal",
        "date": "date",
    },
    "tmb": {"value": "decimal", "interpretation": "str", "date": "date"},
    "msi": {"status": "str", "date": "date"},
    "ihc": {"marker": "str", "result": "str", "score": "str", "value": "decimal", "date": "date"},
    "genomic_report": {
        "assay": "str",
        "broad": "bool",
        "final": "bool",
        "has_performer": "bool",
        "date": "date",
        "age_days": "int",
    },
    "medication": {
        "atc": "str",
        "atc_class": "str",
        "atc_group": "str",
        "status": "str",
        "current": "bool",
        "prior": "bool",
        "start": "date",
        "start_days_ago": "int",
        "end_days_ago": "int",
    },
    "trial_candidacy": {"status": "str", "phase": "str", "study": "str"},
    "assertion": {
        "code": "str",
        "value": "str",
        "flag": "bool",
        "date": "date",
        "age_days": "int",
        "since_days": "int",
    },
    "family_history": {
        "relationship": "str",
        "degree": "int",
        "icd10": "str",
        "icd10_3": "str",
        "snomed": "str",
        "onset_age": "int",
    },
}


# ---------------------------------------------------------------------------------- models, schema


def test_schema_derived_from_models_is_the_written_one() -> None:
    assert {k: dict(v) for k, v in FACT_SCHEMA.items()} == WRITTEN_SCHEMA
    assert list(FACT_SCHEMA) == list(WRITTEN_SCHEMA)
    assert all(list(FACT_SCHEMA[k]) == list(WRITTEN_SCHEMA[k]) for k in WRITTEN_SCHEMA)


def test_every_model_declares_its_date_age_and_label() -> None:
    dated = {"diagnosis": ("onset", "onset_days_ago"), "medication": ("start", "start_days_ago")}
    for kind, model in FACT_MODELS.items():
        fields = FACT_SCHEMA[kind]
        want_date = dated.get(kind, ("date", "age_days"))[0]
        assert model.date_field == (want_date if want_date in fields else None), kind
        if model.age_field is not None:
            assert fields[model.age_field] == "int"
        assert model.label.sv and model.label.en
    assert FACT_MODELS["lab"].age_field == "age_days" and FACT_MODELS["extent"].age_field is None
    assert len({m.label for m in FACT_MODELS.values()}) == len(FACT_MODELS)


def test_a_model_with_a_wrong_declaration_is_refused() -> None:
    class Odd(FactBase):
        label = ("x", "x")  # type: ignore[assignment]
        date_field = "when"
        age_field = None
        kind: str = "odd"
        when: Optional[int] = None

    with pytest.raises(TypeError, match="date_field 'when' is not a date field"):
        schema_of(Odd)

    class Floaty(FactBase):
        label = ("x", "x")  # type: ignore[assignment]
        date_field = None
        age_field = None
        kind: str = "floaty"
        ratio: Optional[float] = None

    with pytest.raises(TypeError, match=r"Floaty\.ratio"):
        schema_of(Floaty)


def test_every_handled_resource_type_reads_into_facts() -> None:
    assert set(HANDLERS) == {
        "Condition",
        "Observation",
        "DiagnosticReport",
        "MedicationStatement",
        "MedicationAdministration",
        "MedicationRequest",
        "ResearchSubject",
        "ServiceRequest",
        "Encounter",
        "FamilyMemberHistory",
    }


# ---------------------------------------------------------------------------------- encoding


@given(
    st.decimals(min_value=Decimal("-1e12"), max_value=Decimal("1e12"), allow_nan=False, places=6),
    st.decimals(min_value=Decimal("-1e12"), max_value=Decimal("1e12"), allow_nan=False, places=6),
)
def test_decimal_encoding_is_one_and_keeps_order(a: Decimal, b: Decimal) -> None:
    ea, eb = encode_constant("decimal", a.to_eng_string()), encode_value("decimal", b)
    assert ea == encode_value("decimal", a)
    assert isinstance(ea, int) and isinstance(eb, int)
    if a <= b:
        assert ea <= eb
    assert abs(Decimal(ea) / 1000 - a) <= Decimal("0.0005")


@given(st.dates(), st.dates())
def test_date_encoding_is_days_since_epoch_and_keeps_order(a: dt.date, b: dt.date) -> None:
    ea, eb = encode_constant("date", a), encode_value("date", b)
    assert ea == (a - EPOCH).days and eb == (b - EPOCH).days
    assert (a < b) == (ea < eb)  # type: ignore[operator]


@pytest.mark.parametrize(
    "ftype,value",
    [
        ("str", 1),
        ("int", True),
        ("int", "3"),
        ("bool", 1),
        ("decimal", True),
        ("decimal", "abc"),
        ("decimal", float("nan")),
        ("decimal", None),
        ("date", "2024-01-01"),
        ("date", dt.datetime(2024, 1, 1)),
    ],
)
def test_constant_of_the_wrong_type_is_refused(ftype: str, value: object) -> None:
    assert encode_constant(ftype, value) is None  # type: ignore[arg-type]


def test_engine_types_follow_the_field_types() -> None:
    assert set(ENGINE_TYPE) == set(ENCODERS) == {"str", "int", "bool", "decimal", "date"}
    assert {t for t in ENGINE_TYPE if ENCODERS[t] is not None} == {"decimal", "date"}
    assert all(ENGINE_TYPE[t] == "int" for t in ("decimal", "date"))


# ---------------------------------------------------------------------------------- regions


def test_region_map_comes_from_the_regions_table() -> None:
    rmap = region_map(REGIONS)
    assert rmap is not None
    keys = {row["key"] for row in REGIONS.rows}
    for county in COUNTIES:
        if county == "13":
            assert county in rmap.split_counties and rmap.region_for(county, None) is None
        else:
            assert rmap.region_for(county, None) in keys, county
    for muni in HALLAND_MUNICIPALITIES:
        assert rmap.region_for("13", muni) in {"sodra", "vastra"}
    assert region_map(None) is None


class _Rows:
    def __init__(self, rows: list[dict[str, object]]) -> None:
        self.rows = rows


def test_another_table_routes_elsewhere_and_names_are_read_as_codes() -> None:
    rmap = region_map(_Rows([{"key": "north", "counties": ["Skåne", "01"]}]))
    assert rmap is not None
    assert rmap.county_to_region == {"12": "north", "01": "north"}
    assert rmap.region_for("12", None) == "north" and rmap.region_for("14", None) is None
    with pytest.raises(ValueError):
        RegionMap({"Atlantis": "x"})


def _bundle(state: str) -> dict[str, object]:
    patient = {
        "resourceType": "Patient",
        "id": "p",
        "birthDate": "1960-01-01",
        "address": [{"use": "home", "state": state}],
    }
    return {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": patient}]}


def test_without_a_regions_table_the_region_is_unknown_with_a_note() -> None:
    loaded = load_bundle(_bundle("Skåne"), validate="none")
    fs = extract_facts(loaded, dt.date(2024, 1, 1))
    assert fs.patient.county == "12" and fs.patient.healthcare_region is None
    assert [n.code for n in fs.notes] == ["unknown-region"]
    known = extract_facts(loaded, dt.date(2024, 1, 1), region_map(REGIONS))
    assert known.patient.healthcare_region == "sodra" and not known.notes


# ---------------------------------------------------------------------------------- national target


def test_national_target_text_lives_in_the_regions_table() -> None:
    national = REGIONS.text("national_mdk")
    assert national is not None
    users = [r for r in RULES.rules if r.target is not None and r.target.value == "national_mdk"]
    assert {r.id for r in users} >= {"MDK-NAT-1", "MDK-NAT-2"}
    assert not any(
        r.target is not None and r.target.fixed is not None and r.target.fixed.en == national.en for r in RULES.rules
    )
    result = Evaluator(RULES).evaluate(
        ROOT / "fhir_examples" / "01-cholangio-braf-v600e-focuse-eligible.json", as_of="2026-11-01"
    )
    mdk = result.decisions["mdk"]
    assert mdk.level == "national"
    assert mdk.target is not None and mdk.target.centre is not None
    assert (mdk.target.centre.sv, mdk.target.centre.en) == (national.sv, national.en)


def test_target_shapes() -> None:
    assert Target(table="regions", value="national_mdk").value == "national_mdk"
    for bad in (
        {"value": "national_mdk"},
        {"table": "regions", "value": "x", "column": "y"},
        {"table": "regions"},
        {"table": "regions", "value": "x", "fixed": {"sv": "a", "en": "b"}},
    ):
        with pytest.raises(ValidationError):
            Target(**bad)  # type: ignore[arg-type]


def test_unknown_table_text_is_a_compile_error(tmp_path: Path) -> None:
    root = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", root)
    nat = root / "criteria" / "mdk" / "MDK-NAT-1.yaml"
    nat.write_text(nat.read_text(encoding="utf-8").replace("value: national_mdk", "value: local_mdk"), encoding="utf-8")
    crs, diags = compile_ruleset(load_ruleset(root))
    assert crs is None
    assert any(d.code == "C011" and "has no text 'local_mdk'" in d.message for d in diags)


# ---------------------------------------------------------------------------------- the guide's example

GUIDE = ROOT / "docs" / "adding-a-fact-kind.md"

_RUN_EXAMPLE = r"""
import datetime as dt, json, sys
from mdtflag.api import Evaluator
from mdtflag.fhir.facts import FACT_SCHEMA, extract_facts
from mdtflag.fhir.load import load_bundle

def obs(code, date, id):
    return {"resourceType": "Observation", "id": id, "status": "final", "subject": {"reference": "Patient/p"},
            "code": {"coding": [{"system": "http://loinc.org", "code": "72166-2"}]},
            "effectiveDateTime": date,
            "valueCodeableConcept": {"coding": [{"system": "http://loinc.org", "code": code}]}}

def bundle(*res):
    patient = {"resourceType": "Patient", "id": "p", "birthDate": "1960-01-01"}
    return {"resourceType": "Bundle", "type": "collection",
            "entry": [{"fullUrl": f"urn:uuid:{r['id']}", "resource": r} for r in (patient, *res)]}

ev = Evaluator(sys.argv[1])
out = {"schema": dict(FACT_SCHEMA["smoking"])}
two = load_bundle(bundle(obs("LA15920-4", "2023-01-01", "o1"), obs("LA18978-9", "2024-03-01", "o2")))
out["facts"] = [f.model_dump(mode="json", exclude={"evidence"}) for f in extract_facts(two, dt.date(2024, 6, 1)).facts
                if f.kind == "smoking"]
for name, b in (("never", two), ("none", load_bundle(bundle())),
                ("odd", load_bundle(bundle(obs("LA9999-9", "2024-03-01", "o3"))))):
    r = ev.evaluate(b, as_of="2024-06-01").to_dict()
    flag = next(f for f in r["flags"] if f["rule"] == "T-NEVER")
    out[name] = {"status": flag["status"], "missing": [m["text"]["en"] for reason in flag["reasons"]
                                                       for m in reason["missing"]],
                 "notes": [d["code"] for d in r["data_quality"] if d.get("code")]}
print(json.dumps(out))
"""


def _code_blocks(text: str) -> list[str]:
    blocks, inside, cur = [], False, []
    for line in text.splitlines():
        if line.startswith("```"):
            if inside:
                blocks.append("\n".join(cur) + "\n")
            inside, cur = not inside, []
        elif inside:
            cur.append(line)
    return blocks


def test_the_guide_example_adds_a_kind_in_one_model_file_and_one_reader(tmp_path: Path) -> None:
    model, reader, dispatch, rule = _code_blocks(GUIDE.read_text(encoding="utf-8"))[:4]
    pkg = tmp_path / "mdtflag"
    shutil.copytree(ROOT / "mdtflag", pkg, ignore=shutil.ignore_patterns("__pycache__"))
    models = pkg / "fhir" / "facts" / "models.py"
    text = models.read_text(encoding="utf-8")
    text = text.replace("\n\nFact = Union[", "\n\n" + model + "\n\nFact = Union[", 1)
    text = text.replace("    FamilyHistoryFact,\n]", "    FamilyHistoryFact,\n    SmokingFact,\n]", 1)
    text = text.replace("    FamilyHistoryFact,\n)", "    FamilyHistoryFact,\n    SmokingFact,\n)", 1)
    models.write_text(text, encoding="utf-8")
    observation = pkg / "fhir" / "facts" / "observation.py"
    text = observation.read_text(encoding="utf-8")
    text = text.replace(
        "from mdtflag.fhir.facts.models import ",
        "from mdtflag.fhir.facts.models import SmokingFact\nfrom mdtflag.fhir.facts.models import ",
        1,
    )
    text = text.replace(
        "\n\n#: (normalised system, code) of Observation.code",
        "\n\n" + reader + "\n\n#: (normalised system, code) of Observation.code",
        1,
    )
    text = text.replace("= MappingProxyType(\n    {\n", "= MappingProxyType(\n    {\n" + dispatch, 1)
    observation.write_text(text, encoding="utf-8")
    changed = {
        p.relative_to(pkg).as_posix()
        for p in pkg.rglob("*.py")
        if p.read_bytes() != (ROOT / "mdtflag" / p.relative_to(pkg)).read_bytes()
    }
    assert changed == {"fhir/facts/models.py", "fhir/facts/observation.py"}

    rules = tmp_path / "rules"
    shutil.copytree(ROOT / "tests" / "data" / "rules_min", rules)
    (rules / "criteria" / "never.yaml").write_text(
        "id: T-NEVER\nversion: 1.0.0\ntitle: {sv: Aldrig rökt, en: Never smoked}\nkind: hereditary\ntag: DA\n"
        "sources: [test]\ntexts:\n  flagged: {sv: Aldrig, en: Never}\n" + rule,
        encoding="utf-8",
    )

    run = subprocess.run(
        [sys.executable, "-c", _RUN_EXAMPLE, str(rules)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    got = json.loads(run.stdout)
    assert got["schema"] == {"status": "str", "date": "date", "age_days": "int"}
    assert got["facts"] == [{"kind": "smoking", "status": "never", "date": "2024-03-01", "age_days": 92}]
    assert got["never"]["status"] == "flagged"
    assert got["none"]["status"] == "indeterminate"
    assert got["none"]["missing"] == ["Cannot decide: smoking status missing"]
    assert got["odd"]["status"] == "indeterminate"
    assert "unknown-code" in got["odd"]["notes"] and "unknown-code" not in got["never"]["notes"]
