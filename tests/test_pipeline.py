"""End to end on the minimal rule set: statuses, decisions, reasons, missing data, reproducibility, CLI."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import DATA, ROOT

from mdtflag.api import Evaluator
from mdtflag.errors import InputError
from mdtflag.evaluation.result import ResultModel, result_json_schema
from mdtflag.output.render import to_json, to_text

MINI = DATA / "rules_min"
AS_OF = "2026-11-01"


def obs(id_: str, loinc: str, date: str, **value: Any) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": id_,
        "status": "final",
        "subject": {"reference": "Patient/p1"},
        "code": {"coding": [{"system": "http://loinc.org", "code": loinc}]},
        "effectiveDateTime": date,
        **value,
    }


def qty(v: float, unit: str) -> dict[str, Any]:
    return {"valueQuantity": {"value": v, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit}}


def bundle(
    *, birth: str = "1960-03-01", county: str = "13", municipality: str | None = "1384", extra: tuple = ()
) -> dict[str, Any]:
    addr: dict[str, Any] = {"use": "home", "state": county}
    if municipality:
        addr["district"] = municipality
    res: list[dict[str, Any]] = [
        {"resourceType": "Patient", "id": "p1", "birthDate": birth, "gender": "female", "address": [addr]},
        {
            "resourceType": "Condition",
            "id": "c1",
            "subject": {"reference": "Patient/p1"},
            "verificationStatus": {
                "coding": [
                    {"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": "confirmed"}
                ]
            },
            "clinicalStatus": {
                "coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]
            },
            "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-se", "code": "C22.1"}]},
            "onsetDateTime": "2025-01-10",
        },
        obs("e1", "89247-1", "2026-10-20", valueInteger=1),
        obs("l1", "751-8", "2026-10-25", **qty(2.1, "10*9/L")),
        obs("b1", "14631-6", "2026-10-25", **qty(30, "umol/L")),
        obs(
            "v1",
            "69548-6",
            "2026-09-01",
            valueCodeableConcept={"coding": [{"system": "http://loinc.org", "code": "LA9633-4"}]},
            component=[
                {
                    "code": {"coding": [{"system": "http://loinc.org", "code": "48018-6"}]},
                    "valueCodeableConcept": {
                        "coding": [{"system": "http://www.genenames.org", "code": "HGNC:1097", "display": "BRAF"}]
                    },
                }
            ],
        ),
        obs("m1", "measurable-disease", "2026-10-20", valueBoolean=True),
    ]
    res[-1]["code"] = {"coding": [{"system": "urn:mdtflag:assertion", "code": "measurable-disease"}]}
    res.extend(extra)
    return {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": r} for r in res]}


@pytest.fixture(scope="module")
def ev() -> Evaluator:
    return Evaluator(MINI)


def test_flagged_path_with_reasons_and_target(ev: Evaluator) -> None:
    r = ev.evaluate(bundle(), as_of=AS_OF)
    fit = r.flag("T-FIT")
    assert fit is not None and fit.status == "flagged"
    assert r.decisions["mdk"].level == "national" and r.decisions["mdk"].rules == ["T-FIT"]
    ecog = next(x for x in fit.reasons if x.criterion == "T-ECOG")
    assert ecog.outcome == "met" and ecog.text.en == "ECOG 1 (2026-10-20) ≤ 2"
    assert ecog.evidence[0].resource == "Observation/e1"
    cohorts = {c.key: c.status for c in fit.cohorts or []}
    assert cohorts == {"K-BRAF": "flagged", "K-KRAS": "not_flagged", "K-OLD": "not_applicable"}
    kras = next(c for c in fit.cohorts or [] if c.key == "K-KRAS")
    assert kras.failed == ["T-VAR"] and kras.enrolled == 3


def test_missing_data_is_unknown_never_false(ev: Evaluator) -> None:
    b = bundle()
    b["entry"] = [e for e in b["entry"] if e["resource"]["id"] != "e1"]  # no ECOG
    r = ev.evaluate(b, as_of=AS_OF)
    fit = r.flag("T-FIT")
    assert fit is not None and fit.status == "indeterminate"
    assert any(m.fact == "ecog" and m.reason == "absent" for m in fit.missing)
    # the decision falls to the next level but lists the national rule as pending, with what is missing
    d = r.decisions["mdk"]
    assert d.level == "local" and [p.rule for p in d.pending] == ["T-FIT"]
    assert any("ECOG" in m.text.en for m in d.pending[0].missing)


def test_stale_ecog_is_unknown(ev: Evaluator) -> None:
    r = ev.evaluate(bundle(), as_of="2027-06-01")
    reason = next(x for x in r.flag("T-FIT").reasons if x.criterion == "T-ECOG")  # type: ignore[union-attr]
    assert reason.outcome == "unknown" and reason.missing[0].reason == "stale"
    assert "older than 30 days" in reason.missing[0].text.en


def test_uln_missing_is_unknown(ev: Evaluator) -> None:
    f = ev.evaluate(bundle(), as_of=AS_OF).flag("T-ULN")
    assert f is not None and f.status == "indeterminate"
    assert f.missing[0].field == "x_uln" and "ULN" in f.missing[0].text.en


def test_uln_present_decides(ev: Evaluator) -> None:
    b = bundle()
    for e in b["entry"]:
        if e["resource"]["id"] == "b1":
            e["resource"]["referenceRange"] = [
                {"high": {"value": 20, "unit": "umol/L", "system": "http://unitsofmeasure.org", "code": "umol/L"}}
            ]
    f = ev.evaluate(b, as_of=AS_OF).flag("T-ULN")
    assert f is not None and f.status == "flagged"  # 30/20 = 1.5 × ULN < 2


def test_child_is_not_applicable_for_adult_rule(ev: Evaluator) -> None:
    r = ev.evaluate(bundle(birth="2015-01-01"), as_of=AS_OF)
    assert r.flag("T-ADULT").status == "not_flagged"  # type: ignore[union-attr]
    assert r.flag("T-FIT").status == "not_applicable"  # type: ignore[union-attr]
    assert r.decisions["mdk"].level == "undetermined"


def test_region_changes_target_not_flags(ev: Evaluator) -> None:
    south = ev.evaluate(bundle(municipality="1380"), as_of=AS_OF)
    west = ev.evaluate(bundle(municipality="1384"), as_of=AS_OF)
    unknown = ev.evaluate(bundle(municipality=None), as_of=AS_OF)
    assert south.decisions["mdk"].target.healthcare_region == "sodra"  # type: ignore[union-attr]
    assert west.decisions["mdk"].target.healthcare_region == "vastra"  # type: ignore[union-attr]
    assert unknown.decisions["mdk"].target.healthcare_region is None  # type: ignore[union-attr]
    for other in (west, unknown):
        assert [(f.rule, f.status) for f in other.flags] == [(f.rule, f.status) for f in south.flags]


def test_profiles_change_thresholds(ev: Evaluator) -> None:
    b = bundle()
    a = ev.evaluate(b, as_of=AS_OF)
    strict = ev.evaluate(b, as_of=AS_OF, profile="B")
    assert a.ruleset.profile == "A" and strict.ruleset.profile == "B"
    anc = next(x for x in strict.flag("T-FIT").reasons if x.criterion == "T-ANC")  # type: ignore[union-attr]
    assert anc.outcome == "met"  # 2.1 ≥ 2.0
    ecog_b = next(x for x in strict.flag("T-FIT").reasons if x.criterion == "T-ECOG")  # type: ignore[union-attr]
    assert ecog_b.outcome == "met" and ecog_b.text.en.endswith("≤ 1")


def test_byte_identical_and_schema_valid(ev: Evaluator) -> None:
    b = bundle()
    one = to_json(ev.evaluate(copy.deepcopy(b), as_of=AS_OF))
    two = to_json(Evaluator(MINI).evaluate(json.dumps(b).encode(), as_of=AS_OF))
    assert one == two
    data = json.loads(one)
    assert data["schema"] == "mdtflag.result/1" and data["as_of"] == AS_OF
    ResultModel.model_validate(data)  # round-trips through the published model
    schema = result_json_schema()
    assert schema["$id"] == "mdtflag.result/1"
    assert set(schema["required"]) >= {"patient", "as_of", "engine", "ruleset", "decisions", "flags", "data_quality"}


def test_bad_input_raises_typed_error(ev: Evaluator) -> None:
    with pytest.raises(InputError) as e:
        ev.evaluate(b"{not json", as_of=AS_OF)
    assert e.value.code == "not-json"
    with pytest.raises(InputError) as e:
        ev.evaluate({"resourceType": "Bundle", "type": "collection", "entry": []}, as_of=AS_OF)
    assert e.value.code == "no-patient"


def test_invalid_resource_becomes_note_not_loss(ev: Evaluator) -> None:
    bad = obs("bad1", "89247-1", "2026-10-30", valueInteger="three")
    r = ev.evaluate(bundle(extra=(bad,)), as_of=AS_OF)
    assert any(n.resource == "Observation/bad1" for n in r.data_quality)
    # the invalid ECOG is later than the valid one: the latest ECOG is on file but unreadable
    fit = r.flag("T-FIT")
    assert fit is not None and fit.status == "indeterminate"
    assert any(m.fact == "ecog" and m.reason == "unreadable" for m in fit.missing)
    # an invalid ECOG older than the valid one does not hide it
    old = obs("bad1", "89247-1", "2026-10-01", valueInteger="three")
    r = ev.evaluate(bundle(extra=(old,)), as_of=AS_OF)
    assert any(n.resource == "Observation/bad1" for n in r.data_quality)
    assert r.flag("T-FIT").status == "flagged"  # type: ignore[union-attr]


def test_text_output_golden(ev: Evaluator, golden) -> None:
    r = ev.evaluate(bundle(), as_of=AS_OF)
    golden("pipeline_text_en.txt", to_text(r, "en", detail=True))
    golden("pipeline_text_sv.txt", to_text(r, "sv", detail=True))


def test_json_output_golden(ev: Evaluator, golden) -> None:
    b = bundle()
    b["entry"] = [e for e in b["entry"] if e["resource"]["id"] != "e1"]
    golden("pipeline_indeterminate.json", to_json(ev.evaluate(b, as_of=AS_OF)).decode())


def _cli(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "mdtflag.cli", *args], input=stdin, capture_output=True, cwd=ROOT, timeout=120
    )


def test_cli_exit_codes(tmp_path: Path) -> None:
    good = tmp_path / "p.json"
    good.write_text(json.dumps(bundle()))
    ok = _cli("evaluate", str(good), "--rules", str(MINI), "--as-of", AS_OF)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["patient"] == "Patient/p1"
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    r = _cli("evaluate", str(bad), "--rules", str(MINI), "--as-of", AS_OF)
    assert r.returncode == 2 and b"not-json" in r.stderr
    assert json.loads(r.stdout)["schema"] == "mdtflag.error/1"
    assert _cli("evaluate", str(good), "--rules", str(tmp_path), "--as-of", AS_OF).returncode == 3
    assert _cli("evaluate", str(good), "--rules", str(MINI), "--as-of", "tomorrow").returncode == 64
    stdin = _cli("evaluate", "-", "--rules", str(MINI), "--as-of", AS_OF, "--format", "text", stdin=good.read_bytes())
    assert stdin.returncode == 0 and stdin.stdout.decode().startswith("Patient/p1")


def test_batch_every_input_ends_as_result_or_error(tmp_path: Path) -> None:
    d = tmp_path / "in"
    d.mkdir()
    (d / "a.json").write_text(json.dumps(bundle()))
    (d / "b.json").write_text("[1, 2")
    (d / "c.json").write_text(json.dumps({"resourceType": "Patient", "id": "x"}))
    out = tmp_path / "out.ndjson"
    summary = tmp_path / "s.csv"
    r = _cli(
        "batch",
        str(d),
        "--rules",
        str(MINI),
        "--as-of",
        AS_OF,
        "-o",
        str(out),
        "--summary",
        str(summary),
        "--workers",
        "2",
    )
    assert r.returncode == 2, r.stderr
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert [x["schema"] for x in lines] == ["mdtflag.result/1", "mdtflag.error/1", "mdtflag.error/1"]
    assert [x.get("error", {}).get("code") for x in lines[1:]] == ["not-json", "not-bundle"]
    assert summary.read_text().count("\n") == 4


def test_batch_worker_crash_costs_one_input(tmp_path: Path) -> None:
    """A worker process that dies (as the C engine could) loses that input only, named as an error."""
    import os

    d = tmp_path / "in"
    d.mkdir()
    for i in range(6):
        (d / f"p{i}.json").write_text(json.dumps(bundle()))
    out = tmp_path / "out.ndjson"
    env = dict(os.environ, MDTFLAG_FAULT_CRASH_ON="p3.json")
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "mdtflag.cli",
            "batch",
            str(d),
            "--rules",
            str(MINI),
            "--as-of",
            AS_OF,
            "--workers",
            "2",
            "-o",
            str(out),
        ],
        capture_output=True,
        cwd=ROOT,
        timeout=300,
        env=env,
    )
    assert r.returncode == 2, r.stderr
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(lines) == 6
    errors = [x for x in lines if x["schema"] == "mdtflag.error/1"]
    assert [(e["source"].endswith("p3.json"), e["error"]["code"]) for e in errors] == [(True, "engine-crash")]


def test_results_do_not_depend_on_which_patients_came_before() -> None:
    """Evaluation shares patient-independent pieces between patients (results of criteria without
    data, their reasons, validation plans): whatever the order, and with caches warm or cold, every
    patient's output is byte-identical."""
    import mdtflag.fhir.fastvalid as fastvalid

    files = sorted((ROOT / "fhir_examples").glob("*.json"))
    data = {p.name: p.read_bytes() for p in files}

    def run(order: list[str], ev: Evaluator) -> dict[str, bytes]:
        return {name: to_json(ev.evaluate(data[name], as_of="2026-11-01")) for name in order}

    names = list(data)
    fastvalid.clear_cache()
    forward = run(names, Evaluator(ROOT / "rules"))
    fastvalid.clear_cache()
    shared = Evaluator(ROOT / "rules")
    backward = run(names[::-1], shared)
    again = run(names[1::2] + names[0::2], shared)  # the same evaluator, warm, another order
    for name in names:
        assert forward[name] == backward[name] == again[name], name


