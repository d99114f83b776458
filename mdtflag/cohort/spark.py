"""Evaluate patients inside Spark executors (``pip install 'mdtflag[spark]'``).

:func:`evaluate_dataframe` takes a DataFrame with one patient bundle per row (column ``bundle``, the
bundle's JSON as text or bytes; optional column ``source`` naming the input in error documents) and
returns a DataFrame with one row per input row:

``source``      the input's name (``<bundle>`` when the input DataFrame has no ``source`` column)
``patient``     ``Patient/<id>`` (empty for an error)
``mdk_level``   the decided MDK level (empty for an error)
``status``      ``ok`` or ``error``
``error_code``  the ``mdtflag.error/1`` code (empty for a result)
``result``      the result (or error) document as one compact JSON line, without the line break:
                byte for byte the line ``mdtflag batch`` writes for the same input

The work runs in ``mapInArrow``: each Python worker process builds one :class:`~mdtflag.api.Evaluator`
on first use and keeps it in a module global for every later partition (Spark reuses its Python
workers). The rule files are read on the driver and travel with the task, so executors need the
``mdtflag`` package but no copy of the rules; the rule set is identified by the digest of its files.

Spark sees only the DataFrame API (no RDD, no SparkContext), so the same call works on Spark Connect
and shared Databricks clusters. ``docs/cohort.md`` shows how to run it on a cluster.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import orjson

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import DataFrame

    from mdtflag.api import Evaluator

RESULT_COLUMNS = ("source", "patient", "mdk_level", "status", "error_code", "result")
RESULT_DDL = ", ".join(f"{c} string" for c in RESULT_COLUMNS)
DEFAULT_SOURCE = "<bundle>"

RuleFiles = tuple[tuple[str, bytes], ...]

#: Per Python worker process: (rule files digest, profile) -> Evaluator.
_EVALUATORS: dict[tuple[str, str | None], Evaluator] = {}


def pack_rules(rules: str | os.PathLike[str] | None = None) -> tuple[str, RuleFiles]:
    """Read a rule set folder into ``(digest, ((relative path, bytes), ...))`` to ship with Spark tasks.
    ``rules=None`` is the default rule set (``$MDTFLAG_RULES``, ``./rules`` or the shipped rules)."""
    from mdtflag.api import default_rules_dir

    root = Path(rules) if rules is not None else default_rules_dir()
    if not root.is_dir():
        raise FileNotFoundError(f"rule set folder not found: {root}")
    files: list[tuple[str, bytes]] = []
    for path in sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        files.append((path.relative_to(root).as_posix(), path.read_bytes()))
    h = hashlib.sha256()
    for name, data in files:
        h.update(orjson.dumps([name, len(data)]))
        h.update(data)
    return h.hexdigest(), tuple(files)


def evaluator_for(digest: str, files: RuleFiles, profile: str | None) -> Evaluator:
    """The process's Evaluator for a shipped rule set, built (files written to a private folder,
    loaded and compiled) on first use."""
    key = (digest, profile)
    ev = _EVALUATORS.get(key)
    if ev is None:
        from mdtflag.api import Evaluator

        folder = Path(tempfile.mkdtemp(prefix=f"mdtflag-rules-{digest[:12]}-"))
        for name, data in files:
            target = folder / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        ev = _EVALUATORS[key] = Evaluator(folder, profile)
    return ev


def evaluate_one(
    ev: Evaluator,
    bundle: str | bytes | None,
    source: str,
    as_of: dt.date,
    profile: str | None,
    validate: Literal["facts", "all", "none"] = "facts",
) -> dict[str, str]:
    """One input row to one output row (see the module documentation)."""
    from mdtflag.api import error_result
    from mdtflag.errors import InputError
    from mdtflag.fhir.load import load_bundle
    from mdtflag.output.render import to_json

    data = bundle.encode("utf-8") if isinstance(bundle, str) else (bundle or b"")
    try:
        loaded = load_bundle(data, validate=validate, name=source)
        doc: Any = ev.run(loaded, as_of, profile)[0]
    except InputError as e:
        doc = error_result(e).to_dict()
    line = to_json(doc, indent=False).rstrip(b"\n").decode("utf-8")
    if doc.get("schema") == "mdtflag.error/1":
        return {
            "source": source,
            "patient": "",
            "mdk_level": "",
            "status": "error",
            "error_code": str(doc["error"]["code"]),
            "result": line,
        }
    mdk = doc["decisions"].get("mdk") or {}
    return {
        "source": source,
        "patient": str(doc["patient"]),
        "mdk_level": str(mdk.get("level") or ""),
        "status": "ok",
        "error_code": "",
        "result": line,
    }


def evaluate_dataframe(
    df: DataFrame,
    rules: str | os.PathLike[str] | None = None,
    as_of: str | dt.date | None = None,
    profile: str | None = None,
    validate: Literal["facts", "all", "none"] = "facts",
) -> DataFrame:
    """Evaluate every bundle of ``df`` (column ``bundle``; optional ``source``) inside Spark.

    ``rules``: rule set folder on the driver (default as for :class:`~mdtflag.api.Evaluator`);
    ``as_of``: evaluation date (``YYYY-MM-DD`` or a date; default today, fixed on the driver so that
    every executor uses the same day); ``profile``: rule set profile (default the rule set's);
    ``validate``: as ``mdtflag batch --validate``. Returns the columns in :data:`RESULT_COLUMNS`, one
    row per input row, in the input's order within each partition.
    """
    from mdtflag.api import parse_date

    if "bundle" not in df.columns:
        raise ValueError(
            f"the DataFrame needs a 'bundle' column (one patient bundle as JSON per row); it has {df.columns}"
        )
    if validate not in ("facts", "all", "none"):
        raise ValueError(f"validate must be 'facts', 'all' or 'none', not {validate!r}")
    day = parse_date(as_of)
    digest, files = pack_rules(rules)
    evaluator_for(digest, files, profile)  # an invalid rule set or profile fails here, before any task starts
    has_source = "source" in df.columns
    cols = ["bundle", "source"] if has_source else ["bundle"]

    def run_partition(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        import pyarrow as pa

        ev = evaluator_for(digest, files, profile)
        schema = pa.schema([(c, pa.string()) for c in RESULT_COLUMNS])
        for batch in batches:
            bundles = batch.column("bundle").to_pylist()
            sources = batch.column("source").to_pylist() if has_source else [None] * len(bundles)
            rows = [
                evaluate_one(ev, b, s if s is not None else DEFAULT_SOURCE, day, profile, validate)
                for b, s in zip(bundles, sources)
            ]
            yield pa.RecordBatch.from_pydict({c: [r[c] for r in rows] for c in RESULT_COLUMNS}, schema=schema)

    return df.select(*cols).mapInArrow(run_partition, RESULT_DDL)


# ---------------------------------------------------------------------------------------------------------
# A FHIR Bulk Data export already in the data lake: group its resources by patient inside Spark

BULK_DDL = "kind string, key string, ref string, file string, line string"


def _classify(raw: str | None) -> tuple[str, str, str]:
    """(kind, key, ref) of one NDJSON line, as the process pool's spill pass sorts it: ``patient`` (key
    ``Patient/<id>``), ``bundle`` (a whole Bundle on one line), ``shared`` (a resource with an id that
    names no patient, e.g. a Medication, attached to the patients that refer to it), ``unassigned`` (no
    patient and no id), ``bad`` (not a FHIR resource: evaluated, it gives its named error), ``blank``."""
    from mdtflag.cohort.worker import patient_key

    if raw is None or not raw.strip():
        return "blank", "", ""
    try:
        res = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return "bad", "", ""
    rt = res.get("resourceType") if isinstance(res, dict) else None
    if not isinstance(rt, str) or not rt:
        return "bad", "", ""
    if rt == "Bundle":
        return "bundle", "", ""
    key = patient_key(res)
    if key is not None:
        return "patient", key, ""
    if rt == "Patient":
        return "bad", "", ""  # a Patient without an id: evaluated alone, it is the error the batch gives
    rid = res.get("id")
    if isinstance(rid, str) and rid:
        return "shared", "", f"{rt}/{rid}"
    return "unassigned", "", f"{rt}/(no id)"


def _bundle_of(lines: list[str], shared: dict[str, str]) -> str:
    """One patient's resources (and the shared resources they refer to) as a collection Bundle."""
    from mdtflag.fhir.load import collect_references

    refs: set[str] = set()
    for line in lines:
        collect_references(orjson.loads(line), refs)
    members = sorted(lines) + [shared[r] for r in sorted(refs) if r in shared]
    return (
        '{"resourceType":"Bundle","type":"collection","entry":['
        + ",".join('{"resource":' + m + "}" for m in members)
        + "]}"
    )


