"""Consistency checks for the knowledge data files (rules/tables, rules/valuesets, rules/profiles.yaml).

Data only: these tests read the YAML with yaml.safe_load and check metadata, provenance tags,
code formats and cross-references. They do not evaluate any rule.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
RULES = ROOT / "rules"
TABLES = RULES / "tables"
VALUESETS = RULES / "valuesets"
PROFILES = RULES / "profiles.yaml"

TABLE_FILES = sorted(TABLES.glob("*.yaml"))
VALUESET_FILES = sorted(VALUESETS.glob("*.yaml"))
ALL_FILES = TABLE_FILES + VALUESET_FILES + [PROFILES]

ALLOWED_TAGS = {"SEED-004", "PUB", "DA", "VERIFY"}
KEBAB = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")

ATC = re.compile(r"^[A-Z]\d{2}[A-Z]{2}\d{2}$")
ATC_CLASS = re.compile(r"^[A-Z]\d{2}[A-Z]{2}$")
ATC_GROUP = re.compile(r"^[A-Z]\d{2}$")
ICD10_3 = re.compile(r"^[A-Z]\d[0-9A-Z]$")
ICD10 = re.compile(r"^[A-Z]\d[0-9A-Z](\.[0-9A-Z]{1,4})?$")
PROTEIN = re.compile(r"^p\.[A-Z*]\d+(_[A-Z]\d+)?([A-Z*]|del|dup|ins[A-Z]+|delins[A-Z]+|fs\*?\d*)$")
FIELD_PATTERNS = {
    "icd10_3": ICD10_3,
    "icd10": ICD10,
    "snomed": re.compile(r"^\d{6,18}$"),
    "gene": re.compile(r"^[A-Z][A-Z0-9-]*$"),
    "atc": ATC,
    "atc_class": ATC_CLASS,
    "atc_group": ATC_GROUP,
    "protein": PROTEIN,
    "morphology": re.compile(r"^\d{4}/\d$"),
    "significance": re.compile(r"^(pathogenic|likely-pathogenic|vus|likely-benign|benign)$"),
}

# SCB länskoder in use (02, 11, 15, 16 are retired).
VALID_COUNTIES = {
    "01",
    "03",
    "04",
    "05",
    "06",
    "07",
    "08",
    "09",
    "10",
    "12",
    "13",
    "14",
    "17",
    "18",
    "19",
    "20",
    "21",
    "22",
    "23",
    "24",
    "25",
}
HALLAND = "13"
# CRITERIA §3.1: Halmstad, Hylte, Laholm -> Södra; Kungsbacka, Varberg, Falkenberg -> Västra.
HALLAND_SPLIT = {
    "1380": "sodra",
    "1315": "sodra",
    "1381": "sodra",
    "1384": "vastra",
    "1383": "vastra",
    "1382": "vastra",
}
STAGE1_EVALUABLE = 8  # CRITERIA §5.3
HAEMATOLOGICAL = {"C81", "C82", "C83", "C84", "C85", "C86", "C88", "C90", "C91", "C92", "C93", "C94", "C95", "C96"}
REGION_SLUGS = {"norra", "mellansverige", "stockholm-gotland", "sydostra", "sodra", "vastra"}

PROFILE_PARAMS = {
    "min_age_years",
    "ecog_max",
    "anc_min",
    "hb_min",
    "plt_min",
    "bili_max_x_uln",
    "ast_alt_max_x_uln",
    "ast_alt_max_x_uln_liver",
    "creat_max_x_uln",
    "crcl_min",
    "measurable_required",
    "ecog_max_age_days",
    "lab_max_age_days",
    "her2_vaf_min",
    "tmb_high_min",
    "her2_amp_cn_min",
    "her2_ish_ratio_min",
    "met_amp_cn_min",
    "allow_haematological",
    "escat_national_min",
}
ESCAT_TIERS = ["I-A", "I-B", "I-C", "II-A", "II-B", "III-A", "III-B", "IV", "V", "X"]  # Mateo et al. 2018
PROFILE_META = {"title", "tag", "tags", "source"}
# Top-level keys the rule loader (mdtflag/rulemodel.py, extra="forbid") accepts.
COMMON_KEYS = {"id", "title", "date", "sources", "tag"}
VALUESET_KEYS = COMMON_KEYS | {"field", "values", "display", "tags"}
TABLE_KEYS = COMMON_KEYS | {"rows", "national_mdk"}
PROFILES_KEYS = COMMON_KEYS | {"default", "profiles"}
INT_PARAMS = {"min_age_years", "ecog_max", "ecog_max_age_days", "lab_max_age_days"}
NULLABLE_PARAMS = {"creat_max_x_uln"}


def load(path: Path):
    with path.open(encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def _id(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


@pytest.fixture(scope="module")
def valuesets():
    return {p.stem: load(p) for p in VALUESET_FILES}


@pytest.fixture(scope="module")
def tables():
    return {p.stem: load(p) for p in TABLE_FILES}


def _walk(node, path=()):
    """Yield (path, key, value) for every mapping entry in a YAML tree."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield path, k, v
            yield from _walk(v, path + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _walk(v, path + (i,))


def _is_bilingual(value) -> bool:
    return (
        isinstance(value, dict)
        and set(value) == {"sv", "en"}
        and all(isinstance(x, str) and x.strip() for x in value.values())
    )


# --- metadata -----------------------------------------------------------------------------------


def test_files_present():
    assert TABLE_FILES, "no tables"
    assert VALUESET_FILES, "no value sets"
    assert PROFILES.exists()
    for stem in ("regions", "eu-labels", "cohorts", "hereditary-codes"):
        assert (TABLES / f"{stem}.yaml").exists(), stem


@pytest.mark.parametrize("path", ALL_FILES, ids=_id)
def test_metadata(path):
    doc = load(path)
    assert isinstance(doc, dict), "top level must be a mapping"
    for key in ("id", "title", "date", "sources", "tag"):
        assert key in doc, f"missing {key}"
    assert doc["id"] == path.stem, "id must equal the file stem"
    assert KEBAB.match(doc["id"]), "id must be kebab-case"
    assert _is_bilingual(doc["title"]), "title must be {sv, en}"
    date = doc["date"]
    assert isinstance(date, dt.date) or (isinstance(date, str) and ISO_DATE.match(date)), "date must be ISO"
    if isinstance(date, str):
        dt.date.fromisoformat(date)
    assert isinstance(doc["sources"], list) and doc["sources"], "sources must be a non-empty list"
    assert all(isinstance(s, str) and s.strip() for s in doc["sources"])
    assert doc["tag"] in ALLOWED_TAGS
    allowed = PROFILES_KEYS if path == PROFILES else TABLE_KEYS if path.parent == TABLES else VALUESET_KEYS
    assert not set(doc) - allowed, f"keys the rule loader rejects: {sorted(set(doc) - allowed)}"


@pytest.mark.parametrize("path", ALL_FILES, ids=_id)
def test_every_tag_allowed(path):
    doc = load(path)
    for where, key, value in _walk(doc):
        if key == "tag":
            assert value in ALLOWED_TAGS, (where, value)
        elif key == "tags":
            assert isinstance(value, dict) and value, (where, "tags must be a non-empty mapping")
            assert all(v in ALLOWED_TAGS for v in value.values()), (where, value)


# --- value sets ---------------------------------------------------------------------------------


@pytest.mark.parametrize("path", VALUESET_FILES, ids=_id)
def test_valueset_shape_and_codes(path):
    doc = load(path)
    field = doc.get("field")
    assert field in FIELD_PATTERNS, f"unknown field {field!r}"
    values = doc.get("values")
    assert isinstance(values, list) and values, "values must be a non-empty list"
    assert all(isinstance(v, str) for v in values), "values must be strings (quote numeric codes)"
    dupes = [v for v, n in Counter(values).items() if n > 1]
    assert not dupes, f"duplicate values {dupes}"
    bad = [v for v in values if not FIELD_PATTERNS[field].match(v)]
    assert not bad, f"values not in {field} format: {bad}"
    for opt in ("display", "tags"):
        if opt in doc:
            assert isinstance(doc[opt], dict)
            extra = set(doc[opt]) - set(values)
            assert not extra, f"{opt} keys not in values: {extra}"


def test_codes_companions(valuesets):
    """tumour-<group>-codes (icd10) completes tumour-<group> (icd10_3) and must not repeat its groups."""
    for vid, vs in valuesets.items():
        if vid.startswith("tumour-") and vid.endswith("-codes"):
            parent = vid[: -len("-codes")]
            assert parent in valuesets, f"{vid} has no parent {parent}"
            assert vs["field"] == "icd10" and valuesets[parent]["field"] == "icd10_3", vid
            clash = {c for c in vs["values"] if c[:3] in set(valuesets[parent]["values"])}
            assert not clash, f"{vid} repeats 3-character groups of {parent}: {clash}"


def _icd3(vs: dict) -> set[str]:
    if vs["field"] == "icd10_3":
        return set(vs["values"])
    if vs["field"] == "icd10":
        return {v[:3] for v in vs["values"]}
    return set()


def test_tumour_groups_consistent(valuesets):
    solid = set(valuesets["tumour-all-solid"]["values"])
    haem = set(valuesets["tumour-haematological"]["values"])
    secondary = set(valuesets["secondary-malignancy"]["values"])
    assert not solid & haem
    assert not solid & secondary, "secondary codes carry no tumour type"
    assert haem == {"C81", "C82", "C83", "C84", "C85", "C86", "C88", "C90", "C91", "C92", "C93", "C94", "C95", "C96"}
    for vid, vs in valuesets.items():
        if not vid.startswith("tumour-") or vid in {"tumour-all-solid", "tumour-haematological"}:
            continue
        codes = _icd3(vs)
        if vs["field"] == "morphology":
            continue
        assert codes, vid
        assert codes <= solid | haem, f"{vid} has codes outside C00-C96 groups: {codes - solid - haem}"


# --- tables -------------------------------------------------------------------------------------

# Columns that hold value-set ids, with the fact field those value sets must hold (a rule compares
# a column's sets with one field: {valuesets: {param: row.COLUMN}}).
REF_LIST_COLUMNS = {
    "on_label_tumour_groups": "icd10_3",
    "on_label_tumour_groups_germline": "icd10_3",
    "on_label_tumour_codes": "icd10",
    "on_label_morphology": "morphology",
    "tumour_groups": "icd10_3",
}


@pytest.mark.parametrize("path", TABLE_FILES, ids=_id)
def test_table_rows(path, valuesets):
    doc = load(path)
    rows = doc.get("rows")
    assert isinstance(rows, list) and rows, "rows must be a non-empty list"
    keys = [r.get("key") for r in rows]
    assert all(isinstance(k, str) and k for k in keys), "every row needs a key"
    dupes = [k for k, n in Counter(keys).items() if n > 1]
    assert not dupes, f"duplicate row keys {dupes}"
    for row in rows:
        assert row.get("tag") in ALLOWED_TAGS, (row["key"], row.get("tag"))
        for field in row.get("tags", {}):
            assert field in row and field not in {"key", "tag", "tags"}, (row["key"], field)
        for col, value in row.items():
            if col in REF_LIST_COLUMNS:
                assert isinstance(value, list), (row["key"], col)
                for ref in value:
                    assert ref in valuesets, f"{row['key']}.{col}: missing value set {ref}"
                    assert valuesets[ref]["field"] == REF_LIST_COLUMNS[col], (
                        f"{row['key']}.{col}: {ref} holds {valuesets[ref]['field']}, column needs {REF_LIST_COLUMNS[col]}"
                    )
            elif col.endswith("_valueset"):
                assert value in valuesets, f"{row['key']}.{col}: missing value set {value}"
            elif col.endswith("_valuesets"):
                for ref in value:
                    assert ref in valuesets, f"{row['key']}.{col}: missing value set {ref}"


def _atc_ok(codes) -> bool:
    return isinstance(codes, list) and codes and all(isinstance(c, str) and ATC.match(c) for c in codes)


def test_regions(tables):
    regions = tables["regions"]
    rows = {r["key"]: r for r in regions["rows"]}
    assert set(rows) == REGION_SLUGS
    assert _is_bilingual(regions["national_mdk"])

    seen = Counter()
    for slug, r in rows.items():
        assert _is_bilingual(r["name"]), slug
        for c in r["counties"]:
            assert isinstance(c, str) and c in VALID_COUNTIES, (slug, c)
            seen[c] += 1
        for col in ("university_hospitals", "gmc"):
            assert isinstance(r[col], list) and r[col], (slug, col)
        for col in ("rcc", "regional_mdk", "cancer_genetics_clinic", "paediatric_oncology_centre"):
            assert isinstance(r[col], str) and r[col].strip(), (slug, col)
    for c in VALID_COUNTIES - {HALLAND}:
        assert seen[c] == 1, f"county {c} in {seen[c]} regions"
    # Halland is split by municipality: listing it as a county would route every Halland patient
    # to one region (the loader maps each listed county to its row).
    assert seen[HALLAND] == 0, "county 13 (Halland) must be given by split_municipalities only"
    halland_regions = {slug for slug, r in rows.items() if "split_municipalities" in r}
    assert halland_regions == {"sodra", "vastra"}

    muni = Counter()
    for slug in halland_regions:
        for m in rows[slug]["split_municipalities"]:
            assert isinstance(m, str) and m.startswith(HALLAND) and len(m) == 4, (slug, m)
            assert HALLAND_SPLIT.get(m) == slug, f"{m} should go to {HALLAND_SPLIT.get(m)}"
            muni[m] += 1
    assert set(muni) == set(HALLAND_SPLIT) and all(n == 1 for n in muni.values())


def test_biomarkers(tables):
    rows = {r["key"]: r for r in tables["biomarkers"]["rows"]}
    for key, r in rows.items():
        assert _is_bilingual(r["title"]), key
        if "any_of" in r:
            assert r["any_of"] and all(k in rows and k != key for k in r["any_of"]), key
            assert "alterations" not in r, key
        else:
            assert r["alterations"], key
        for p in ("cn_min_param", "tmb_min_param"):
            if p in r:
                assert r[p] in PROFILE_PARAMS, (key, p)


def test_eu_labels(tables, valuesets):
    biomarkers = {r["key"] for r in tables["biomarkers"]["rows"]}
    target_classes = set(valuesets["target-drug-classes"]["values"])
    for r in tables["eu-labels"]["rows"]:
        k = r["key"]
        for col in ("on_label_tumour_groups", "on_label_tumour_codes", "on_label_morphology"):
            assert isinstance(r.get(col), list), f"{k}: every row needs {col} (may be [])"
        assert r["biomarker"] in biomarkers, (k, r["biomarker"])
        assert _atc_ok(r["drugs"]), (k, r["drugs"])
        assert len(r["drug_names"]) == len(r["drugs"]), k
        assert isinstance(r["tumour_agnostic"], bool), k
        assert isinstance(r["label_requires_biomarker"], bool), k
        assert _is_bilingual(r["line_note"]) or isinstance(r["line_note"], str), k
        assert isinstance(r["source"], str) and r["source"], k
        if r["tumour_agnostic"]:
            assert "tumour-all-solid" in r["on_label_tumour_groups"], k
        for age in ("min_age_years", "max_age_years"):
            assert age in r, f"{k}: every row needs {age} (null = no limit)"
            assert r[age] is None or (isinstance(r[age], int) and not isinstance(r[age], bool)), k
        assert isinstance(r["germline_genes"], list), k
        assert bool(r["germline_genes"]) == bool(r["on_label_tumour_groups_germline"]), (
            f"{k}: germline-only tumour groups and germline_genes go together"
        )
        assert set(r["drug_classes"]) <= target_classes, (k, r["drug_classes"])
        assert r["escat"] in ESCAT_TIERS and isinstance(r["escat_source"], str) and r["escat_source"], k
        assert set(r["drug_classes"]) <= {d[:5] for d in r["drugs"]}, (k, r["drug_classes"])


def _covered_by_labels(key, label_biomarkers, biomarkers) -> bool:
    """A biomarker is covered if eu-labels has rows for it, or for every alternative of an any_of key."""
    if key in label_biomarkers:
        return True
    parts = biomarkers.get(key, {}).get("any_of")
    return bool(parts) and all(_covered_by_labels(p, label_biomarkers, biomarkers) for p in parts)


def test_cohorts(tables):
    label_biomarkers = {r["biomarker"] for r in tables["eu-labels"]["rows"]}
    labels = {r["key"]: r for r in tables["eu-labels"]["rows"]}
    biomarkers = {r["key"]: r for r in tables["biomarkers"]["rows"]}
    for r in tables["cohorts"]["rows"]:
        k = r["key"]
        assert re.match(r"^K-[A-Z0-9]+(-[A-Z0-9]+)*$", k), k
        assert _is_bilingual(r["title"]), k
        assert r["biomarker"] in biomarkers, f"{k}: biomarker {r['biomarker']} not in biomarkers"
        assert _covered_by_labels(r["biomarker"], label_biomarkers, biomarkers), (
            f"{k}: biomarker {r['biomarker']} not in eu-labels"
        )
        assert _atc_ok(r["drugs"]), (k, r["drugs"])
        assert len(r["drug_names"]) == len(r["drugs"]), k
        if "prior_drug_equivalents" in r:
            assert _atc_ok(r["prior_drug_equivalents"]), k
        # TRIAL-C2 judges the cohort's own drugs: every label row it cites holds one of them, for the
        # cohort's biomarker (or one of its alternatives)
        parts = set(biomarkers[r["biomarker"]].get("any_of", [])) | {r["biomarker"]}
        assert r["escat"] in ESCAT_TIERS and isinstance(r["escat_source"], str) and r["escat_source"], k
        for lk in r["label_rows"]:
            assert lk in labels, (k, lk)
            assert set(labels[lk]["drugs"]) & set(r["drugs"]), (k, lk)
            assert labels[lk]["biomarker"] in parts, (k, lk)
        assert isinstance(r["precedent"], list), k
        assert r["tumour_groups"], k
        assert r["state"] in {"open", "stage1", "expanded", "closed"}, k
        if r["state"] == "stage1":
            n = r["enrolled"]
            assert isinstance(n, int) and 0 <= n < STAGE1_EVALUABLE, k
        else:
            assert "enrolled" not in r, k
        if "origin" in r:
            assert r["origin"] in {"somatic", "germline", "any"}, k


def test_hereditary_codes(tables, valuesets):
    genes = set(valuesets["hereditary-genes"]["values"])
    for r in tables["hereditary-codes"]["rows"]:
        assert r["key"] in genes, r["key"]
        assert _is_bilingual(r["syndrome"]), r["key"]
        for system, pattern in (("snomed", r"^\d{6,18}$"), ("orpha", r"^\d+$"), ("omim", r"^\d{6}$")):
            codes = r[system]
            assert isinstance(codes, list), (r["key"], system)
            assert all(isinstance(c, str) and re.match(pattern, c) for c in codes), (r["key"], system, codes)
        assert r["snomed"] or r["orpha"] or r["omim"], r["key"]


def test_esmo_genes_are_hereditary_genes(tables, valuesets):
    genes = [r["key"] for r in tables["esmo-germline-follow-up"]["rows"]]
    # ESMO PMWG (Kuzbari 2023): the seven genes with germline follow-up regardless of tumour type
    assert genes == ["BRCA1", "BRCA2", "PALB2", "MLH1", "MSH2", "MSH6", "RET"]
    assert set(genes) <= set(valuesets["hereditary-genes"]["values"])


# --- profiles -----------------------------------------------------------------------------------


def test_profiles():
    doc = load(PROFILES)
    profiles = doc["profiles"]
    assert doc["default"] in profiles
    assert {"FOCUSE_PROXY_MEGALIT", "IMPRESS", "FINPROVE"} <= set(profiles)
    key_sets = {name: frozenset(p) - PROFILE_META for name, p in profiles.items()}
    assert len(set(key_sets.values())) == 1, "profiles must have identical parameter keys"
    for name, p in profiles.items():
        assert key_sets[name] == PROFILE_PARAMS, (name, key_sets[name] ^ PROFILE_PARAMS)
        assert p["tag"] in ALLOWED_TAGS, name
        assert set(p.get("tags", {})) <= PROFILE_PARAMS, name
        assert p["measurable_required"] in {"measurable", "measurable-or-evaluable"}, name
        haem = p["allow_haematological"]
        assert isinstance(haem, list), name
        for vid in haem:
            vs = load(ROOT / "rules" / "valuesets" / f"{vid}.yaml")
            assert vs["field"] == "icd10_3", (name, vid)
            assert set(vs["values"]) <= HAEMATOLOGICAL, (name, vid)
        assert p["escat_national_min"] in ESCAT_TIERS, name
        for param in PROFILE_PARAMS - {"measurable_required", "allow_haematological", "escat_national_min"}:
            v = p[param]
            if v is None:
                assert param in NULLABLE_PARAMS, (name, param)
                continue
            assert isinstance(v, (int, float)) and not isinstance(v, bool), (name, param, v)
            assert v >= 0, (name, param)
            if param in INT_PARAMS:
                assert isinstance(v, int), (name, param)
        assert 0 < p["her2_vaf_min"] <= 1, name
        assert p["ast_alt_max_x_uln_liver"] >= p["ast_alt_max_x_uln"], name
        assert 0 <= p["ecog_max"] <= 5, name
