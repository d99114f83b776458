"""Cohort screening: many inputs, optionally in worker processes, every input ending as a result or a named error.

With ``workers > 1`` each worker process loads and compiles the rule set once. If a worker dies (the
engine is a C extension), the inputs it held are retried one by one in a fresh pool; an input that
kills a worker on its own becomes an ``engine-crash`` error, and the run goes on.
"""
from __future__ import annotations

import csv
import datetime as dt
import io
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence, Union

from .errors import InputError
from .load import LoadedBundle, iter_inputs
from .render import to_json
from .result import ErrorBody, ErrorResult, Result

Item = Union[LoadedBundle, InputError]
_worker: dict[str, Any] = {}


def _init(rules_dir: str, profile: Optional[str]) -> None:
    from .api import Evaluator

    _worker["ev"] = Evaluator(rules_dir, profile)


def _run_one(item: Item, as_of: dt.date, profile: Optional[str]) -> tuple[bytes, dict[str, Any]]:
    from .api import error_result

    if isinstance(item, InputError):
        res: Union[Result, ErrorResult] = error_result(item)
    else:
        try:
            res = _worker["ev"].run(item, as_of, profile)[0]
        except InputError as e:
            res = error_result(e)
    return to_json(res, indent=False), summary_row(res, getattr(item, "source", ""))


def summary_row(res: Union[Result, ErrorResult], source: str) -> dict[str, Any]:
    if isinstance(res, ErrorResult):
        return {"source": res.source, "patient": "", "status": "error", "mdk_level": "", "mdk_target": "",
                "flagged": "", "indeterminate": "", "cohorts": "", "missing": "", "error": f"{res.error.code}: {res.error.message}"}
    mdk = res.decisions.get("mdk")
    shown = [f for f in res.flags if f.kind != "derived"]  # derived helper facts feed other rules
    flagged = [f.rule for f in shown if f.status == "flagged"]
    indet = [f.rule for f in shown if f.status == "indeterminate"]
    cohorts = sorted({f"{f.rule}:{c.key}" for f in shown if f.kind == "trial" for c in (f.cohorts or []) if c.status == "flagged"})
    missing = sorted({m.text.en for f in res.flags if f.status == "indeterminate" for m in f.missing})
    target = mdk.target.centre.en if mdk and mdk.target and mdk.target.centre else ""
    return {"source": source, "patient": res.patient, "status": "ok", "mdk_level": mdk.level if mdk else "",
            "mdk_target": target, "flagged": " ".join(flagged), "indeterminate": " ".join(indet),
            "cohorts": " ".join(cohorts), "missing": " | ".join(missing), "error": ""}


def summary_csv(rows: Sequence[dict[str, Any]]) -> str:
    buf = io.StringIO()
    cols = ["source", "patient", "status", "mdk_level", "mdk_target", "flagged", "indeterminate", "cohorts", "missing", "error"]
    w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow(r)
    return buf.getvalue()


def _items(inputs: Sequence[str], validate: str) -> Iterator[Item]:
    for p in inputs:
        yield from iter_inputs(Path(p), validate=validate)  # type: ignore[arg-type]


def _crash(item: Item) -> tuple[bytes, dict[str, Any]]:
    src = getattr(item, "source", "<input>")
    res = ErrorResult(source=src, error=ErrorBody(code="engine-crash", message="the evaluation process died on this input; it was retried alone and died again"))
    return to_json(res, indent=False), summary_row(res, src)


def run_batch(inputs: Sequence[str], rules_dir: str, as_of: dt.date, profile: Optional[str], validate: str,
              workers: int = 1, chunk: int = 64) -> Iterator[tuple[bytes, dict[str, Any]]]:
    """Yield (NDJSON line, summary row) per input, in input order."""
    if workers <= 1:
        _init(rules_dir, profile)
        for item in _items(inputs, validate):
            yield _run_one(item, as_of, profile)
        return
    pending: list[Item] = []
    for item in _items(inputs, validate):
        pending.append(item)
        if len(pending) >= chunk * workers:
            yield from _pool_round(pending, rules_dir, as_of, profile, workers)
            pending = []
    if pending:
        yield from _pool_round(pending, rules_dir, as_of, profile, workers)


def _pool_round(items: list[Item], rules_dir: str, as_of: dt.date, profile: Optional[str], workers: int) -> Iterator[tuple[bytes, dict[str, Any]]]:
    results: dict[int, tuple[bytes, dict[str, Any]]] = {}
    retry: list[int] = []
    with ProcessPoolExecutor(workers, initializer=_init, initargs=(rules_dir, profile)) as pool:
        futs: list[Future[tuple[bytes, dict[str, Any]]]] = [pool.submit(_run_one, it, as_of, profile) for it in items]
        for i, f in enumerate(futs):
            try:
                results[i] = f.result()
            except BrokenProcessPool:
                retry.append(i)
    for i in retry:  # one fresh process per suspect input: a crash costs that input only
        with ProcessPoolExecutor(1, initializer=_init, initargs=(rules_dir, profile)) as pool:
            try:
                results[i] = pool.submit(_run_one, items[i], as_of, profile).result()
            except BrokenProcessPool:
                results[i] = _crash(items[i])
    for i in range(len(items)):
        yield results[i]
