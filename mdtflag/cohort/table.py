"""A flat table of a cohort run: one row per patient × flag and per patient × trial cohort.

Input is the run's NDJSON results file (one ``mdtflag.result/1`` or ``mdtflag.error/1`` document per
line). Output is Parquet (``.parquet``) or CSV (anything else), written as it is read, so memory does
not grow with the cohort. Every line of the results file gives at least one row: a result with flags
gives one row per flag (and one more per cohort of a trial flag), an error document gives one row
with its error code, and a line that cannot be read as either gives a row with the code
``unreadable-line``. Missing data is written in words, in Swedish or English, never as internal
field names.

Columns (all text except ``line``):

``line``            line number in the results file (1-based)
``source``          the input named by an error document (results do not carry their source)
``patient``         ``Patient/<id>``
``mdk_level``       the decided MDK level (``national``, ``regional``, ``local``, ``paediatric``, ``undetermined``)
``healthcare_region``  the MDK target's healthcare region (slug), empty when unknown
``region``          the region's name
``centre``          the MDK target's centre (where to route)
``rule``            the flag's rule id
``kind``            ``mdk``, ``trial``, ``hereditary``, ``paediatric``, ``data-quality`` or ``derived``
``title``           the flag's title
``cohort``          the trial cohort key (empty on the flag's own row)
``cohort_title``    the cohort's title
``status``          ``flagged``, ``not_flagged``, ``indeterminate``, ``not_applicable`` or ``error``
``status_text``     the status in words
``evidence_tier``   the evidence tier when the result carries one (``evidence_tier`` or ``tier`` on the
                    cohort or flag), else empty
``provenance``      the provenance tag (``SEED-004``, ``PUB``, ``DA``, ``VERIFY``)
``failed``          criteria not met (space-separated ids)
``unknown``         criteria that could not be decided (space-separated ids)
``missing``         the data that would decide an undecided flag or cohort, in words (`` | ``-separated)
``error_code``      the error code of an error document
``error_message``   its message
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import orjson

from mdtflag.evaluation.field_words import words_for

Row = dict[str, Any]

COLUMNS: tuple[str, ...] = (
    "line",
    "source",
    "patient",
    "mdk_level",
    "healthcare_region",
    "region",
    "centre",
    "rule",
    "kind",
    "title",
    "cohort",
    "cohort_title",
    "status",
    "status_text",
    "evidence_tier",
    "provenance",
    "failed",
    "unknown",
    "missing",
    "error_code",
    "error_message",
)

LANGS = ("sv", "en")

STATUS_TEXT: Mapping[str, Mapping[str, str]] = {
    "sv": {
        "flagged": "flaggad",
        "not_flagged": "ej flaggad",
        "indeterminate": "obestämd – data saknas",
        "not_applicable": "ej tillämplig",
        "error": "fel",
    },
    "en": {
        "flagged": "flagged",
        "not_flagged": "not flagged",
        "indeterminate": "indeterminate – data missing",
        "not_applicable": "not applicable",
        "error": "error",
    },
}

_PREFIX = {"sv": "Kan ej bedöma: ", "en": "Cannot decide: "}
_RESOURCE_TAIL = re.compile(r" \((?:[A-Z][A-Za-z]+/[^()]*)\)$")


def field_words(kind: str, field: str, lang: str) -> str:
    """A fact field in words; an unlisted field is spelled out (underscores become spaces)."""
    return words_for(field, kind)[LANGS.index(lang)]


def missing_words(m: Mapping[str, Any], lang: str, *, with_resource: bool = True) -> str:
    """One ``missing`` item in words: the reason's text without the "Cannot decide:" lead, any internal
    field name replaced by words. ``with_resource=False`` leaves out the resource (to group patients)."""
    text_obj = m.get("text")
    text = str(text_obj.get(lang, "")) if isinstance(text_obj, Mapping) else ""
    field = m.get("field")
    if isinstance(field, str) and field:
        words = field_words(str(m.get("fact") or ""), field, lang)
        quoted = f"uppgift '{field}'" if lang == "sv" else f"'{field}'"
        if quoted in text:
            text = text.replace(quoted, words)
        elif f"'{field}'" in text:
            text = text.replace(f"'{field}'", words)
    text = text.removeprefix(_PREFIX[lang])
    if not with_resource:
        text = _RESOURCE_TAIL.sub("", text)
    if not text:
        text = field_words(str(m.get("fact") or ""), str(field or m.get("fact") or ""), lang)
    return text


def _text(obj: object, lang: str) -> str:
    if isinstance(obj, Mapping):
        v = obj.get(lang)
        return v if isinstance(v, str) else ""
    return ""


def _s(v: object) -> str:
    return v if isinstance(v, str) else ("" if v is None else str(v))


def _tier(*objs: object) -> str:
    for o in objs:
        if isinstance(o, Mapping):
            for key in ("evidence_tier", "tier"):
                v = o.get(key)
                if v is not None and v != "":
                    return _s(v)
    return ""


def _joined_missing(items: Iterable[object], lang: str) -> str:
    seen = dict.fromkeys(missing_words(m, lang) for m in items if isinstance(m, Mapping))
    return " | ".join(w for w in seen if w)


def _list(v: object) -> list[Any]:
    return v if isinstance(v, list) else []


def cohort_missing(flag: Mapping[str, Any], cohort: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The missing items that keep a cohort undecided: those of the flag's reasons for the cohort's
    ``unknown`` criteria; the flag's own ``missing`` when no reason names them."""
    unknown = set(_list(cohort.get("unknown")))
    found: list[Mapping[str, Any]] = []
    for r in _list(flag.get("reasons")):
        if isinstance(r, Mapping) and r.get("criterion") in unknown:
            found.extend(m for m in _list(r.get("missing")) if isinstance(m, Mapping))
    if not found and unknown:
        found = [
            m
            for m in _list(flag.get("missing"))
            if isinstance(m, Mapping) and (m.get("criterion") in unknown or m.get("criterion") is None)
        ]
    return found