def bulk_bundles(lines: DataFrame) -> tuple[DataFrame, DataFrame]:
    """Group a FHIR Bulk Data export by patient inside Spark, for :func:`evaluate_dataframe`.

    ``lines``: one NDJSON line per row in column ``value`` (what ``spark.read.text(paths)`` gives) and
    optionally ``file`` naming its file (e.g. ``F.input_file_name()``). Returns ``(bundles, unassigned)``:
    ``bundles`` has the columns ``source`` (``<file>#Patient/<id>`` for a patient, the file for a whole
    Bundle line or a line that is not a resource) and ``bundle``, one row per patient, Bundle line or bad
    line, ready for :func:`evaluate_dataframe`; ``unassigned`` lists the resources that belong to no
    patient (``file``, ``ref``), as ``mdtflag batch`` counts them. Those with an id (Medication,
    Organization, ...) are also collected on the driver and attached to the patients that refer to them,
    as the process pool does: they are expected to be few. Blank lines are dropped; every other line ends
    in exactly one row of the two results or inside one patient's bundle."""
    import pyarrow as pa
    from pyspark.sql import functions as F

    if "value" not in lines.columns:
        raise ValueError(f"the DataFrame needs a 'value' column (one NDJSON line per row); it has {lines.columns}")
    src = lines.select(
        F.col("value").alias("line"),
        (F.col("file") if "file" in lines.columns else F.lit("<bulk>")).cast("string").alias("file"),
    )

    def classify(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:

        for batch in batches:
            out: dict[str, list[str]] = {"kind": [], "key": [], "ref": [], "file": [], "line": []}
            for raw, name in zip(batch.column("line").to_pylist(), batch.column("file").to_pylist()):
                kind, key, ref = _classify(raw)
                for col, v in zip(out, (kind, key, ref, name or "", raw or "")):
                    out[col].append(v)
            yield pa.RecordBatch.from_pydict(out, schema=pa.schema([(c, pa.string()) for c in out]))

    keyed = src.mapInArrow(classify, BULK_DDL).cache()
    shared = {r.ref: r.line for r in keyed.filter(F.col("kind") == "shared").select("ref", "line").collect()}

    def build(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:

        for batch in batches:
            keys = [str(k) for k in batch.column("key").to_pylist()]
            files = [str(f or "") for f in batch.column("file").to_pylist()]
            groups = [[str(x) for x in g or ()] for g in batch.column("lines").to_pylist()]
            yield pa.RecordBatch.from_pydict(
                {
                    "source": [f"{Path(f).name}#{k}" for k, f in zip(keys, files)],
                    "bundle": [_bundle_of(g, shared) for g in groups],
                },
                schema=pa.schema([("source", pa.string()), ("bundle", pa.string())]),
            )

    patients = (
        keyed.filter(F.col("kind") == "patient")
        .groupBy("key")
        .agg(F.min("file").alias("file"), F.collect_list("line").alias("lines"))
        .mapInArrow(build, "source string, bundle string")
    )
    whole = keyed.filter(F.col("kind").isin("bundle", "bad")).select(
        F.col("file").alias("source"), F.col("line").alias("bundle")
    )
    unassigned = keyed.filter(F.col("kind").isin("unassigned", "shared")).select("file", "ref")
    return patients.unionByName(whole), unassigned
