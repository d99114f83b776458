"""The public Python API: load a rule set once, evaluate many patients.

>>> ev = Evaluator("rules")                       # doctest: +SKIP
>>> result = ev.evaluate("fhir_examples/p01.json", as_of="2026-01-15")   # doctest: +SKIP
>>> result.decisions["mdk"].level                # doctest: +SKIP

Every failure it raises on purpose is a :class:`mdtflag.errors.MdtflagError`: :class:`InputError` for
a patient input that cannot be read, :class:`RuleSetError` for a rule directory with errors and
:class:`UsageError` for a bad argument (an ``as_of`` that is not a date, an unknown profile or
validation mode).
"""

from __future__ import annotations

import datetime as dt
import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, Optional, Union

from mdtflag._version import __version__
from mdtflag.compile.cache import CompiledCache, cache_from_environment
from mdtflag.compile.plan import CompiledRuleSet
from mdtflag.errors import InputError, UsageError
from mdtflag.evaluation.decide import build_result
from mdtflag.evaluation.match import evaluate_facts
from mdtflag.evaluation.nodes import RuleEval
from mdtflag.evaluation.result import ErrorBody, ErrorResult, Result
from mdtflag.fhir.facts import FactSet, extract_facts
from mdtflag.fhir.load import LoadedBundle, iter_inputs, load_bundle
from mdtflag.fhir.regions import region_map
from mdtflag.ruleset.diagnostics import Diagnostic, RuleSetError
from mdtflag.ruleset.model import RuleSet
from mdtflag.ruleset.terminology import site_terminology_dirs, with_site_terminology

__all__ = [
    "Evaluator",
    "Source",
    "UnknownProfileError",
    "Validate",
    "cached_evaluator",
    "default_rules_dir",
    "error_result",
    "evaluate",
    "example_bundle",
    "parse_date",
]

PathArg = Union[str, "os.PathLike[str]"]
Source = Union[str, "os.PathLike[str]", bytes, dict[str, Any]]
Validate = Literal["facts", "all", "none"]
_VALIDATE_MODES = ("facts", "all", "none")

_PACKAGE = Path(__file__).resolve().parent
#: Where a wheel or a non-editable install puts the default rule set (``rules/`` in the source tree).
PACKAGED_RULES = _PACKAGE / "default_rules"
#: The rule set in a source checkout or an editable install.
CHECKOUT_RULES = _PACKAGE.parent / "rules"


def default_rules_dir() -> Path:
    """``$MDTFLAG_RULES``, else ``./rules``, else the rule set shipped with the package.

    The shipped rule set is ``mdtflag/default_rules`` in an installed package (a copy of the source tree's
    ``rules/``) and ``rules/`` beside the package in a source checkout or an editable install.
    """
    env = os.environ.get("MDTFLAG_RULES")
    if env:
        return Path(env)
    here = Path("rules")
    if (here / "ruleset.yaml").is_file():
        return here
    if (PACKAGED_RULES / "ruleset.yaml").is_file():
        return PACKAGED_RULES
    return CHECKOUT_RULES


def example_bundle() -> Path:
    """A synthetic patient bundle shipped with the package, for trying the command line anywhere."""
    return _PACKAGE / "examples" / "cholangio-braf-v600e.json"


def parse_date(value: Union[str, dt.date, None]) -> dt.date:
    """An evaluation date from ``YYYY-MM-DD``, a date or datetime, or None (today); else :class:`UsageError`."""
    if value is None:
        return dt.date.today()
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise UsageError(f"as_of must be a date YYYY-MM-DD, got {value!r}") from None


class UnknownProfileError(UsageError, RuleSetError):
    """A profile name the rule set does not define.

    A :class:`UsageError` (a bad argument) and, for callers written before that existed, a
    :class:`RuleSetError` with the same diagnostic as before (code ``C005``).
    """

    def __init__(self, profile: str, choices: list[str], diagnostics: list[Diagnostic]) -> None:
        self.profile = profile
        self.choices = choices
        RuleSetError.__init__(self, diagnostics)


