"""The public Python API: load a rule set once, evaluate many patients.

>>> ev = Evaluator("rules")                       # doctest: +SKIP
>>> result = ev.evaluate("fhir_examples/p01.json", as_of="2026-01-15")   # doctest: +SKIP
>>> result.decisions["mdk"].level                # doctest: +SKIP
"""
from __future__ import annotations

import datetime as dt
import os
import threading
from pathlib import Path
from typing import Any, Iterator, Literal, Optional, Union

from . import __version__
from .compile import CompiledRuleSet, compile_or_raise
from .decide import build_result
from .errors import InputError
from .facts import FactSet, RegionMap, extract_facts
from .load import LoadedBundle, iter_inputs, load_bundle
from .match import RuleEval, evaluate_facts
from .result import ErrorBody, ErrorResult, ResultDoc as Result
from .rulemodel import RuleSet, load_ruleset

Source = Union[str, os.PathLike, bytes, dict]
Validate = Literal["facts", "all", "none"]


def default_rules_dir() -> Path:
    """``$MDTFLAG_RULES``, else ``./rules``, else the rules shipped beside the package source."""
    env = os.environ.get("MDTFLAG_RULES")
    if env:
        return Path(env)
    here = Path("rules")
    if (here / "ruleset.yaml").is_file():
        return here
    return Path(__file__).resolve().parent.parent / "rules"


def parse_date(value: Union[str, dt.date, None]) -> dt.date:
    if value is None:
        return dt.date.today()
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise ValueError(f"as_of must be a date YYYY-MM-DD, got {value!r}") from None


def region_map(rs: RuleSet) -> Optional[RegionMap]:
    """County → healthcare region (and split municipalities) from the rule set's ``regions`` table."""
    table = rs.tables.get("regions")
    if table is None:
        return None
    counties: dict[str, str] = {}
    munis: dict[str, str] = {}
    for row in table.rows:
        for c in row.get("counties") or []:
            counties[str(c)] = row["key"]
        for m in row.get("split_municipalities") or []:
            munis[str(m)] = row["key"]
    return RegionMap(county_to_region=counties, municipality_to_region=munis)


class Evaluator:
    """A rule set loaded and compiled once; ``evaluate`` is safe to call from many threads.

    Not picklable (it holds an engine handle): in worker processes build one per process,
    e.g. in a ``ProcessPoolExecutor`` initializer (see :mod:`mdtflag.cohort.worker`).
    """

    def __init__(self, rules: Union[str, os.PathLike, RuleSet, None] = None, profile: Optional[str] = None):
        self.ruleset = rules if isinstance(rules, RuleSet) else load_ruleset(rules or default_rules_dir())
        self.profile = profile or self.ruleset.profiles.default
        self.regions = region_map(self.ruleset)
        self._compiled: dict[str, CompiledRuleSet] = {}
        self._lock = threading.Lock()
        self.compiled(self.profile)

    def compiled(self, profile: Optional[str] = None) -> CompiledRuleSet:
        name = profile or self.profile
        with self._lock:
            crs = self._compiled.get(name)
            if crs is None:
                crs = self._compiled[name] = compile_or_raise(self.ruleset, name)
        return crs

    def facts(self, bundle: LoadedBundle, as_of: dt.date) -> FactSet:
        return extract_facts(bundle, as_of, self.regions)

    def run(self, bundle: LoadedBundle, as_of: Union[str, dt.date, None] = None,
            profile: Optional[str] = None) -> tuple[Result, FactSet, list[RuleEval]]:
        """Evaluate a loaded bundle and return the result with the facts and evaluations behind it."""
        day = parse_date(as_of)
        crs = self.compiled(profile)
        fs = self.facts(bundle, day)
        evals = evaluate_facts(crs, fs)
        pid = bundle.patient.get("id")
        result = build_result(crs, fs, evals, day, __version__, notes=bundle.notes,
                              patient_ref=f"Patient/{pid}" if isinstance(pid, str) and pid else "Patient/")
        return result, fs, evals

    def evaluate(self, source: Union[Source, LoadedBundle], *, as_of: Union[str, dt.date, None] = None,
                 profile: Optional[str] = None, validate: Validate = "facts") -> Result:
        """Evaluate one patient bundle (path, bytes, dict or loaded bundle). Raises :class:`InputError` on bad input."""
        bundle = source if isinstance(source, LoadedBundle) else load_bundle(source, validate=validate)
        return self.run(bundle, as_of, profile)[0]

    def evaluate_all(self, path: Union[str, os.PathLike], *, as_of: Union[str, dt.date, None] = None,
                     profile: Optional[str] = None, validate: Validate = "facts") -> Iterator[Union[Result, ErrorResult]]:
        """Every input under ``path`` (file, folder, NDJSON export) as a result or a named error; nothing is lost."""
        for item in iter_inputs(path, validate=validate):
            if isinstance(item, InputError):
                yield error_result(item)
            else:
                try:
                    yield self.run(item, as_of, profile)[0]
                except InputError as e:
                    yield error_result(e)


def error_result(e: InputError) -> ErrorResult:
    return ErrorResult(source=e.source, error=ErrorBody(code=e.code, message=e.message, line=e.line))


_default: dict[tuple[str, Optional[str]], Evaluator] = {}


def evaluate(source: Source, *, rules: Union[str, os.PathLike, None] = None, as_of: Union[str, dt.date, None] = None,
             profile: Optional[str] = None) -> Result:
    """One-call convenience: evaluate a bundle with a cached :class:`Evaluator` for ``rules``."""
    key = (str(rules or default_rules_dir()), profile)
    ev = _default.get(key)
    if ev is None:
        ev = _default[key] = Evaluator(rules, profile)
    return ev.evaluate(source, as_of=as_of)


__all__ = ["Evaluator", "evaluate", "default_rules_dir", "error_result", "parse_date"]
