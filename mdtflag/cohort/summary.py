"""The summary CSV: one row per input (a result or a named error), for trial coordinators."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from typing import Any

from mdtflag.cohort.table import missing_words
from mdtflag.errors import one_line

#: Columns of the summary CSV, in order.
COLUMNS = (
    "source",
    "patient",
    "status",
    "mdk_level",
    "mdk_target",
    "flagged",
    "indeterminate",
    "cohorts",
    "missing",
    "error",
)


def summary_row(res: Mapping[str, Any], source: str) -> dict[str, str]:
    """One summary row for a result document or an error document (both as dicts)."""
    if res.get("schema") == "mdtflag.error/1":
        err = res["error"]
        return {
            "source": str(res.get("source", source)),
            "patient": "",
            "status": "error",
            "mdk_level": "",
            "mdk_target": "",
            "flagged": "",
            "indeterminate": "",
            "cohorts": "",
            "missing": "",
            "error": f"{err['code']}: {err['message']}",
        }
    mdk = res["decisions"].get("mdk")
    shown = [f for f in res["flags"] if f["kind"] != "derived"]  # derived helper facts feed other rules
    flagged = [f["rule"] for f in shown if f["status"] == "flagged"]
    indet = [f["rule"] for f in shown if f["status"] == "indeterminate"]
    cohorts = sorted(
        {
            f"{f['rule']}:{c['key']}"
            for f in shown
            if f["kind"] == "trial"
            for c in (f.get("cohorts") or [])
            if c["status"] == "flagged"
        }
    )
    # the same words as the cohort table: no "Cannot decide:" lead, fields named in words
    missing = sorted(
        {missing_words(m, "en") for f in res["flags"] if f["status"] == "indeterminate" for m in f["missing"]}
    )
    target = ""
    if mdk and mdk.get("target") and mdk["target"].get("centre"):
        target = mdk["target"]["centre"]["en"]
    return {
        "source": source,
        "patient": res["patient"],
        "status": "ok",
        "mdk_level": mdk["level"] if mdk else "",
        "mdk_target": target,
        "flagged": " ".join(flagged),
        "indeterminate": " ".join(indet),
        "cohorts": " ".join(cohorts),
        "missing": " | ".join(missing),
        "error": "",
    }


def csv_header() -> bytes:
    return (",".join(COLUMNS) + "\n").encode("utf-8")


def csv_line(row: Mapping[str, str]) -> bytes:
    """One CSV row on exactly one line: control characters in values are escaped (see :func:`one_line`), so a
    summary opened in a terminal or viewer shows data, never line breaks or control sequences."""
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow([one_line(str(row.get(c, ""))) for c in COLUMNS])
    return buf.getvalue().encode("utf-8")


def summary_csv(rows: Sequence[Mapping[str, str]]) -> str:
    """The whole summary CSV (header and rows) as text."""
    return (csv_header() + b"".join(csv_line(r) for r in rows)).decode("utf-8")