def _check_validate(validate: str) -> None:
    if validate not in _VALIDATE_MODES:
        raise UsageError(f"validate must be 'facts', 'all' or 'none', not {validate!r}")


class Evaluator:
    """A rule set loaded and compiled once; ``evaluate`` is safe to call from many threads.

    Not picklable (it holds an engine handle): in worker processes build one per process,
    e.g. in a ``ProcessPoolExecutor`` initializer (see :mod:`mdtflag.cohort.worker`).
    Raises :class:`RuleSetError` for a rule directory with errors and :class:`UnknownProfileError`
    (a :class:`UsageError`) for a profile the rule set does not define.

    ``terminology``: a site's own terminology folders (FHIR ConceptMap / ValueSet / CodeSystem JSON),
    layered on the rule set's ``terminology/``; default ``$MDTFLAG_TERMINOLOGY``. They change the rule
    set's digest.
    """

    def __init__(
        self,
        rules: Union[PathArg, RuleSet, None] = None,
        profile: Optional[str] = None,
        terminology: Union[PathArg, Sequence[PathArg], None] = None,
        *,
        compiled: Optional[Mapping[str, CompiledRuleSet]] = None,
    ) -> None:
        """``compiled``: profiles of this same rule set already compiled (e.g. by ``rules check``), reused."""
        if isinstance(rules, RuleSet):
            self.ruleset = rules
        else:
            # the YAML reader and the rule checks: not imported when a compiled rule set is at hand
            from mdtflag.ruleset.load import load_ruleset

            self.ruleset = load_ruleset(Path(rules) if rules else default_rules_dir())
        self.ruleset = with_site_terminology(self.ruleset, site_terminology_dirs(terminology))
        self.profile: str = profile or self.ruleset.profiles.default
        self.regions = region_map(self.ruleset.tables.get("regions"))
        self._compiled: dict[str, CompiledRuleSet] = {
            name: crs for name, crs in (compiled or {}).items() if crs.ruleset is self.ruleset
        }
        self._lock = threading.Lock()
        self.compiled(self.profile)

    @classmethod
    def from_compiled(cls, crs: CompiledRuleSet) -> Evaluator:
        """An evaluator around a rule set already compiled; its profile is the evaluator's."""
        ev = cls.__new__(cls)
        ev.ruleset = crs.ruleset
        ev.profile = crs.profile
        ev.regions = region_map(crs.ruleset.tables.get("regions"))
        ev._compiled = {crs.profile: crs}
        ev._lock = threading.Lock()
        return ev

    def compiled(self, profile: Optional[str] = None) -> CompiledRuleSet:
        """The rule set compiled for ``profile`` (default: the evaluator's), compiled once per profile."""
        name = profile or self.profile
        with self._lock:
            crs = self._compiled.get(name)
            if crs is None:
                from mdtflag.compile.compiler import compile_or_raise  # not needed for a rule set compiled before

                try:
                    crs = self._compiled[name] = compile_or_raise(self.ruleset, name)
                except RuleSetError as e:
                    known = sorted(self.ruleset.profiles.profiles)
                    if name not in known:
                        raise UnknownProfileError(name, known, e.diagnostics) from None
                    raise
        return crs

    def facts(self, bundle: LoadedBundle, as_of: dt.date) -> FactSet:
        return extract_facts(bundle, as_of, self.regions, self.ruleset.terminology)

    def run(
        self, bundle: LoadedBundle, as_of: Union[str, dt.date, None] = None, profile: Optional[str] = None
    ) -> tuple[Result, FactSet, list[RuleEval]]:
        """Evaluate a loaded bundle and return the result with the facts and evaluations behind it."""
        day = parse_date(as_of)
        crs = self.compiled(profile)
        fs = self.facts(bundle, day)
        evals = evaluate_facts(crs, fs)
        pid = bundle.patient.get("id")
        result = build_result(
            crs,
            fs,
            evals,
            day,
            __version__,
            notes=bundle.notes,
            patient_ref=f"Patient/{pid}" if isinstance(pid, str) and pid else "Patient/",
        )
        return result, fs, evals

    def evaluate(
        self,
        source: Union[Source, LoadedBundle],
        *,
        as_of: Union[str, dt.date, None] = None,
        profile: Optional[str] = None,
        validate: Validate = "facts",
    ) -> Result:
        """Evaluate one patient bundle (path, bytes, dict or loaded bundle). Raises :class:`InputError` on bad input."""
        _check_validate(validate)
        bundle = source if isinstance(source, LoadedBundle) else load_bundle(source, validate=validate)
        return self.run(bundle, as_of, profile)[0]

    def evaluate_all(
        self,
        path: PathArg,
        *,
        as_of: Union[str, dt.date, None] = None,
        profile: Optional[str] = None,
        validate: Validate = "facts",
    ) -> Iterator[Union[Result, ErrorResult]]:
        """Every input under ``path`` (file, folder, NDJSON export) as a result or a named error; nothing is lost."""
        _check_validate(validate)
        for item in iter_inputs(path, validate=validate):
            if isinstance(item, InputError):
                yield error_result(item)
            else:
                try:
                    yield self.run(item, as_of, profile)[0]
                except InputError as e:
                    yield error_result(e)