def test_threads_sharing_one_evaluator_give_the_sequential_results() -> None:
    """One Evaluator used from several threads at once (as an HTTP service does): every output is
    byte-identical to the one computed alone, although the threads fill the shared caches together."""
    from concurrent.futures import ThreadPoolExecutor

    import mdtflag.fhir.fastvalid as fastvalid

    files = sorted((ROOT / "fhir_examples").glob("*.json"))
    data = [p.read_bytes() for p in files]
    sequential = Evaluator(ROOT / "rules")
    alone = [to_json(sequential.evaluate(d, as_of="2026-11-01")) for d in data]
    fastvalid.clear_cache()
    shared = Evaluator(ROOT / "rules")
    with ThreadPoolExecutor(max_workers=4) as pool:
        together = list(pool.map(lambda d: to_json(shared.evaluate(d, as_of="2026-11-01")), data * 3))
    assert together == alone * 3


def test_evaluation_leaves_no_reference_cycles() -> None:
    """Everything one evaluation builds is freed as soon as it is dropped: no reference cycle keeps a
    patient's data alive until the garbage collector runs (which would make every collection scan
    it, and lengthen the slowest evaluations)."""
    import collections
    import gc

    files = sorted((ROOT / "fhir_examples").glob("*.json"))
    data = [p.read_bytes() for p in files]
    shared = Evaluator(ROOT / "rules")
    for mode in ("facts", "none", "all"):  # first sight of every shape and cache entry
        for d in data:
            to_json(shared.evaluate(d, as_of=AS_OF, validate=mode))  # type: ignore[arg-type]
    gc.collect()
    debug = gc.get_debug()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        for mode in ("facts", "none", "all"):
            for d in data:
                result = shared.evaluate(d, as_of=AS_OF, validate=mode)  # type: ignore[arg-type]
                to_json(result)
                to_text(result, "en", detail=True)
                del result
        gc.collect()
        left = collections.Counter(type(o).__name__ for o in gc.garbage)
    finally:
        gc.garbage.clear()
        gc.set_debug(debug)
        gc.enable()
    assert not left, left.most_common(8)
