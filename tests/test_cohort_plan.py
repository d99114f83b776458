"""Cutting inputs into tasks (byte ranges, line numbers, exports by folder) and the one-line summary rows."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mdtflag.cohort.plan import (
    FilesTask,
    GroupTask,
    LinesTask,
    SpillTask,
    _ranges,
    discover,
    make_plan,
)
from mdtflag.cohort.summary import COLUMNS, csv_line
from mdtflag.cohort.worker import bucket_of, patient_key
from mdtflag.errors import one_line

lines_st = st.lists(st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"x")), max_size=40)


@settings(max_examples=200, deadline=None)
@given(lines=lines_st, final_newline=st.booleans(), target=st.integers(min_value=1, max_value=200))
def test_ranges_cover_the_file_on_line_boundaries_with_true_line_numbers(
    tmp_path_factory: pytest.TempPathFactory, lines: list[bytes], final_newline: bool, target: int
) -> None:
    data = b"\n".join(lines) + (b"\n" if final_newline and lines else b"")
    path = Path(tmp_path_factory.mktemp("r")) / "f.ndjson"
    path.write_bytes(data)
    got = list(_ranges(str(path), target))
    pos, line = 0, 1
    for start, end, first, count in got:
        assert start == pos and end > start and first == line
        chunk = data[start:end]
        assert chunk.endswith(b"\n") or end == len(data)
        assert count == chunk.count(b"\n") + (0 if chunk.endswith(b"\n") else 1)
        assert len(chunk) >= target or end == len(data)
        pos, line = end, line + count
    assert pos == len(data)
    physical = data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)
    assert line - 1 == physical


text_st = st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=30)


@given(row=st.fixed_dictionaries(dict.fromkeys(COLUMNS, text_st)))
def test_a_summary_row_is_exactly_one_csv_line(row: dict[str, str]) -> None:
    out = csv_line(row).decode("utf-8")
    assert out.endswith("\n") and out.count("\n") == 1
    (parsed,) = list(csv.reader(io.StringIO(out)))
    assert parsed == [one_line(row[c]) for c in COLUMNS]  # control characters shown escaped, never raw
    assert all(not any(ch in cell for ch in "\r\n\x1b") for cell in parsed)


@given(key=st.text(max_size=20), buckets=st.integers(min_value=1, max_value=500))
def test_bucket_is_stable_and_in_range(key: str, buckets: int) -> None:
    b = bucket_of(key, buckets)
    assert 0 <= b < buckets and b == bucket_of(key, buckets)


def test_patient_key_reads_subject_patient_individual_and_absolute_references() -> None:
    assert patient_key({"resourceType": "Patient", "id": "a"}) == "Patient/a"
    assert patient_key({"resourceType": "Patient"}) is None
    assert patient_key({"resourceType": "Condition", "subject": {"reference": "Patient/b"}}) == "Patient/b"
    assert (
        patient_key({"resourceType": "Coverage", "patient": {"reference": "https://x.org/fhir/Patient/c/_history/2"}})
        == "Patient/c"
    )
    assert patient_key({"resourceType": "FamilyMemberHistory", "patient": {"reference": "Patient/d"}}) == "Patient/d"
    assert patient_key({"resourceType": "Observation", "subject": {"reference": "Group/g"}}) is None
    assert patient_key({"resourceType": "Medication", "id": "m"}) is None


def test_plan_orders_inputs_and_keeps_an_export_together(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text("{}")
    ex = tmp_path / "b-export"
    ex.mkdir()
    (ex / "Patient.ndjson").write_text(json.dumps({"resourceType": "Patient", "id": "p"}) + "\n")
    (ex / "Condition.ndjson").write_text(json.dumps({"resourceType": "Condition", "id": "c"}) + "\n")
    (ex / "manifest.json").write_text(
        json.dumps(
            {
                "transactionTime": "2026-01-01",
                "output": [
                    {"type": "Patient", "url": "https://x/Patient.ndjson", "count": 1},
                    {"type": "Observation", "url": "https://x/Observation.ndjson"},
                ],
            }
        )
    )
    (tmp_path / "c.ndjson").write_text(json.dumps({"resourceType": "Bundle", "entry": []}) + "\n\n")
    (tmp_path / "d.json").write_text("{}")
    items, exports = discover([str(tmp_path)])
    plan = make_plan(items, exports, str(tmp_path / "work"))
    kinds = [type(t).__name__ for t in plan.tasks]
    assert kinds[0] == "FilesTask" and kinds[-2:] == ["LinesTask", "FilesTask"]
    spills = [t for t in plan.tasks if isinstance(t, SpillTask)]
    groups = [t for t in plan.tasks if isinstance(t, GroupTask)]
    assert sorted(Path(t.name).name for t in spills) == ["Condition.ndjson", "Patient.ndjson"]
    assert groups and all(set(plan.deps[plan.tasks.index(g)]) == {plan.tasks.index(s) for s in spills} for g in groups)
    assert exports[0].declared == {"Patient.ndjson": 1}
    first = plan.tasks[0]
    assert isinstance(first, FilesTask)
    missing = [i.problem for i in first.items if i.problem is not None]
    assert [(Path(p.source).name, p.code) for p in missing] == [("Observation.ndjson", "not-found")]
    lines_task = next(t for t in plan.tasks if isinstance(t, LinesTask))
    assert (lines_task.start, lines_task.first_line) == (0, 1)
    assert plan.line_counts[str(tmp_path / "c.ndjson")] == 2
    assert plan.inputs_digest() == make_plan(*discover([str(tmp_path)]), str(tmp_path / "w2")).inputs_digest()
