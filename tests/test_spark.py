"""mdtflag.cohort.spark in Spark local mode gives byte for byte the lines of ``mdtflag batch`` and of the
in-process Evaluator."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

pytest.importorskip("pyspark", reason="pyspark is not installed (pip install 'mdtflag[spark]')")
pytest.importorskip("pyarrow", reason="pyarrow is not installed (pip install 'mdtflag[spark]')")

from pyspark.sql import SparkSession

from mdtflag.api import Evaluator, error_result
from mdtflag.cohort.spark import (
    RESULT_COLUMNS,
    evaluate_dataframe,
    pack_rules,
)
from mdtflag.errors import InputError
from mdtflag.fhir.load import load_bundle
from mdtflag.output.render import to_json

ROOT = Path(__file__).resolve().parent.parent
AS_OF = "2026-11-01"


@pytest.fixture(scope="module")
def spark() -> Iterator[SparkSession]:
    # Python workers run this interpreter and import this checkout's mdtflag
    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    session = (
        SparkSession.builder.master("local[2]")
        .appName("mdtflag-test")
        .config("spark.ui.enabled", "false")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.sql.shuffle.partitions", "2")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


def test_spark_lines_equal_the_batch_command(spark: SparkSession, tmp_path: Path) -> None:
    out, summary = tmp_path / "results.ndjson", tmp_path / "summary.csv"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "mdtflag.cli",
            "batch",
            "fhir_examples",
            "--as-of",
            AS_OF,
            "--workers",
            "2",
            "-o",
            str(out),
            "--summary",
            str(summary),
        ],
        cwd=ROOT,
        check=True,
        timeout=600,
        capture_output=True,
    )
    with open(summary, encoding="utf-8", newline="") as fh:
        sources = [row["source"] for row in csv.DictReader(fh)]
    expected = out.read_bytes()
    assert len(sources) == expected.count(b"\n") > 30
    rows = [((ROOT / s).read_text(encoding="utf-8"), s) for s in sources]
    df = spark.createDataFrame(rows, "bundle string, source string").repartition(3)
    got = evaluate_dataframe(df, rules=ROOT / "rules", as_of=AS_OF).collect()
    by_source = {r.source: r for r in got}
    assert sorted(by_source) == sorted(sources)
    assert b"".join(by_source[s].result.encode("utf-8") + b"\n" for s in sources) == expected
    for line, s in zip(expected.splitlines(), sources):
        doc = orjson.loads(line)
        r = by_source[s]
        assert (r.patient, r.mdk_level, r.status, r.error_code) == (
            doc["patient"],
            doc["decisions"]["mdk"]["level"],
            "ok",
            "",
        )


def _in_process(ev: Evaluator, bundle: Any, source: str) -> bytes:
    data = bundle.encode("utf-8") if isinstance(bundle, str) else (bundle or b"")
    try:
        doc: Any = ev.run(load_bundle(data, name=source), AS_OF)[0]
    except InputError as e:
        doc = error_result(e)
    return to_json(doc, indent=False).rstrip(b"\n")


def test_errors_and_results_equal_the_evaluator(spark: SparkSession) -> None:
    ev = Evaluator(ROOT / "rules")
    good = sorted((ROOT / "fhir_examples").glob("*.json"))[:3]
    inputs: list[tuple[bytes | None]] = [(p.read_bytes(),) for p in good]
    inputs += [
        (b"{ not json",),
        (b'{"resourceType": "Patient", "id": "x"}',),
        (None,),
        (b"\xff\xfe",),
        (b'{"resourceType": "Bundle", "type": "collection", "entry": []}',),
    ]
    df = spark.createDataFrame(inputs, "bundle binary")  # no source column: errors are named <bundle>
    got = evaluate_dataframe(df, rules=ROOT / "rules", as_of=AS_OF).collect()
    assert tuple(got[0].asDict()) == RESULT_COLUMNS
    assert len(got) == len(inputs)
    for (bundle,), row in zip(inputs, got):
        assert row.result.encode("utf-8") == _in_process(ev, bundle, "<bundle>")
        doc = orjson.loads(row.result)
        if doc["schema"] == "mdtflag.error/1":
            assert (row.status, row.error_code, row.source) == ("error", doc["error"]["code"], "<bundle>")
        else:
            assert (row.status, row.patient) == ("ok", doc["patient"])
    assert [r.status for r in got] == ["ok"] * 3 + ["error"] * 5


def test_bad_arguments_fail_on_the_driver(spark: SparkSession, tmp_path: Path) -> None:
    df = spark.createDataFrame([("{}",)], "text string")
    with pytest.raises(ValueError, match="'bundle' column"):
        evaluate_dataframe(df, rules=ROOT / "rules", as_of=AS_OF)
    with pytest.raises(FileNotFoundError):
        evaluate_dataframe(df.withColumnRenamed("text", "bundle"), rules=tmp_path / "absent", as_of=AS_OF)
    with pytest.raises(ValueError, match="as_of"):
        evaluate_dataframe(df.withColumnRenamed("text", "bundle"), rules=ROOT / "rules", as_of="1 Nov")


def test_rule_files_digest_follows_their_content(tmp_path: Path) -> None:
    a = pack_rules(ROOT / "rules")
    assert a == pack_rules(ROOT / "rules")
    copy = tmp_path / "rules"
    for name, data in a[1]:
        (copy / name).parent.mkdir(parents=True, exist_ok=True)
        (copy / name).write_bytes(data)
    assert pack_rules(copy)[0] == a[0]
    first = copy / a[1][0][0]
    first.write_bytes(first.read_bytes() + b"\n")
    assert pack_rules(copy)[0] != a[0]


def test_bulk_export_grouped_in_spark_gives_the_batch_results(spark: SparkSession, tmp_path: Path) -> None:
    """A Bulk export read by Spark (``spark.read.text``) and grouped by patient there gives, patient by
    patient, the result lines ``mdtflag batch`` gives for the same export, and the same unassigned count."""
    from pyspark.sql import functions as F

    from mdtflag.cohort.spark import bulk_bundles

    export = tmp_path / "export"
    subprocess.run(
        [sys.executable, str(ROOT / "bench" / "synth_bulk.py"), str(export), "-n", "45", "--unassigned", "3"],
        check=True,
        capture_output=True,
        timeout=120,
    )
    out = tmp_path / "results.ndjson"
    subprocess.run(
        [sys.executable, "-m", "mdtflag.cli", "batch", str(export), "--as-of", AS_OF, "--workers", "2", "-o", str(out)],
        cwd=ROOT,
        check=True,
        timeout=600,
        capture_output=True,
    )
    pool = {orjson.loads(line)["patient"]: line for line in out.read_bytes().splitlines()}
    manifest = orjson.loads(Path(str(out) + ".manifest.json").read_bytes())
    files = sorted(str(p) for p in export.glob("*.ndjson"))
    lines = spark.read.text(files).withColumn("file", F.input_file_name())
    bundles, unassigned = bulk_bundles(lines)
    got = evaluate_dataframe(bundles.repartition(3), rules=ROOT / "rules", as_of=AS_OF).collect()
    assert {r.status for r in got} == {"ok"}
    spark_lines = {r.patient: r.result.encode("utf-8") for r in got}
    assert len(spark_lines) == len(got) == len(pool) == 45
    assert spark_lines == pool
    assert unassigned.count() == manifest["counts"]["unassigned"] >= 3
    assert all(r.source.endswith(f"#{r.patient}") for r in got)
