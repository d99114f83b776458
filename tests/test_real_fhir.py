"""Real public FHIR data (../shared/real-fhir, see its MANIFEST.md): every JSON file is loaded,
every patient bundle is turned into facts, nothing crashes. Skipped when the folder is absent.

``pytest -s tests/test_real_fhir.py`` prints the per-kind fact counts and the per-bundle cost of
parsing, validation and extraction."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from mdtflag.errors import InputError
from mdtflag.fhir.facts import FACT_SCHEMA, FactSet, count_by_kind, extract_facts
from mdtflag.fhir.load import LoadedBundle, iter_inputs, load_bundle

REAL = Path(__file__).resolve().parent.parent.parent / "shared" / "real-fhir"
GROUPED = REAL / "_grouped-per-patient"
AS_OF = date(2024, 6, 1)

pytestmark = pytest.mark.skipif(not REAL.is_dir(), reason=f"{REAL} not present")


def _load_all() -> dict[Path, LoadedBundle | InputError]:
    out: dict[Path, LoadedBundle | InputError] = {}
    for f in sorted(REAL.rglob("*.json")):
        try:
            out[f] = load_bundle(f, validate="facts")
        except InputError as err:
            out[f] = err
    return out


@pytest.fixture(scope="module")
def loaded() -> dict[Path, LoadedBundle | InputError]:
    return _load_all()


@pytest.fixture(scope="module")
def factsets(loaded) -> dict[Path, FactSet]:
    return {f: extract_facts(b, AS_OF) for f, b in loaded.items() if isinstance(b, LoadedBundle)}


def _top_level(f: Path) -> object:
    import orjson

    return orjson.loads(f.read_bytes())


def test_every_file_loads_or_gives_an_input_error(loaded):
    assert len(loaded) > 500
    for f, result in loaded.items():
        top = _top_level(f)
        is_bundle = isinstance(top, dict) and top.get("resourceType") == "Bundle"
        if not is_bundle:
            assert isinstance(result, InputError) and result.code == "not-bundle", (f, result)
            assert result.source == str(f)
        elif isinstance(result, InputError):
            assert result.code in ("no-patient", "several-patients"), (f, result)
        else:
            assert result.patient["resourceType"] == "Patient"


def test_every_patient_bundle_gives_facts_without_errors(factsets):
    assert len(factsets) >= 40
    for f, fs in factsets.items():
        assert fs.facts[0] is fs.patient, f
        bugs = [n for n in fs.notes if n.code == "extraction-error"]
        assert not bugs, (f, bugs)
        for fact in fs.facts:
            fact.engine_fields()
            assert fact.evidence or fact.kind == "patient", (f, fact)


def test_fact_counts_per_kind(factsets):
    groups: dict[str, list[FactSet]] = {}
    for f, fs in factsets.items():
        rel = f.relative_to(REAL).parts
        key = "/".join(rel[:2]) if rel[0] == "_grouped-per-patient" else rel[0]
        groups.setdefault(key, []).append(fs)
    counts = {k: count_by_kind(v) for k, v in sorted(groups.items())}
    total = count_by_kind(factsets.values())
    labels = {k: _LABELS.get(k, k[:9]) for k in counts}
    lines = [
        "",
        "  ".join(f"{labels[k]}={k}" for k in counts),
        f"{'fact kind':<16}" + "".join(f"{labels[k]:>10}" for k in counts) + f"{'total':>8}",
    ]
    for kind in FACT_SCHEMA:
        lines.append(f"{kind:<16}" + "".join(f"{counts[k][kind]:>10}" for k in counts) + f"{total[kind]:>8}")
    lines.append(f"{'(bundles)':<16}" + "".join(f"{len(groups[k]):>10}" for k in counts) + f"{len(factsets):>8}")
    print("\n".join(lines))
    grouped = count_by_kind(fs for f, fs in factsets.items() if GROUPED in f.parents)
    for kind in (
        "diagnosis",
        "variant",
        "ecog",
        "extent",
        "tmb",
        "msi",
        "ihc",
        "genomic_report",
        "family_history",
        "lab",
    ):
        assert grouped[kind] >= 1, (kind, grouped)


_LABELS = {
    "_grouped-per-patient/genomics-reporting-stu3-pkg": "grp-GR3",
    "_grouped-per-patient/mcode-ig-stu1-git": "grp-mC1",
    "_grouped-per-patient/mcode-ig-stu4-pkg": "grp-mC4",
    "fhir-r4-core-examples-pkg": "core",
    "genomics-reporting-stu3-pkg": "GR3",
    "mcode-extraction-framework-fixtures": "mef",
    "mcode-ig-stu4-pkg": "mC4",
    "synthea-r4-smart-cancer": "synthea",
    "synthea-r4-smart-controls": "controls",
    "icaredata-fixtures": "icare",
    "mcode-ig-stu1-git": "mC1",
}


def _facts(factsets, name: str) -> FactSet:
    (fs,) = [fs for f, fs in factsets.items() if f.name == name and GROUPED in f.parents]
    return fs


def test_spot_checks_on_mcode_and_genomics_examples(factsets):
    adam = _facts(factsets, "gx-cancer-patient-adam-anyperson.bundle.json")
    variants = {(v.gene, v.present) for v in adam.of_kind("variant")}
    assert {("BRAF", False), ("KIT", False), ("CDKN2A", True)} <= variants
    assert [(t.value) for t in adam.of_kind("tmb")] == [Decimal("57.1")]
    assert [m.status for m in adam.of_kind("msi")] == ["msi-h"]

    somatic = _facts(factsets, "somaticPatient.bundle.json")
    egfr = [v for v in somatic.of_kind("variant") if v.gene == "EGFR"]
    assert [(v.protein, v.origin, v.significance) for v in egfr] == [("p.L858R", "somatic", "pathogenic")]

    john = _facts(factsets, "cancer-patient-john-anyperson.bundle.json")
    sites = {d.metastasis_site for d in john.of_kind("diagnosis") if d.secondary}
    assert sites == {"brain"}
    assert any(e.source == "secondary-condition" for e in john.of_kind("extent"))
    # the grouped bundle also holds another patient's resources: they must not be used
    assert any(n.code == "other-patient" for n in john.notes)

    jenny = _facts(factsets, "cancer-patient-jenny-m.bundle.json")
    assert {(i.marker, i.result) for i in jenny.of_kind("ihc")} == {
        ("ER", "positive"),
        ("PR", "negative"),
        ("HER2", "negative"),
    }
    assert [e.value for e in jenny.of_kind("ecog")] == [0]

    stu1 = _facts(factsets, "mCODEPatientExample01.bundle.json")
    assert [(e.value, e.derived) for e in stu1.of_kind("ecog")] == [(0, False)]


def test_iter_inputs_on_a_real_folder_never_raises():
    folder = GROUPED / "mcode-ig-stu4-pkg"
    out = list(iter_inputs(folder))
    assert len(out) == len(list(folder.glob("*.json")))
    assert sum(isinstance(o, LoadedBundle) for o in out) == 7
    assert [o.code for o in out if isinstance(o, InputError)] == ["not-bundle"]  # index.json


def test_validation_modes_keep_or_drop_the_same_resources_on_real_bundles(loaded):
    """Every grouped real bundle reads in all three validation modes; ``facts`` keeps a subset of what
    ``none`` keeps and ``all`` a subset of ``facts``; dropped resources are named in data-quality notes.
    (Costs per stage are measured by bench/bench.py, not asserted here.)"""
    files = [f for f, b in loaded.items() if isinstance(b, LoadedBundle) and GROUPED in f.parents]
    assert files
    for f in files:
        data = f.read_bytes()
        none, facts, every = (load_bundle(data, validate=m) for m in ("none", "facts", "all"))
        ids = [{id(r) for r in b.resources} for b in (none, facts, every)]
        keys = [[(r["resourceType"], r.get("id")) for r in b.resources] for b in (none, facts, every)]
        assert set(keys[1]) <= set(keys[0]) and set(keys[2]) <= set(keys[1])
        dropped = {f"{rt}/{rid}" for rt, rid in set(keys[0]) - set(keys[2])}
        named = {n.resource for n in every.notes if n.code == "invalid-resource"}
        assert dropped <= named
        assert ids[0]  # at least the patient
        extract_facts(facts, AS_OF)
