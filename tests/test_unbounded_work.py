"""Unbounded work is bounded: evidence per reason is capped with a count of what was left out, and a bundle
with more resources than the documented limit is a named input error (``too-many-resources``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from conftest import ROOT
from hypothesis import given, settings
from hypothesis import strategies as st
from test_authoring import run_cli

import mdtflag.fhir.load as load
from mdtflag.api import Evaluator
from mdtflag.errors import INPUT_ERROR_CODES, InputError
from mdtflag.evaluation.result import MAX_EVIDENCE, EvidenceDoc, ReasonDoc, ResultModel, TextDoc
from mdtflag.output.render import to_json, to_text

EXAMPLE = ROOT / "fhir_examples" / "01-cholangio-braf-v600e-focuse-eligible.json"
AS_OF = "2026-11-01"


def _with_conditions(n: int) -> dict[str, Any]:
    """The shipped example with ``n`` more copies of its first Condition (new ids)."""
    bundle: dict[str, Any] = json.loads(EXAMPLE.read_text(encoding="utf-8"))
    cond = next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Condition")
    bundle["entry"] += [{"resource": {**cond, "id": f"copy{i}"}} for i in range(n)]
    return bundle


@pytest.fixture(scope="module")
def ev() -> Evaluator:
    return Evaluator(str(ROOT / "rules"))


@pytest.fixture(scope="module")
def many(ev: Evaluator) -> Any:
    return ev.evaluate(_with_conditions(3 * MAX_EVIDENCE), as_of=AS_OF)


def test_evidence_is_capped_and_counted(many: Any) -> None:
    capped = [r for f in many.flags for r in f.reasons if r.evidence_omitted]
    assert capped, "a criterion met by every copy of the Condition lists them all"
    for r in capped:
        assert len(r.evidence) == MAX_EVIDENCE
        assert r.evidence_omitted >= 2 * MAX_EVIDENCE
        assert list(r)[-1] == "evidence_omitted"
    assert all(len(r.evidence) <= MAX_EVIDENCE for f in many.flags for r in f.reasons)
    ResultModel.model_validate(orjson.loads(to_json(many)))  # the published format, read back


def test_the_shown_items_are_the_first_and_the_count_is_exact(many: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Against the same evaluation without the cap: the first MAX_EVIDENCE items, and the rest counted."""
    import mdtflag.evaluation.result as result_module

    monkeypatch.setattr(result_module, "MAX_EVIDENCE", 10**9)
    full = Evaluator(str(ROOT / "rules")).evaluate(_with_conditions(3 * MAX_EVIDENCE), as_of=AS_OF)
    uncapped = {(f.rule, r.criterion): r for f in full.flags for r in f.reasons}
    checked = 0
    for f in many.flags:
        for r in f.reasons:
            whole = uncapped[(f.rule, r.criterion)]
            assert list(r.evidence) == list(whole.evidence)[:MAX_EVIDENCE]
            assert (r.evidence_omitted or 0) == max(0, len(whole.evidence) - MAX_EVIDENCE)
            checked += bool(r.evidence_omitted)
    assert checked


def test_uncapped_results_are_unchanged(ev: Evaluator) -> None:
    result = ev.evaluate(str(EXAMPLE), as_of=AS_OF)
    assert all(r.evidence_omitted is None and "evidence_omitted" not in r for f in result.flags for r in f.reasons)
    assert b"evidence_omitted" not in to_json(result)


def test_text_shows_the_count(many: Any) -> None:
    text = to_text(many, detail=True)
    assert any(
        line.rstrip("]").endswith(f"+{r.evidence_omitted}")
        for f in many.flags
        for r in f.reasons
        if r.evidence_omitted
        for line in text.splitlines()
    )


