"""The flat cohort table (Parquet and CSV) read back and checked against the NDJSON results file."""

from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mdtflag.api import Evaluator
from mdtflag.cohort.table import COLUMNS, missing_words, write_table
from mdtflag.evaluation.field_words import FIELD_WORDS
from mdtflag.output.render import to_json

pq = pytest.importorskip("pyarrow.parquet", reason="pyarrow is needed for the Parquet table")

ROOT = Path(__file__).resolve().parent.parent
AS_OF = "2026-11-01"
QUOTED_FIELD = re.compile(r"'[a-z]+(?:_[a-z0-9]+)+'|'(?:vaf|origin|age)'")


@pytest.fixture(scope="module")
def result_lines() -> list[bytes]:
    """The shipped examples evaluated in process, one compact JSON line each (as the batch writes them)."""
    ev = Evaluator(ROOT / "rules")
    return [to_json(r, indent=False) for r in ev.evaluate_all(ROOT / "fhir_examples", as_of=AS_OF)]


def _expected_rows(doc: dict[str, Any]) -> list[tuple[str, str, str]]:
    if doc.get("schema") == "mdtflag.error/1":
        return [("", "", "error")]
    out = []
    for f in doc["flags"]:
        out.append((f["rule"], "", f["status"]))
        out.extend((f["rule"], c["key"], c["status"]) for c in f.get("cohorts") or [])
    return out


def _check_against(lines: list[bytes], table: list[dict[str, Any]], lang: str) -> None:
    by_line: dict[int, list[dict[str, Any]]] = {}
    for row in table:
        by_line.setdefault(int(row["line"]), []).append(row)
    numbered = [(n, raw) for n, raw in enumerate(lines, 1) if raw.strip()]
    assert sorted(by_line) == [n for n, _ in numbered], "every non-blank line gives rows, and no other"
    for n, raw in numbered:
        rows = by_line[n]
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError:
            doc = None
        if not isinstance(doc, dict) or doc.get("schema") not in ("mdtflag.result/1", "mdtflag.error/1"):
            assert [(r["status"], r["error_code"]) for r in rows] == [("error", "unreadable-line")]
            continue
        assert [(r["rule"], r["cohort"], r["status"]) for r in rows] == _expected_rows(doc)
        if doc["schema"] == "mdtflag.error/1":
            (row,) = rows
            assert (row["source"], row["error_code"]) == (doc["source"], doc["error"]["code"])
            assert row["error_message"].startswith(doc["error"]["message"])
            continue
        mdk = doc["decisions"]["mdk"]
        target = mdk["target"] or {}
        centre = (target.get("centre") or {}).get(lang, "")
        for row in rows:
            assert row["patient"] == doc["patient"] and row["mdk_level"] == mdk["level"]
            assert row["centre"] == centre
            assert row["healthcare_region"] == (target.get("healthcare_region") or "")
            assert not QUOTED_FIELD.search(row["missing"]), f"internal field name in {row['missing']!r}"
        for f, row in zip(doc["flags"], (r for r in rows if not r["cohort"])):
            assert row["title"] == f["title"][lang] and row["provenance"] == f["tag"]
            if f["status"] == "indeterminate":
                assert row["missing"], f"{doc['patient']} {f['rule']}: an undecided flag names the missing data"
            for m in f["missing"]:
                assert missing_words(m, lang) in row["missing"].split(" | ")


def _read_parquet(path: Path) -> list[dict[str, Any]]:
    table = pq.read_table(path)
    assert table.column_names == list(COLUMNS)
    return table.to_pylist()  # type: ignore[no-any-return]