def error_row(line: int, source: str, code: str, message: str, lang: str, patient: str = "") -> Row:
    row: Row = dict.fromkeys(COLUMNS, "")
    row.update(
        line=line,
        source=source,
        patient=patient,
        status="error",
        status_text=STATUS_TEXT[lang]["error"],
        error_code=code,
        error_message=message,
    )
    return row


def rows_for_document(line: int, doc: object, lang: str = "sv") -> list[Row]:
    """The table rows of one parsed line of the results file (at least one)."""
    if lang not in LANGS:
        raise ValueError(f"lang must be one of {LANGS}, not {lang!r}")
    if not isinstance(doc, Mapping):
        return [error_row(line, "", "unreadable-line", "the line is not a JSON object", lang)]
    schema = doc.get("schema")
    if schema == "mdtflag.error/1":
        err = doc.get("error")
        err = err if isinstance(err, Mapping) else {}
        msg = _s(err.get("message"))
        if err.get("line") is not None:
            msg = f"{msg} (line {err.get('line')})"
        return [error_row(line, _s(doc.get("source")), _s(err.get("code")) or "error", msg, lang)]
    if schema != "mdtflag.result/1":
        return [error_row(line, "", "unreadable-line", f"not a result or error document (schema {schema!r})", lang)]
    patient = _s(doc.get("patient"))
    decisions = doc.get("decisions")
    mdk = decisions.get("mdk") if isinstance(decisions, Mapping) else None
    mdk = mdk if isinstance(mdk, Mapping) else {}
    target = mdk.get("target")
    target = target if isinstance(target, Mapping) else {}
    base: Row = dict.fromkeys(COLUMNS, "")
    base.update(
        line=line,
        patient=patient,
        mdk_level=_s(mdk.get("level")),
        healthcare_region=_s(target.get("healthcare_region")),
        region=_text(target.get("region_name"), lang),
        centre=_text(target.get("centre"), lang),
    )
    rows: list[Row] = []
    st = STATUS_TEXT[lang]
    for flag in _list(doc.get("flags")):
        if not isinstance(flag, Mapping):
            continue
        status = _s(flag.get("status"))
        # the criteria that kept an unflagged or undecided flag from firing (a flagged one has none)
        reasons = [r for r in _list(flag.get("reasons")) if isinstance(r, Mapping)] if status != "flagged" else []
        row = dict(base)
        row.update(
            rule=_s(flag.get("rule")),
            kind=_s(flag.get("kind")),
            title=_text(flag.get("title"), lang),
            status=status,
            status_text=st.get(status, status),
            evidence_tier=_tier(flag),
            provenance=_s(flag.get("tag")),
            failed=" ".join(_s(r.get("criterion")) for r in reasons if r.get("outcome") == "not_met"),
            unknown=" ".join(_s(r.get("criterion")) for r in reasons if r.get("outcome") == "unknown"),
            missing=_joined_missing(_list(flag.get("missing")), lang),
        )
        rows.append(row)
        for c in _list(flag.get("cohorts")):
            if not isinstance(c, Mapping):
                continue
            cstatus = _s(c.get("status"))
            crow = dict(row)
            crow.update(
                cohort=_s(c.get("key")),
                cohort_title=_text(c.get("title"), lang),
                status=cstatus,
                status_text=st.get(cstatus, cstatus),
                evidence_tier=_tier(c, flag),
                provenance=_s(c.get("tag")) or row["provenance"],
                failed=" ".join(_s(x) for x in _list(c.get("failed"))),
                unknown=" ".join(_s(x) for x in _list(c.get("unknown"))),
                missing=_joined_missing(cohort_missing(flag, c), lang) if cstatus == "indeterminate" else "",
            )
            rows.append(crow)
    if not rows:  # a result without flags still has its row: nothing is lost
        rows.append(base)
    return rows


