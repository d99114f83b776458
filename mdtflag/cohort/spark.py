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