def _read_csv(path: Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def test_examples_parquet_and_csv_agree_with_the_results(tmp_path: Path, result_lines: list[bytes]) -> None:
    src = tmp_path / "results.ndjson"
    src.write_bytes(b"".join(result_lines))
    n = write_table(src, tmp_path / "t.parquet")
    rows = _read_parquet(tmp_path / "t.parquet")
    assert n == len(rows) > len(result_lines)
    _check_against(result_lines, rows, "sv")
    assert write_table(src, tmp_path / "t.csv", lang="en") == n
    _check_against(result_lines, _read_csv(tmp_path / "t.csv"), "en")


def test_missing_data_is_in_words(tmp_path: Path, result_lines: list[bytes]) -> None:
    src = tmp_path / "results.ndjson"
    src.write_bytes(b"".join(result_lines))
    write_table(src, tmp_path / "sv.parquet")
    write_table(src, tmp_path / "en.parquet", lang="en")
    sv = _read_parquet(tmp_path / "sv.parquet")
    en = _read_parquet(tmp_path / "en.parquet")
    # p18's missing diagnosis age and p22's missing variant allele frequency, as words
    assert any(r["patient"] == "Patient/p18" and "ålder vid diagnos" in r["missing"] for r in sv)
    assert any(r["patient"] == "Patient/p22" and "variant allele frequency (VAF)" in r["missing"] for r in en)
    assert any(r["patient"] == "Patient/p22" and "variantallelfrekvens (VAF)" in r["missing"] for r in sv)
    assert not any("Cannot decide" in r["missing"] or "Kan ej bedöma" in r["missing"] for r in sv + en)
    # an undecided cohort row names the data that would decide it
    undecided = [r for r in sv if r["cohort"] and r["status"] == "indeterminate"]
    assert undecided and all(r["missing"] for r in undecided)


def test_every_fact_field_has_words() -> None:
    import importlib

    for name in ("mdtflag.fhir.facts", "mdtflag.facts"):  # the fact schema: every field a rule can miss
        try:
            facts = importlib.import_module(name)
            break
        except ImportError:
            continue
    missing = sorted({f for fields in facts.FACT_SCHEMA.values() for f in fields} - set(FIELD_WORDS))
    assert missing == []


def test_errors_and_unreadable_lines_become_rows(tmp_path: Path, result_lines: list[bytes]) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{ not json", encoding="utf-8")
    errors = [to_json(e, indent=False) for e in Evaluator(ROOT / "rules").evaluate_all(bad, as_of=AS_OF)]
    assert errors and b"mdtflag.error/1" in errors[0]
    lines = [result_lines[0], errors[0], b"\n", b'{"schema": "something/9"}\n', b'{"truncated": \n']
    src = tmp_path / "r.ndjson"
    src.write_bytes(b"".join(lines))
    write_table(src, tmp_path / "t.parquet")
    rows = _read_parquet(tmp_path / "t.parquet")
    err = [r for r in rows if r["status"] == "error"]
    assert [(r["line"], r["error_code"]) for r in err] == [
        (2, "not-json"),
        (4, "unreadable-line"),
        (5, "unreadable-line"),
    ]
    assert err[0]["source"] == str(bad)


def test_a_failed_write_leaves_no_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        write_table(tmp_path / "absent.ndjson", tmp_path / "t.parquet")
    assert list(tmp_path.iterdir()) == []


hostile_text = st.text(alphabet=st.characters(codec="utf-8"), max_size=40)
error_docs = st.builds(
    lambda src, code, msg, line: (
        orjson.dumps(
            {"schema": "mdtflag.error/1", "source": src, "error": {"code": code, "message": msg, "line": line}}
        )
        + b"\n"
    ),
    hostile_text,
    st.sampled_from(["not-json", "not-bundle", "no-patient", "engine-crash"]),
    hostile_text,
    st.none() | st.integers(1, 10**6),
)
garbage = st.binary(max_size=30).filter(lambda b: b"\n" not in b and b"\r" not in b).map(lambda b: b + b"\n")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_mix_of_lines_is_accounted_for(
    tmp_path_factory: pytest.TempPathFactory, result_lines: list[bytes], data: st.DataObject
) -> None:
    picks = data.draw(st.lists(st.sampled_from(result_lines) | error_docs | garbage, max_size=12))
    lang = data.draw(st.sampled_from(["sv", "en"]))
    d = tmp_path_factory.mktemp("mix")
    src = d / "r.ndjson"
    src.write_bytes(b"".join(picks))
    n = write_table(src, d / "t.parquet", lang=lang, chunk_rows=data.draw(st.integers(1, 50)))
    rows = _read_parquet(d / "t.parquet")
    assert n == len(rows)
    _check_against(picks, rows, lang)
