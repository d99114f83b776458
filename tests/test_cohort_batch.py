"""``mdtflag batch`` at scale: accounting, Bulk exports grouped out of core, resume after kill -9, worker death."""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import DATA, ROOT

MINI = DATA / "rules_min"
RULES = ROOT / "rules"
AS_OF = "2026-11-01"
EXAMPLES = sorted(p for p in (ROOT / "fhir_examples").glob("*.json"))


def cli(
    *args: str, stdin: bytes | None = None, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "mdtflag.cli", "batch", *args],
        input=stdin,
        capture_output=True,
        check=False,
        cwd=ROOT,
        timeout=timeout,
        env=env,
    )


def patient_bundle(pid: str = "p1") -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {"resource": {"resourceType": "Patient", "id": pid, "birthDate": "1960-03-01", "gender": "female"}},
            {
                "resource": {
                    "resourceType": "Condition",
                    "id": f"c-{pid}",
                    "subject": {"reference": f"Patient/{pid}"},
                    "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-se", "code": "C22.1"}]},
                }
            },
        ],
    }


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_bytes().splitlines()]


def manifest(out: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(Path(str(out) + ".manifest.json").read_bytes())
    return doc


def synth(out: Path, n: int, *extra: str) -> None:
    subprocess.run(
        [sys.executable, str(ROOT / "bench" / "synth_bulk.py"), str(out), "-n", str(n), *extra],
        check=True,
        capture_output=True,
        timeout=120,
    )


def key(doc: dict[str, Any]) -> str:
    return doc.get("patient") or f"{doc['source']}:{doc.get('error', {}).get('line')}"


# ------------------------------------------------------------------------------------------------
# accounting of files and folders


def test_mixed_good_and_bad_inputs_each_end_in_one_place(tmp_path: Path) -> None:
    d = tmp_path / "in"
    (d / "sub" / "deeper").mkdir(parents=True)
    (d / "a.json").write_text(json.dumps(patient_bundle("a")))
    (d / "b.json").write_text("[1, 2")
    (d / "sub" / "c.json").write_text(json.dumps({"resourceType": "Patient", "id": "x"}))
    (d / "sub" / "deeper" / "d.json").write_text(json.dumps(patient_bundle("d")))
    (d / "notes.txt").write_text("not an input")
    out = tmp_path / "out.ndjson"
    summary = tmp_path / "s.csv"
    r = cli(str(d), "--rules", str(MINI), "--as-of", AS_OF, "-o", str(out), "--summary", str(summary), "--workers", "2")
    assert r.returncode == 2, r.stderr
    docs = lines(out)
    assert [(Path(x["source"]).name if "source" in x else x["patient"]) for x in docs] == [
        "Patient/a",
        "b.json",
        "c.json",
        "Patient/d",
    ]
    assert [x.get("error", {}).get("code") for x in docs] == [None, "not-json", "not-bundle", None]
    m = manifest(out)
    assert m["state"] == "complete"
    assert m["counts"]["inputs"] == 4 == m["counts"]["results"] + m["counts"]["errors"] + m["counts"]["unassigned"]
    assert (m["counts"]["results"], m["counts"]["errors"]) == (2, 2)
    assert m["counts"]["error_codes"] == {"not-bundle": 1, "not-json": 1}
    assert b"4 inputs = 2 results + 2 errors + 0 resources that belong to no patient" in r.stderr
    assert summary.read_text().count("\n") == 5
    assert not Path(str(out) + ".work").exists()


def test_folder_of_folders_is_read_recursively_and_no_recursive_names_the_empty_folder(tmp_path: Path) -> None:
    d = tmp_path / "cohort"
    for region in ("west", "south"):
        (d / region).mkdir(parents=True)
        (d / region / f"{region}.json").write_text(json.dumps(patient_bundle(region)))
    out = tmp_path / "out.ndjson"
    r = cli(str(d), "--rules", str(MINI), "--as-of", AS_OF, "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert [x["patient"] for x in lines(out)] == ["Patient/south", "Patient/west"]
    flat = cli(str(d), "--rules", str(MINI), "--as-of", AS_OF, "-o", str(out), "--no-recursive")
    assert flat.returncode == 2
    (err,) = lines(out)
    assert err["error"]["code"] == "not-found" and "subfolders not read" in err["error"]["message"]
    assert b"1 inputs = 0 results + 1 errors" in flat.stderr


def test_empty_folder_is_a_named_error_not_zero_inputs(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    out = tmp_path / "out.ndjson"
    r = cli(str(tmp_path / "empty"), "--rules", str(MINI), "--as-of", AS_OF, "-o", str(out))
    assert r.returncode == 2
    (err,) = lines(out)
    assert err["source"].endswith("empty") and err["error"]["code"] == "not-found"


def test_dangling_link_and_special_file_are_named_errors(tmp_path: Path) -> None:
    d = tmp_path / "in"
    d.mkdir()
    (d / "a.json").write_text(json.dumps(patient_bundle("a")))
    os.symlink(tmp_path / "gone.json", d / "b.json")
    os.mkfifo(d / "c.json")
    (d / "d.json").symlink_to(d / "a.json")  # a link that resolves is read
    out = tmp_path / "out.ndjson"
    r = cli(str(d), "--rules", str(MINI), "--as-of", AS_OF, "-o", str(out))
    assert r.returncode == 2, r.stderr
    docs = lines(out)
    assert [x.get("error", {}).get("code") for x in docs] == [None, "not-found", "not-found", None]
    assert "dangling link" in docs[1]["error"]["message"] and docs[1]["source"].endswith("b.json")
    assert "not a regular file" in docs[2]["error"]["message"]


def test_stdin_one_bundle_per_line(tmp_path: Path) -> None:
    data = b"\n".join(json.dumps(patient_bundle(p)).encode() for p in ("s1", "s2")) + b"\n\n{oops\n"
    out = tmp_path / "out.ndjson"
    r = cli("-", "--rules", str(MINI), "--as-of", AS_OF, "-o", str(out), stdin=data)
    assert r.returncode == 2, r.stderr
    docs = lines(out)
    assert [x.get("patient") for x in docs[:2]] == ["Patient/s1", "Patient/s2"]
    assert (docs[2]["source"], docs[2]["error"]["code"], docs[2]["error"]["line"]) == ("<stdin>", "not-json", 4)
    to_stdout = cli("-", "--rules", str(MINI), "--as-of", AS_OF, stdin=data)
    assert to_stdout.stdout == out.read_bytes()


# ------------------------------------------------------------------------------------------------
# Bulk Data exports


def test_bulk_export_every_line_in_one_place(tmp_path: Path) -> None:
    d = tmp_path / "export"
    d.mkdir()
    patients = [
        {"resourceType": "Patient", "id": "p1", "birthDate": "1960-01-01"},
        {"resourceType": "Patient", "birthDate": "1950-01-01"},
    ]  # no id: an error
    conditions = [
        {"resourceType": "Condition", "id": "c1", "subject": {"reference": "Patient/p1"}},
        {"resourceType": "Condition", "id": "c2"},  # no subject: unassigned
        {"resourceType": "Condition", "id": "c3", "subject": {"reference": "Patient/ghost"}},
    ]
    (d / "Patient.ndjson").write_bytes(b"\n".join(json.dumps(p).encode() for p in patients) + b"\n\n")
    (d / "Condition.ndjson").write_bytes(b"\n".join(json.dumps(c).encode() for c in conditions) + b"\n{not json\n[1]\n")
    out = tmp_path / "out.ndjson"
    r = cli(str(d), "--rules", str(MINI), "--as-of", AS_OF, "-o", str(out), "--workers", "2")
    assert r.returncode == 2, r.stderr
    docs = lines(out)
    errors = sorted(
        (x["source"][len(str(d)) + 1 :], x["error"]["code"], x["error"].get("line"))
        for x in docs
        if x["schema"] == "mdtflag.error/1"
    )
    assert errors == [
        ("Condition.ndjson", "not-bundle", 5),
        ("Condition.ndjson", "not-json", 4),
        ("Condition.ndjson#Patient/ghost", "no-patient", None),
        ("Patient.ndjson", "no-patient", 2),
    ]
    assert [x["patient"] for x in docs if x["schema"] == "mdtflag.result/1"] == ["Patient/p1"]
    m = manifest(out)
    c = m["counts"]
    assert c["lines"] == {"read": 8, "blank": 1, "in_results": 2, "in_errors": 4, "unassigned": 1}
    assert c["lines_balanced"] and c["unassigned"] == 1
    assert m["unassigned"]["examples"] == [{"file": str(d / "Condition.ndjson"), "line": 2, "resource": "Condition/c2"}]
    assert c["inputs"] == c["results"] + c["errors"] + c["unassigned"] == 6


def test_bulk_gzip_with_manifest_equals_plain_and_in_memory_grouping(tmp_path: Path) -> None:
    from mdtflag.api import Evaluator
    from mdtflag.output.render import to_json

    synth(tmp_path / "plain", 60, "--unassigned", "2")
    synth(tmp_path / "gz", 60, "--unassigned", "2", "--gzip")
    assert (tmp_path / "gz" / "Patient.ndjson.gz").exists()
    a, b = tmp_path / "plain.ndjson", tmp_path / "gz.ndjson"
    ra = cli(str(tmp_path / "plain"), "--as-of", AS_OF, "-o", str(a), "--workers", "2")
    rb = cli(str(tmp_path / "gz"), "--as-of", AS_OF, "-o", str(b))
    assert ra.returncode == 0 and rb.returncode == 0, (ra.stderr, rb.stderr)
    plain = {d["patient"]: d for d in lines(a)}
    gz = {d["patient"]: d for d in lines(b)}
    assert len(plain) == 60 and plain == gz
    ev = Evaluator(RULES)
    expected = {}
    for doc in ev.evaluate_all(tmp_path / "plain", as_of=AS_OF):
        d = json.loads(to_json(doc))
        if d["schema"] == "mdtflag.result/1":
            expected[d["patient"]] = d
    assert plain == expected
    m = manifest(b)
    assert m["exports"][0]["manifest"].endswith("manifest.json")
    assert m["counts"]["unassigned"] == m["unassigned"]["count"] >= 2
    assert m["unassigned"]["by_type"]["Observation"] == 2


def test_bulk_manifest_names_a_missing_file(tmp_path: Path) -> None:
    synth(tmp_path / "ex", 3)
    (tmp_path / "ex" / "Condition.ndjson").unlink()
    out = tmp_path / "out.ndjson"
    r = cli(str(tmp_path / "ex"), "--as-of", AS_OF, "-o", str(out))
    assert r.returncode == 2
    missing = [d for d in lines(out) if d.get("source", "").endswith("Condition.ndjson")]
    assert missing and missing[0]["error"]["code"] == "not-found"
    assert "listed in the export's manifest.json" in missing[0]["error"]["message"]


def test_bulk_on_stdin(tmp_path: Path) -> None:
    res = [
        {"resourceType": "Patient", "id": "z", "birthDate": "1970-01-01"},
        {"resourceType": "Condition", "id": "c", "subject": {"reference": "Patient/z"}},
        {"resourceType": "Observation", "id": "o", "status": "final"},
    ]
    out = tmp_path / "out.ndjson"
    r = cli(
        "-",
        "--rules",
        str(MINI),
        "--as-of",
        AS_OF,
        "-o",
        str(out),
        stdin=b"\n".join(json.dumps(x).encode() for x in res),
    )
    assert r.returncode == 0, r.stderr
    (doc,) = lines(out)
    assert doc["patient"] == "Patient/z"
    assert manifest(out)["unassigned"]["examples"] == [{"file": "<stdin>", "line": 3, "resource": "Observation/o"}]


def test_bulk_grouping_with_many_buckets_in_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Small buckets and spill ranges: patients split over many spill files and buckets still come out whole."""
    import datetime as dt

    from mdtflag.cohort import plan
    from mdtflag.cohort.run import Options, RuleSetId, run
    from mdtflag.ruleset.load import load_ruleset

    synth(tmp_path / "ex", 41)
    monkeypatch.setattr(plan, "BUCKET_BYTES", 20_000)
    monkeypatch.setattr(plan, "SPILL_BYTES", 30_000)
    rs = load_ruleset(MINI)
    out = tmp_path / "out.ndjson"
    opts = Options(
        [str(tmp_path / "ex")],
        RuleSetId(str(MINI), rs.name, rs.version, rs.digest),
        dt.date(2026, 11, 1),
        rs.profiles.default,
        "facts",
        workers=2,
        output=str(out),
    )
    outcome = run(opts)
    assert outcome.results == 41 and outcome.errors == 0
    assert outcome.manifest["plan"]["tasks"] > 20
    docs = lines(out)
    assert sorted(d["patient"] for d in docs) == sorted(f"Patient/{p}" for p in _patient_ids(tmp_path / "ex"))
    assert outcome.manifest["counts"]["lines_balanced"]


def _patient_ids(folder: Path) -> list[str]:
    return [json.loads(x)["id"] for x in (folder / "Patient.ndjson").read_bytes().splitlines()]


# ------------------------------------------------------------------------------------------------
# worker death, kill -9 of the parent, resume


def _copies(folder: Path, n: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        shutil.copy(EXAMPLES[i % len(EXAMPLES)], folder / f"{i:05d}.json")


def test_worker_crash_costs_only_its_input_in_a_bulk_group(tmp_path: Path) -> None:
    synth(tmp_path / "ex", 30)
    out = tmp_path / "out.ndjson"
    env = dict(os.environ, MDTFLAG_FAULT_CRASH_ON="#Patient/p07-6")
    r = cli(str(tmp_path / "ex"), "--as-of", AS_OF, "-o", str(out), "--workers", "2", env=env)
    assert r.returncode == 2, r.stderr
    docs = lines(out)
    assert len(docs) == 30
    crashed = [d for d in docs if d["schema"] == "mdtflag.error/1"]
    assert [(d["source"].endswith("#Patient/p07-6"), d["error"]["code"]) for d in crashed] == [(True, "engine-crash")]
    c = manifest(out)["counts"]
    assert c["lines_balanced"] and c["error_codes"] == {"engine-crash": 1}


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as fh:
            return [int(x) for x in fh.read().split()]
    except OSError:
        return []


def _workers(pid: int) -> list[int]:
    """The worker processes among a run's children (not multiprocessing's resource tracker)."""
    out = []
    for c in _children(pid):
        try:
            with open(f"/proc/{c}/cmdline", "rb") as fh:
                cmd = fh.read()
        except OSError:
            continue
        if b"spawn_main" in cmd:
            out.append(c)
    return out


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def _start(args: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "mdtflag.cli", "batch", *args],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _wait_for(cond: Any, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.05)
    return False


def test_killed_worker_mid_run_loses_at_most_its_current_input(tmp_path: Path) -> None:
    _copies(tmp_path / "in", 240)
    out = tmp_path / "out.ndjson"
    proc = _start([str(tmp_path / "in"), "--as-of", AS_OF, "-o", str(out), "--workers", "2"])
    try:
        assert _wait_for(lambda: out.exists() and out.stat().st_size > 0, 120), "the run never wrote a result"
        workers = _workers(proc.pid)
        assert len(workers) == 2
        os.kill(workers[0], signal.SIGKILL)
        code = proc.wait(timeout=300)
        assert code in (0, 2), proc.stderr.read() if proc.stderr else code
    finally:
        proc.kill()
    docs = lines(out)
    assert len(docs) == 240
    sources = [d.get("source") for d in docs if d["schema"] == "mdtflag.error/1"]
    assert len(sources) <= 1 and all(d["error"]["code"] == "engine-crash" for d in docs if "error" in d)
    m = manifest(out)
    assert m["counts"]["results"] + m["counts"]["errors"] == 240


def test_resume_after_kill_9_of_the_parent(tmp_path: Path) -> None:
    _copies(tmp_path / "in", 800)
    out, summary = tmp_path / "out.ndjson", tmp_path / "s.csv"
    args = [str(tmp_path / "in"), "--as-of", AS_OF, "-o", str(out), "--summary", str(summary), "--workers", "2"]
    proc = _start(args)
    man = Path(str(out) + ".manifest.json")

    def checkpointed() -> bool:
        try:
            return bool(json.loads(man.read_bytes())["progress"]["tasks_committed"] >= 1)
        except (OSError, ValueError, KeyError):
            return False

    try:
        assert _wait_for(checkpointed, 180), "no checkpoint was written"
        workers = _workers(proc.pid)
        children = _children(proc.pid)
        assert len(workers) == 2
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        proc.kill()
    assert _wait_for(lambda: not any(_alive(c) for c in children), 20), "processes outlived their parent"
    before = json.loads(man.read_bytes())
    assert before["state"] == "running"
    assert before["progress"]["tasks_committed"] < before["plan"]["tasks"], "the run ended before the kill"

    # refused: another as_of, another rule set, changed inputs
    refused = cli(*args[:1], "--as-of", "2026-11-02", *args[3:], "--resume")
    assert refused.returncode == 64 and b"as_of changed" in refused.stderr
    other_rules = tmp_path / "rules"
    shutil.copytree(RULES, other_rules)
    meta = other_rules / "ruleset.yaml"
    meta.write_text(meta.read_text() + "\n# edited\n")
    refused = cli(*args, "--rules", str(other_rules), "--resume")
    assert refused.returncode == 64 and b"rule set changed" in refused.stderr
    extra = tmp_path / "in" / "zz-late.json"
    shutil.copy(EXAMPLES[0], extra)
    refused = cli(*args, "--resume")
    assert refused.returncode == 64 and b"inputs changed" in refused.stderr and b"zz-late.json" in refused.stderr
    extra.unlink()

    resumed = cli(*args, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    docs = lines(out)
    names = [Path(d["patient"]).name for d in docs]
    assert len(docs) == 800 and all(d["schema"] == "mdtflag.result/1" for d in docs)
    assert summary.read_text().count("\n") == 801
    rows = summary.read_text().splitlines()[1:]
    assert [Path(r.split(",")[0]).name for r in rows] == [f"{i:05d}.json" for i in range(800)]
    assert len(names) == 800
    m = manifest(out)
    assert m["state"] == "complete" and m["resumed"] == 1 and m["counts"]["results"] == 800

    clean = tmp_path / "clean.ndjson"
    assert cli(args[0], "--as-of", AS_OF, "-o", str(clean), "--workers", "2").returncode == 0
    assert clean.read_bytes() == out.read_bytes()
    again = cli(*args, "--resume")  # a complete run resumes to nothing
    assert again.returncode == 0 and b"800 inputs = 800 results" in again.stderr


def test_resume_needs_a_results_file_and_a_manifest(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text(json.dumps(patient_bundle()))
    r = cli(str(tmp_path / "a.json"), "--rules", str(MINI), "--resume")
    assert r.returncode == 64
    r = cli(str(tmp_path / "a.json"), "--rules", str(MINI), "--resume", "-o", str(tmp_path / "none.ndjson"))
    assert r.returncode == 64 and b"nothing to resume" in r.stderr


def test_gzip_bundle_lines(tmp_path: Path) -> None:
    f = tmp_path / "bundles.ndjson.gz"
    with gzip.open(f, "wb") as fh:
        for p in ("g1", "g2", "g3"):
            fh.write(json.dumps(patient_bundle(p)).encode() + b"\n")
    out = tmp_path / "out.ndjson"
    r = cli(str(f), "--rules", str(MINI), "--as-of", AS_OF, "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert [d["patient"] for d in lines(out)] == ["Patient/g1", "Patient/g2", "Patient/g3"]
    assert all(key(d) for d in lines(out))


def test_table_and_report_are_written_after_the_run(tmp_path: Path) -> None:
    pytest.importorskip("pyarrow")
    pytest.importorskip("matplotlib")
    for p in ("t1", "t2"):
        (tmp_path / f"{p}.json").write_text(json.dumps(patient_bundle(p)))
    out, table, report = tmp_path / "out.ndjson", tmp_path / "table.csv", tmp_path / "report.html"
    r = cli(
        str(tmp_path / "t1.json"),
        str(tmp_path / "t2.json"),
        "--rules",
        str(MINI),
        "--as-of",
        AS_OF,
        "-o",
        str(out),
        "--table",
        str(table),
        "--report",
        str(report),
        "--lang",
        "en",
    )
    assert r.returncode == 0, r.stderr
    cells = {cell for row in csv.reader(io.StringIO(table.read_text(encoding="utf-8"))) for cell in row}
    assert {"Patient/t1", "Patient/t2"} <= cells
    assert report.read_text().lstrip().lower().startswith("<!doctype html")
    needs_output = cli(str(tmp_path / "t1.json"), "--rules", str(MINI), "--table", str(table))
    assert needs_output.returncode == 64
