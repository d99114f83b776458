"""``mdtflag rules test``: finding test files, running their cases and comparing with what they expect."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mdtflag.api import Evaluator, default_rules_dir
from mdtflag.authoring.casefile import (
    COVERAGE_FILE,
    TestCase,
    case_bundle,
    load_coverage_spec,
    load_test_file,
    validate_case,
)
from mdtflag.authoring.coverage import CoverageReport, coverage_report
from mdtflag.errors import InputError
from mdtflag.evaluation.nodes import RuleEval
from mdtflag.fhir.load import load_bundle
from mdtflag.ruleset.diagnostics import Diagnostic, Diagnostics, Pos, RuleSetError, prefixed


@dataclass(frozen=True)
class Failure:
    where: str  # e.g. "rules.TRIAL-FOCUSE"
    expected: str
    got: str
    pos: Pos
    rule: str | None = None


@dataclass
class CaseResult:
    case: TestCase
    status: str  # pass | fail | error
    failures: list[Failure] = field(default_factory=list)
    result: Any = None
    evals: dict[str, RuleEval] = field(default_factory=dict)
    error: str = ""


def run_case(tc: TestCase, evaluator: Any) -> CaseResult:
    try:
        bundle = load_bundle(case_bundle(tc))
        result, _fs, evals = evaluator.run(bundle, tc.as_of, tc.profile)
    except InputError as e:
        return CaseResult(tc, "error", error=f"the bundle cannot be read: {e}")
    by_id = {ev.rule.id: ev for ev in evals}
    failures = compare(tc, result, by_id)
    return CaseResult(tc, "fail" if failures else "pass", failures, result, by_id)


def compare(tc: TestCase, result: Any, evals: Mapping[str, RuleEval]) -> list[Failure]:
    ex = tc.model.expect
    out: list[Failure] = []

    def check(expected: Any, got: Any, *path: str, rule: str | None = None) -> None:
        if expected != got:
            out.append(Failure(".".join(path), _show(expected), _show(got), tc.pos("expect", *path), rule))

    for group, d in ex.decisions.items():
        got = result.decisions.get(group)
        if d.level is not None:
            check(d.level, got.level if got else None, "decisions", group, "level")
        if "target_region" in d.model_fields_set:
            region = got.target.healthcare_region if got is not None and got.target is not None else None
            check(d.target_region, region, "decisions", group, "target_region")
        if d.rules is not None:
            check(sorted(d.rules), sorted(got.rules) if got else [], "decisions", group, "rules")
        if d.pending is not None:
            check(sorted(d.pending), sorted(p.rule for p in got.pending) if got else [], "decisions", group, "pending")
    for rid, status in ex.rules.items():
        flag = result.flag(rid)
        check(status, flag.status if flag else None, "rules", rid, rule=rid)
    for rid, crits in ex.criteria.items():
        ev = evals.get(rid)
        for cid, outcome in crits.items():
            node = ev.criterion(cid) if ev is not None else None
            check(outcome, node.outcome if node is not None else "not evaluated", "criteria", rid, cid, rule=rid)
    for rid, cohorts in ex.cohorts.items():
        flag = result.flag(rid)
        got_rows = {c.key: c for c in (flag.cohorts or [])} if flag else {}
        for key, want in cohorts.items():
            row = got_rows.get(key)
            if want.status is not None:
                # rows of a rule that does not apply are not evaluated: they do not apply either
                absent = "not_applicable" if flag is not None and flag.status == "not_applicable" else "absent"
                check(want.status, row.status if row else absent, "cohorts", rid, key, rule=rid)
            failed, unknown = (row.failed, row.unknown) if row else ([], [])
            for part, wanted, among, inside in (
                ("failed", want.failed, failed, True),
                ("unknown", want.unknown, unknown, True),
                ("not_failed", want.not_failed, failed, False),
            ):
                wrong = [c for c in wanted if (c in among) != inside]
                if wrong:
                    what = "among" if inside else "not among"
                    out.append(
                        Failure(
                            f"cohorts.{rid}.{key}.{part}",
                            f"{_show(wrong)} {what} the row's {part.replace('not_', '')}",
                            _show(among),
                            tc.pos("expect", "cohorts", rid, key, part),
                            rid,
                        )
                    )
    for rid, region in ex.targets.items():
        flag = result.flag(rid)
        got_region = flag.target.healthcare_region if flag is not None and flag.target is not None else "no target"
        check(region, got_region, "targets", rid, rule=rid)
    for rid, keys in ex.suggested.items():
        flag = result.flag(rid)
        check(
            sorted(keys),
            sorted(x.key for x in (flag.suggested_codes or [])) if flag else [],
            "suggested",
            rid,
            rule=rid,
        )
    for rid, kinds in ex.missing.items():
        flag = result.flag(rid)
        got_kinds = sorted({m.fact for m in flag.missing}) if flag else []
        if (not kinds and got_kinds) or not set(kinds) <= set(got_kinds):
            out.append(
                Failure(
                    f"missing.{rid}",
                    _show(sorted(kinds)) + (" (at least)" if kinds else ""),
                    _show(got_kinds),
                    tc.pos("expect", "missing", rid),
                    rid,
                )
            )
    return out


def _show(v: Any) -> str:
    if v is None:
        return "none"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(str(x) for x in v) + "]"
    return str(v)


@dataclass
class TestRun:
    __test__ = False

    results: list[CaseResult]
    diagnostics: list[Diagnostic]
    coverage: list[CoverageReport]

    @property
    def passed(self) -> int:
        return sum(1 for r in self.results if r.status == "pass")

    @property
    def failed(self) -> int:
        return sum(1 for r in self.results if r.status != "pass")

    @property
    def invalid(self) -> bool:
        return any(d.severity == "error" for d in self.diagnostics)


def is_rule_dir(p: Path) -> bool:
    return p.is_dir() and (p / "ruleset.yaml").is_file()


def discover(paths: Sequence[str], rules: str | None) -> list[tuple[Path, str, Path]]:
    """(test file, label, rule directory) for every test file under the given paths, in order."""
    rule_dirs = [Path(p) for p in paths if is_rule_dir(Path(p))]
    default = Path(rules) if rules else (rule_dirs[0] if rule_dirs else default_rules_dir())
    out: list[tuple[Path, str, Path]] = []
    for given in paths:
        p = Path(given)
        if is_rule_dir(p):
            base, rdir = p / "tests", p
            files = _yaml_under(base)
        elif p.is_dir():
            base, rdir, files = p, default, _yaml_under(p)
        else:
            base, rdir, files = p.parent, default, [p]
        for f in files:
            label = f.as_posix() if p.is_file() else (Path(given) / f.relative_to(p)).as_posix()
            out.append((f, label, rdir))
    return out


def _yaml_under(d: Path) -> list[Path]:
    if not d.is_dir():
        return []
    return sorted(f for f in d.rglob("*") if f.is_file() and f.suffix in (".yaml", ".yml") and f.name != COVERAGE_FILE)


def run_tests(
    paths: Sequence[str], rules: str | None = None, keyword: str | None = None, coverage: bool = False
) -> TestRun:
    diags = Diagnostics()
    sources: dict[str, str] = {}
    evaluators: dict[Path, Any] = {}
    broken: set[Path] = set()
    cases: list[tuple[TestCase, bool]] = []
    files = discover(paths, rules)
    # every rule directory named or used, even one without test files: its coverage is then 0%
    rule_dirs = [Path(p) for p in paths if is_rule_dir(Path(p))] + [rdir for _, _, rdir in files]
    for rdir in dict.fromkeys(rule_dirs):
        try:
            evaluators[rdir] = Evaluator(rdir)
            if coverage:
                for name in evaluators[rdir].ruleset.profiles.profiles:
                    evaluators[rdir].compiled(name)
        except RuleSetError as e:
            evaluators.pop(rdir, None)
            diags.items.extend(prefixed(d, str(rdir)) for d in e.diagnostics)
            broken.add(rdir)
    for path, label, rdir in files:
        if rdir in broken:
            continue
        rs = evaluators[rdir].ruleset
        for tc in load_test_file(path, label, diags, sources):
            tc.rules_dir = rdir
            before = len(diags.errors)
            validate_case(tc, rs, diags)
            cases.append((tc, tc.as_of is not None and len(diags.errors) == before))
    results: list[CaseResult] = []
    for tc, valid in cases:
        if not valid or (keyword and keyword not in tc.name and keyword not in tc.file):
            continue  # an invalid case is reported as diagnostics, once; the valid ones still run
        res = run_case(tc, evaluators[tc.rules_dir])  # type: ignore[index]
        if res.status == "error":
            diags.add("T004", res.error, tc.pos("bundle") if tc.bundle_path else tc.pos("resources"))
        results.append(res)
    reports: list[CoverageReport] = []
    if coverage:
        for rdir, ev in evaluators.items():
            spec = load_coverage_spec(rdir, ev.ruleset, diags, sources, (rdir / "tests" / COVERAGE_FILE).as_posix())
            reports.append(
                coverage_report(str(rdir), ev, [r.evals.values() for r in results if r.case.rules_dir == rdir], spec)
            )
    return TestRun(results, diags.sorted(sources), reports)