def read_documents(results_path: Path) -> Iterator[tuple[int, object]]:
    """``(line number, parsed document)`` per non-blank line; a line that is not JSON gives a string
    describing the problem instead of a document (so the caller can account for it)."""
    with open(results_path, "rb") as fh:
        for n, raw in enumerate(fh, 1):
            if not raw.strip():
                continue
            try:
                yield n, orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                yield n, BadLine(f"not valid JSON: {exc}")


class BadLine(str):
    """Marks a line of the results file that is not JSON (its text is the problem)."""

    __slots__ = ()


def iter_rows(results_path: Path, lang: str = "sv") -> Iterator[Row]:
    """Every table row of a results file, in file order."""
    for n, doc in read_documents(results_path):
        if isinstance(doc, BadLine):
            yield error_row(n, "", "unreadable-line", str(doc), lang)
        else:
            yield from rows_for_document(n, doc, lang)


class _Sink(Protocol):
    def write(self, rows: Sequence[Row]) -> None: ...

    def close(self) -> None: ...


class _CsvSink:
    def __init__(self, path: Path) -> None:
        self._fh = open(path, "w", encoding="utf-8", newline="")  # noqa: SIM115 - closed by close()
        self._w = csv.DictWriter(self._fh, fieldnames=list(COLUMNS), lineterminator="\n")
        self._w.writeheader()

    def write(self, rows: Sequence[Row]) -> None:
        self._w.writerows(rows)

    def close(self) -> None:
        self._fh.close()


class _ParquetSink:
    def __init__(self, path: Path) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        self._pa = pa
        self.schema = pa.schema(
            [pa.field("line", pa.int64(), nullable=False)]
            + [pa.field(c, pa.string(), nullable=False) for c in COLUMNS[1:]]
        )
        self._w = pq.ParquetWriter(str(path), self.schema, compression="zstd")

    def write(self, rows: Sequence[Row]) -> None:
        cols = {c: [r[c] for r in rows] for c in COLUMNS}
        self._w.write_table(self._pa.Table.from_pydict(cols, schema=self.schema))

    def close(self) -> None:
        self._w.close()


def write_table(results_path: Path, out_path: Path, lang: str = "sv", *, chunk_rows: int = 65536) -> int:
    """Write the flat table of ``results_path`` (NDJSON results) to ``out_path`` and return the number
    of rows. Parquet (zstd) when ``out_path`` ends in ``.parquet``, CSV (UTF-8) otherwise. Texts
    (titles, region, centre, status, missing data) are in ``lang`` (``"sv"`` or ``"en"``)."""
    if lang not in LANGS:
        raise ValueError(f"lang must be one of {LANGS}, not {lang!r}")
    out_path = Path(out_path)
    tmp = out_path.with_name(out_path.name + ".part")
    sink: _Sink = _ParquetSink(tmp) if out_path.suffix.lower() == ".parquet" else _CsvSink(tmp)
    total = 0
    buf: list[Row] = []
    try:
        for row in iter_rows(Path(results_path), lang):
            buf.append(row)
            if len(buf) >= chunk_rows:
                sink.write(buf)
                total += len(buf)
                buf = []
        if buf or total == 0:
            sink.write(buf)
            total += len(buf)
    except BaseException:
        sink.close()
        tmp.unlink(missing_ok=True)
        raise
    sink.close()
    tmp.replace(out_path)
    return total