@settings(max_examples=40, deadline=None)
@given(n=st.integers(0, 3 * MAX_EVIDENCE))
def test_cap_property(n: int) -> None:
    items = [EvidenceDoc(resource=f"Condition/{i}", element="code", value=str(i)) for i in range(n)]
    r = ReasonDoc(criterion="C", outcome="met", text=TextDoc(sv="x", en="x"), evidence=items, missing=[])
    assert list(r.evidence) == items[:MAX_EVIDENCE]
    assert (r.evidence_omitted or 0) == max(0, n - MAX_EVIDENCE)
    assert ("evidence_omitted" in r) == (n > MAX_EVIDENCE)


def test_resource_limit_is_a_named_input_error(ev: Evaluator, monkeypatch: pytest.MonkeyPatch) -> None:
    assert "too-many-resources" in INPUT_ERROR_CODES
    assert load.MAX_RESOURCES == 25_000
    monkeypatch.setattr(load, "MAX_RESOURCES", 50)
    bundle = _with_conditions(60)
    with pytest.raises(InputError) as e:
        ev.evaluate(bundle, as_of=AS_OF)
    assert e.value.code == "too-many-resources" and "limit of 50" in e.value.message
    ev.evaluate(_with_conditions(20), as_of=AS_OF)  # below the limit: a result


def test_resource_limit_applies_to_ndjson_patients(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(load, "MAX_RESOURCES", 30)
    bundle = _with_conditions(40)
    by_type: dict[str, list[bytes]] = {}
    for e in bundle["entry"]:
        by_type.setdefault(e["resource"]["resourceType"], []).append(orjson.dumps(e["resource"]))
    for rt, lines in by_type.items():
        (tmp_path / f"{rt}.ndjson").write_bytes(b"\n".join(lines) + b"\n")
    items = list(load.iter_inputs(tmp_path))
    assert [i.code for i in items if isinstance(i, InputError)] == ["too-many-resources"]


def test_cli_reports_the_limit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(load, "MAX_RESOURCES", 50)
    path = tmp_path / "big.json"
    path.write_text(json.dumps(_with_conditions(60)), encoding="utf-8")
    code, out, err = run_cli(["evaluate", str(path), "--as-of", AS_OF], capsys)
    assert code == 2 and "[too-many-resources]" in err
    assert json.loads(out)["error"]["code"] == "too-many-resources"
    monkeypatch.undo()  # batch workers read the limit in their own processes: use the real one
    path.write_text(json.dumps(_with_conditions(load.MAX_RESOURCES + 1)), encoding="utf-8")
    results = tmp_path / "results.ndjson"
    code, out, err = run_cli(["batch", str(path), "--as-of", AS_OF, "-o", str(results)], capsys)
    lines = results.read_text(encoding="utf-8").splitlines()
    assert code == 2 and len(lines) == 1 and json.loads(lines[0])["error"]["code"] == "too-many-resources"


def test_patients_leave_nothing_of_their_own_in_the_shared_caches() -> None:
    """Pieces kept with the compiled rule set for every patient never name a patient's resource: a worker
    that evaluates a million distinct patients must not keep a million patients' missing-data items."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("synth_bulk", ROOT / "bench" / "synth_bulk.py")
    assert spec is not None and spec.loader is not None
    synth = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(synth)
    ev = Evaluator(str(ROOT / "rules"))
    templates = synth.templates()  # the generator's own patients, ids and references marked
    mark = synth.MARK.encode()
    shared = ev.compiled().shared

    def sizes() -> dict[str, int]:
        return {k: len(v) for k, v in shared.items() if isinstance(v, (dict, set, list))}

    def copy(n: int) -> None:
        for rows in templates:  # every id and reference made distinct for patient n, as in a Bulk export
            entries = [{"resource": orjson.loads(raw.replace(mark, str(n).encode()))} for _, raw in rows]
            to_json(ev.evaluate({"resourceType": "Bundle", "type": "collection", "entry": entries}, as_of=AS_OF))

    copy(0)
    copy(1)
    before = sizes()
    for n in range(2, 5):
        copy(n)
    assert sizes() == before  # three more rounds of new patients: nothing grew
    for m in shared.get("missing", {}):
        assert m.resource is None and m.element is None, m
