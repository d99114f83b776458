"""Cohort screening: many inputs, optionally in worker processes, every input ending as a result or a named error.

With ``workers > 1`` each worker process loads and compiles the rule set once. If a worker dies (the
engine is a C extension), the inputs it held are retried one by one in a fresh pool; an input that
kills a worker on its own becomes an ``engine-crash`` error, and the run goes on.
"""
from __future__ import annotations

import csv
import os
import datetime as dt
import io
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence, Union

from mdtflag.errors import InputError
from mdtflag.fhir.load import LoadedBundle, iter_inputs
from mdtflag.output.render import to_json
from mdtflag.evaluation.result import ErrorBody, ErrorResult, Result

Item = Union[LoadedBundle, InputError]
_worker: dict[str, Any] = {}


def _init(rules_dir: str, profile: Optional[str], pooled: bool = False) -> None:
    from mdtflag.api import Evaluator

    _worker["ev"] = Evaluator(rules_dir, profile)
    _worker["pool"] = pooled


def _run_one(item: Item, as_of: dt.date, profile: Optional[str]) -> tuple[bytes, dict[str, Any]]:
    from mdtflag.api import error_result

    crash_on = os.environ.get("MDTFLAG_FAULT_CRASH_ON")  # fault injection, for testing crash containment
    if crash_on and getattr(item, "source", "").endswith(crash_on) and _worker.get("pool"):
        os._exit(139)

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
              workers: int = 1, window: int = 64) -> Iterator[tuple[bytes, dict[str, Any]]]:
    """Yield (NDJSON line, summary row) per input, in input order.

    With ``workers > 1`` one pool lives for the whole run (each worker compiles the rules once); at most
    ``window × workers`` inputs are in flight. If a worker dies, every input then in flight is retried
    alone in a fresh process, and the run continues on a new pool.
    """
    if workers <= 1:
        _init(rules_dir, profile)
        for item in _items(inputs, validate):
            yield _run_one(item, as_of, profile)
        return
    pool = _pool(rules_dir, profile, workers)
    flight: deque[tuple[Item, Future[tuple[bytes, dict[str, Any]]]]] = deque()
    try:
        for item in _items(inputs, validate):
            flight.append((item, pool.submit(_run_one, item, as_of, profile)))
            while len(flight) >= window * workers:
                got, pool = _next(flight, pool, rules_dir, as_of, profile, workers)
                yield got
        while flight:
            got, pool = _next(flight, pool, rules_dir, as_of, profile, workers)
            yield got
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _pool(rules_dir: str, profile: Optional[str], workers: int) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(workers, initializer=_init, initargs=(rules_dir, profile, True))


def _next(flight: "deque[tuple[Item, Future[tuple[bytes, dict[str, Any]]]]]", pool: ProcessPoolExecutor, rules_dir: str,
          as_of: dt.date, profile: Optional[str], workers: int) -> tuple[tuple[bytes, dict[str, Any]], ProcessPoolExecutor]:
    item, fut = flight[0]
    try:
        got = fut.result()
        flight.popleft()
        return got, pool
    except BrokenProcessPool:
        pass
    # a worker died: the pool is gone with every input in flight; retry each alone, then go on
    pool.shutdown(wait=False, cancel_futures=True)
    pending = [it for it, _ in flight]
    flight.clear()
    fresh = _pool(rules_dir, profile, workers)
    first = _alone(pending[0], rules_dir, as_of, profile)
    for it in pending[1:]:
        flight.append((it, _done(_alone(it, rules_dir, as_of, profile))))
    return first, fresh


def _done(value: tuple[bytes, dict[str, Any]]) -> "Future[tuple[bytes, dict[str, Any]]]":
    f: Future[tuple[bytes, dict[str, Any]]] = Future()
    f.set_result(value)
    return f


def _alone(item: Item, rules_dir: str, as_of: dt.date, profile: Optional[str]) -> tuple[bytes, dict[str, Any]]:
    """One input in its own process: a crash costs this input only."""
    with _pool(rules_dir, profile, 1) as one:
        try:
            return one.submit(_run_one, item, as_of, profile).result()
        except BrokenProcessPool:
            return _crash(item)