def cached_evaluator(
    rules: Optional[PathArg] = None,
    profile: Optional[str] = None,
    *,
    mode: str = "loaded",
    build: Optional[Callable[[], Evaluator]] = None,
    cache: Union[CompiledCache, Literal["environment"], None] = "environment",
) -> Evaluator:
    """An :class:`Evaluator` for the rule directory ``rules``, from the compiled-rule-set cache when it holds
    an entry (see :mod:`mdtflag.compile.cache`), else built by ``build`` (default ``Evaluator(rules,
    profile)``) and stored. The site terminology folders are those of ``$MDTFLAG_TERMINOLOGY``.

    The same folder keeps the validation plans of resource shapes met before (:mod:`mdtflag.compile.plan_store`):
    a new process validates such resources without importing fhir.resources' models.

    ``mode`` names how ``build`` accepts the rule set (``loaded``, or ``checked`` when it must also pass
    ``rules check``): entries of different modes are kept apart. ``cache``: the environment's cache
    (``$MDTFLAG_CACHE_DIR``, ``$MDTFLAG_NO_CACHE``), a given one, or None for no cache. An entry is stored
    only when the rule files did not change while the evaluator was built.
    """
    root = Path(rules) if rules else default_rules_dir()
    make = build or (lambda: Evaluator(root, profile))
    store = cache_from_environment() if cache == "environment" else cache
    if store is None:
        return make()
    from mdtflag.compile import plan_store

    plan_store.attach(store)  # validation plans of known resource shapes from the same folder
    sites = site_terminology_dirs(None)
    key = store.key(root, sites, profile, mode)
    if key is not None:
        crs = store.load(key)
        if crs is not None:
            return Evaluator.from_compiled(crs)
    ev = make()
    if key is not None and store.key(root, sites, profile, mode) == key:
        store.store(key, ev.compiled())
    return ev


def error_result(e: InputError) -> ErrorResult:
    """The ``mdtflag.error/1`` record for an input that could not be read."""
    return ErrorResult(source=e.source, error=ErrorBody(code=e.code, message=e.message, line=e.line))


_default: dict[tuple[str, Optional[str]], Evaluator] = {}


def evaluate(
    source: Source,
    *,
    rules: Optional[PathArg] = None,
    as_of: Union[str, dt.date, None] = None,
    profile: Optional[str] = None,
) -> Result:
    """One-call convenience: evaluate a bundle with a cached :class:`Evaluator` for ``rules``."""
    key = (str(rules or default_rules_dir()), profile)
    ev = _default.get(key)
    if ev is None:
        ev = _default[key] = Evaluator(rules, profile)
    return ev.evaluate(source, as_of=as_of)
