"""``mdtflag rules test``: rule test cases, their runner, reporters and criterion coverage.

A test file holds one case (the ``fhir_examples/*.expected.yaml`` form) or many under ``cases:``::

    bundle: 01-x.json            # relative to the test file; or resources: [inline FHIR resources]
    as_of: 2026-11-01
    profile: FOCUSE_PROXY_MEGALIT  # optional: the rule set's default
    expect:
      decisions: {mdk: {level: national, target_region: vastra}}
      rules: {TRIAL-FOCUSE: flagged}
      criteria: {TRIAL-FOCUSE: {TRIAL-I4: met}}
      cohorts: {TRIAL-FOCUSE: {K-BRAF-DT: flagged}}
      missing: {TRIAL-FOCUSE: [ecog]}            # fact kinds among the flag's missing data
      targets: {HER-1: vastra}                   # routing region of a flag (null: unknown)
      suggested: {HER-1: [BRCA2]}                # keys of suggested codes

A row under ``cohorts`` may also be ``{status: ..., failed: [CID], unknown: [CID], not_failed: [CID]}``:
the criteria must be among the row's failed / unknown ones, or not among its failed ones.

Test files are validated like rule files (unknown keys, unknown rule / criterion / cohort ids are
errors with file:line:col). Codes: T001 unknown id · T002 unknown profile · T003 no as_of ·
T004 bundle missing or unreadable · T005 cohorts of a rule without for_each · T006 unknown fact kind
or decision level · T007 coverage.yaml problem.
"""
from __future__ import annotations

import datetime as dt
import difflib
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional, Sequence, Union

from pydantic import Field, field_validator, model_validator

import mdtflag.ruleset.model as rm
from mdtflag.compile.plan import PBool, PConst, PFact, PNode, PRuleRef, TField, TNode, criterion_ids
from mdtflag.ruleset.diagnostics import Diagnostic, Diagnostics, Pos, RuleSetError
from mdtflag.errors import InputError
from mdtflag.fhir.facts import FACT_MODELS, FACT_SCHEMA
from mdtflag.evaluate.kleene import MET, NOT_MET, UNKNOWN, possible as kleene_possible
from mdtflag.evaluate.match import NodeResult, RuleEval
from mdtflag.ruleset.yamlpos import KEYPOS_KEY, POS_KEY, locate, read_yaml, strip

OUTCOMES = (MET, NOT_MET, UNKNOWN)
COVERAGE_FILE = "coverage.yaml"
MARK = {MET: "✓", NOT_MET: "✗", UNKNOWN: "?"}


# ----------------------------------------------------------------------------- the test file format

def _drop_pos(v: Any, depth: int = 1) -> Any:
    """A mapping without its position keys, ``depth`` levels down (deeper mappings keep theirs)."""
    if not isinstance(v, dict):
        return v
    return {k: (_drop_pos(x, depth - 1) if depth > 1 else x) for k, x in v.items() if k not in (POS_KEY, KEYPOS_KEY)}


class DecisionExpect(rm.Model):
    """Expected decision of one group: level, region of the target, deciding and pending rules."""

    level: Optional[str] = None
    target_region: Optional[str] = None
    rules: Optional[tuple[str, ...]] = None
    pending: Optional[tuple[str, ...]] = None


class CohortExpect(rm.Model):
    """A row of a for_each rule: its status, and criteria among (or not among) its failed / unknown ones."""

    status: Optional[rm.Status] = None
    failed: tuple[str, ...] = ()
    unknown: tuple[str, ...] = ()
    not_failed: tuple[str, ...] = ()


class Expect(rm.Model):
    decisions: dict[str, DecisionExpect] = Field(default_factory=dict)
    rules: dict[str, rm.Status] = Field(default_factory=dict)
    criteria: dict[str, dict[str, rm.Outcome]] = Field(default_factory=dict)
    cohorts: dict[str, dict[str, CohortExpect]] = Field(default_factory=dict)
    missing: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    targets: dict[str, Optional[str]] = Field(default_factory=dict)
    suggested: dict[str, tuple[str, ...]] = Field(default_factory=dict)

    @field_validator("decisions", mode="before")
    @classmethod
    def _decisions(cls, v: Any) -> Any:
        return _drop_pos(v)

    @field_validator("rules", "criteria", "missing", "targets", "suggested", mode="before")
    @classmethod
    def _plain(cls, v: Any) -> Any:
        return strip(v)

    @field_validator("cohorts", mode="before")
    @classmethod
    def _cohorts(cls, v: Any) -> Any:
        """``K-1: flagged`` is short for ``K-1: {status: flagged}``."""
        v = strip(v)
        if not isinstance(v, dict):
            return v
        return {rid: {k: ({"status": x} if isinstance(x, str) else x) for k, x in rows.items()} if isinstance(rows, dict) else rows
                for rid, rows in v.items()}


def _jsonable(v: Any) -> Any:
    """YAML dates back to FHIR text (``2026-10-20``), so inline resources read like JSON ones."""
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_jsonable(x) for x in v]
    if isinstance(v, (dt.date, dt.datetime)):
        return v.isoformat()
    return v


class Case(rm.Model):
    name: Optional[str] = Field(default=None, min_length=1)
    description: Optional[str] = None
    bundle: Optional[str] = Field(default=None, min_length=1)
    resources: Optional[tuple[dict[str, Any], ...]] = Field(default=None, min_length=1)
    as_of: Optional[dt.date] = None
    profile: Optional[str] = None
    expect: Expect

    @field_validator("resources", mode="before")
    @classmethod
    def _resources(cls, v: Any) -> Any:
        return _jsonable(strip(v))

    @model_validator(mode="after")
    def _one_source(self) -> "Case":
        if (self.bundle is None) == (self.resources is None):
            raise ValueError("a case needs either 'bundle' (a file) or 'resources' (inline FHIR resources)")
        return self


class Suite(rm.Model):
    """Many cases in one file; ``as_of`` and ``profile`` here are defaults for every case."""

    description: Optional[str] = None
    as_of: Optional[dt.date] = None
    profile: Optional[str] = None
    cases: tuple[dict[str, Any], ...] = Field(min_length=1)  # each validated as a Case on its own


class IgnoreEntry(rm.Model):
    outcomes: tuple[rm.Outcome, ...] = Field(min_length=1)
    reason: str = Field(min_length=1)


class CoverageSpec(rm.Model):
    ignore: dict[str, dict[str, IgnoreEntry]] = Field(default_factory=dict)

    @field_validator("ignore", mode="before")
    @classmethod
    def _ignore(cls, v: Any) -> Any:
        return {k: _drop_pos(x) for k, x in _drop_pos(v).items()} if isinstance(v, dict) else v


class CoverageFile(rm.Model):
    coverage: CoverageSpec


@dataclass
class TestCase:
    """One case, ready to run: defaults applied, paths resolved."""

    __test__ = False  # not a pytest class

    name: str
    file: str  # the test file as shown (relative to the working directory when given so)
    line: int
    model: Case
    as_of: Optional[dt.date]
    profile: Optional[str]
    bundle_path: Optional[Path]
    raw: Any
    prefix: tuple[Any, ...]  # path of the case inside ``raw``
    rules_dir: Optional[Path] = None

    def pos(self, *path: Any) -> Pos:
        line, col = locate(self.raw, self.prefix + path)
        return Pos(self.file, line, col)


def load_test_file(path: Path, label: str, diags: Diagnostics, sources: dict[str, str]) -> list[TestCase]:
    """Read and validate (schema only) one test file; ``label`` names it in diagnostics."""
    try:
        text = path.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError) as e:
        diags.add("F002", f"cannot read file: {e}", Pos(label))
        return []
    sources[label] = text
    data = read_yaml(text, label, diags)
    if data is None:
        return []
    if isinstance(data, dict) and "cases" in data:
        suite = rm._validate(Suite, data, label, diags)
        if suite is None:
            return []
        pairs: list[tuple[Case, tuple[Any, ...], str]] = []
        for i, raw in enumerate(data["cases"]):  # one invalid case does not hide the others
            case = rm._validate(Case, raw, label, diags)
            if case is not None:
                pairs.append((case, ("cases", i), case.name or f"{_stem(path)}[{i + 1}]"))
        as_of, profile = suite.as_of, suite.profile
    else:
        case = rm._validate(Case, data, label, diags)
        if case is None:
            return []
        pairs = [(case, tuple(), case.name or _stem(path))]
        as_of, profile = None, None
    out = []
    for case, prefix, name in pairs:
        tc = TestCase(name, label, case.pos.line, case, case.as_of or as_of, case.profile or profile,
                      (path.parent / case.bundle) if case.bundle else None, data, prefix)
        if tc.as_of is None:
            diags.add("T003", f"case '{name}' has no as_of date", case.pos, help="add as_of: YYYY-MM-DD (to the case or the file)")
        out.append(tc)
    return out


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (".expected.yaml", ".expected.yml", ".yaml", ".yml"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _unknown(diags: Diagnostics, what: str, value: str, choices: Iterable[str], pos: Pos, code: str = "T001") -> None:
    noun, _, owner = what.partition(" of ")
    close = difflib.get_close_matches(value, list(choices), n=1)
    diags.add(code, f"unknown {noun} '{value}'" + (f" of {owner}" if owner else ""), pos,
              help=f"did you mean '{close[0]}'?" if close else "")


def validate_case(tc: TestCase, rs: rm.RuleSet, diags: Diagnostics) -> None:
    """Every id an expectation names must exist in the rule set (T001, T002, T004-T006)."""
    ex = tc.model.expect
    rules = {r.id: r for r in rs.rules}
    if tc.profile is not None and tc.profile not in rs.profiles.profiles:
        where = tc.pos("profile") if tc.model.profile else Pos(tc.file, 1, 1)
        _unknown(diags, "profile", tc.profile, rs.profiles.profiles, where, "T002")
    if tc.bundle_path is not None and not tc.bundle_path.is_file():
        diags.add("T004", f"bundle file not found: {tc.model.bundle}", tc.pos("bundle"), help="the path is relative to the test file")

    def rule_of(section: str, rid: str) -> Optional[rm.Rule]:
        if rid not in rules:
            _unknown(diags, "rule", rid, rules, tc.pos("expect", section, rid))
        return rules.get(rid)

    for rid in ex.rules:
        rule_of("rules", rid)
    for rid, crit in ex.criteria.items():
        rule = rule_of("criteria", rid)
        if rule is not None:
            ids = criterion_ids(rule)
            for cid in crit:
                if cid not in ids:
                    _unknown(diags, f"criterion of {rid}", cid, ids, tc.pos("expect", "criteria", rid, cid))
    for rid, cohorts in ex.cohorts.items():
        rule = rule_of("cohorts", rid)
        if rule is None:
            continue
        if rule.for_each is None:
            diags.add("T005", f"rule {rid} has no for_each: it has no cohorts", tc.pos("expect", "cohorts", rid))
            continue
        table = rs.tables.get(rule.for_each.table)
        keys = [r["key"] for r in table.rows] if table else []
        ids = criterion_ids(rule)
        for key, want in cohorts.items():
            if key not in keys:
                _unknown(diags, f"row of table {rule.for_each.table}", key, keys, tc.pos("expect", "cohorts", rid, key))
            for part in ("failed", "unknown", "not_failed"):
                for i, cid in enumerate(getattr(want, part)):
                    if cid not in ids:
                        _unknown(diags, f"criterion of {rid}", cid, ids, tc.pos("expect", "cohorts", rid, key, part, i))
    for rid in ex.targets:
        rule = rule_of("targets", rid)
        if rule is not None and rule.target is None:
            diags.add("T005", f"rule {rid} has no target", tc.pos("expect", "targets", rid))
    for rid in ex.suggested:
        rule = rule_of("suggested", rid)
        if rule is not None and rule.suggest is None:
            diags.add("T005", f"rule {rid} suggests no codes (it has no 'suggest')", tc.pos("expect", "suggested", rid))
    for rid, kinds in ex.missing.items():
        if rule_of("missing", rid) is not None:
            for i, kind in enumerate(kinds):
                if kind not in FACT_SCHEMA:
                    diags.add("T006", f"unknown fact kind '{kind}'", tc.pos("expect", "missing", rid, i),
                              help="kinds: " + ", ".join(sorted(FACT_SCHEMA)))
    groups: dict[str, set[str]] = {}
    for r in rs.rules:
        if r.decision is not None:
            groups.setdefault(r.decision.group, set()).add(r.decision.level)
    for group, d in ex.decisions.items():
        if group not in groups:
            _unknown(diags, "decision group", group, groups, tc.pos("expect", "decisions", group))
            continue
        levels = groups[group] | {"undetermined"}
        if d.level is not None and d.level not in levels:
            diags.add("T006", f"decision group '{group}' has no level '{d.level}'", tc.pos("expect", "decisions", group, "level"),
                      help="levels: " + ", ".join(sorted(levels)))
        for key in ("rules", "pending"):
            for i, rid in enumerate(getattr(d, key) or ()):
                if rid not in rules:
                    _unknown(diags, "rule", rid, rules, tc.pos("expect", "decisions", group, key, i))


def load_coverage_spec(rules_dir: Path, rs: rm.RuleSet, diags: Diagnostics, sources: dict[str, str],
                       label: str) -> dict[tuple[str, str], tuple[frozenset[str], str]]:
    """``tests/coverage.yaml`` → {(rule, criterion): (ignored outcomes, reason)}."""
    path = rules_dir / "tests" / COVERAGE_FILE
    if not path.is_file():
        return {}
    text = path.read_text(encoding="utf-8", errors="replace")
    sources[label] = text
    data = read_yaml(text, label, diags)
    if data is None:
        return {}
    bare = False
    ignore = data.get("coverage", {}).get("ignore") if isinstance(data, dict) and isinstance(data.get("coverage"), dict) else None
    if isinstance(ignore, dict):
        for rid, crits in ignore.items():
            if isinstance(crits, dict):
                for cid, entry in crits.items():
                    if isinstance(entry, list) and rid not in (POS_KEY, KEYPOS_KEY) and cid not in (POS_KEY, KEYPOS_KEY):
                        line, col = locate(data, ("coverage", "ignore", rid, cid))
                        diags.add("T007", f"ignored outcomes of {rid}/{cid} need a reason", Pos(label, line, col),
                                  help="write {outcomes: [unknown], reason: \"why it cannot happen\"}")
                        bare = True
    spec = None if bare else rm._validate(CoverageFile, data, label, diags)
    if spec is None:
        return {}
    out: dict[tuple[str, str], tuple[frozenset[str], str]] = {}
    for rid, crits in spec.coverage.ignore.items():
        rule = rs.rule(rid)
        if rule is None:
            line, col = locate(data, ("coverage", "ignore", rid))
            _unknown(diags, "rule", rid, [r.id for r in rs.rules], Pos(label, line, col))
            continue
        ids = criterion_ids(rule)
        for cid, entry in crits.items():
            if cid not in ids:
                line, col = locate(data, ("coverage", "ignore", rid, cid))
                _unknown(diags, f"criterion of {rid}", cid, ids, Pos(label, line, col))
                continue
            out[(rid, cid)] = (frozenset(entry.outcomes), entry.reason)
    return out


def check_rule_tests(rs: rm.RuleSet) -> tuple[list[Diagnostic], dict[str, str]]:
    """Validate (without running) the test files of a rule directory, for ``rules check``."""
    diags = Diagnostics()
    sources: dict[str, str] = {}
    root = Path(rs.root)
    for rel in rs.test_files:
        if Path(rel).name == COVERAGE_FILE:
            continue
        for tc in load_test_file(root / rel, rel, diags, sources):
            validate_case(tc, rs, diags)
    load_coverage_spec(root, rs, diags, sources, f"tests/{COVERAGE_FILE}")
    return diags.items, sources


# ----------------------------------------------------------------------------- running

@dataclass(frozen=True)
class Failure:
    where: str  # e.g. "rules.TRIAL-FOCUSE"
    expected: str
    got: str
    pos: Pos
    rule: Optional[str] = None


@dataclass
class CaseResult:
    case: TestCase
    status: str  # pass | fail | error
    failures: list[Failure] = field(default_factory=list)
    result: Any = None
    evals: dict[str, RuleEval] = field(default_factory=dict)
    error: str = ""


def case_bundle(tc: TestCase) -> Union[Path, dict[str, Any]]:
    if tc.bundle_path is not None:
        return tc.bundle_path
    return {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": r} for r in tc.model.resources or ()]}


def run_case(tc: TestCase, evaluator: Any) -> CaseResult:
    from mdtflag.fhir.load import load_bundle

    try:
        bundle = load_bundle(case_bundle(tc))  # type: ignore[arg-type]
        result, _fs, evals = evaluator.run(bundle, tc.as_of, tc.profile)
    except InputError as e:
        return CaseResult(tc, "error", error=f"the bundle cannot be read: {e}")
    by_id = {ev.rule.id: ev for ev in evals}
    failures = compare(tc, result, by_id)
    return CaseResult(tc, "fail" if failures else "pass", failures, result, by_id)


def compare(tc: TestCase, result: Any, evals: Mapping[str, RuleEval]) -> list[Failure]:
    ex = tc.model.expect
    out: list[Failure] = []

    def check(expected: Any, got: Any, *path: str, rule: Optional[str] = None) -> None:
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
            for part, wanted, among, inside in (("failed", want.failed, failed, True), ("unknown", want.unknown, unknown, True),
                                                ("not_failed", want.not_failed, failed, False)):
                wrong = [c for c in wanted if (c in among) != inside]
                if wrong:
                    what = "among" if inside else "not among"
                    out.append(Failure(f"cohorts.{rid}.{key}.{part}", f"{_show(wrong)} {what} the row's {part.replace('not_', '')}",
                                       _show(among), tc.pos("expect", "cohorts", rid, key, part), rid))
    for rid, region in ex.targets.items():
        flag = result.flag(rid)
        got_region = flag.target.healthcare_region if flag is not None and flag.target is not None else "no target"
        check(region, got_region, "targets", rid, rule=rid)
    for rid, keys in ex.suggested.items():
        flag = result.flag(rid)
        check(sorted(keys), sorted(x.key for x in (flag.suggested_codes or [])) if flag else [], "suggested", rid, rule=rid)
    for rid, kinds in ex.missing.items():
        flag = result.flag(rid)
        got_kinds = sorted({m.fact for m in flag.missing}) if flag else []
        if (not kinds and got_kinds) or not set(kinds) <= set(got_kinds):
            out.append(Failure(f"missing.{rid}", _show(sorted(kinds)) + (" (at least)" if kinds else ""), _show(got_kinds),
                               tc.pos("expect", "missing", rid), rid))
    return out


def _show(v: Any) -> str:
    if v is None:
        return "none"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(str(x) for x in v) + "]"
    return str(v)


# ----------------------------------------------------------------------------- discovery and the run

@dataclass
class TestRun:
    __test__ = False

    results: list[CaseResult]
    diagnostics: list[Diagnostic]
    coverage: list["CoverageReport"]

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


def discover(paths: Sequence[str], rules: Optional[str]) -> list[tuple[Path, str, Path]]:
    """(test file, label, rule directory) for every test file under the given paths, in order."""
    from mdtflag.api import default_rules_dir

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


def run_tests(paths: Sequence[str], rules: Optional[str] = None, keyword: Optional[str] = None,
              coverage: bool = False) -> TestRun:
    from mdtflag.api import Evaluator

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
            from mdtflag.authoring.check import prefixed

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
            reports.append(coverage_report(str(rdir), ev, [r for r in results if r.case.rules_dir == rdir], spec))
    return TestRun(results, diags.sorted(sources), reports)


# ----------------------------------------------------------------------------- coverage

@dataclass
class CoverageReport:
    rules_dir: str
    seen: dict[tuple[str, str], set[str]]
    possible: dict[tuple[str, str], set[str]]
    ignored: dict[tuple[str, str], tuple[frozenset[str], str]]
    criteria: list[tuple[str, str]]

    def counted(self) -> list[tuple[str, str, str]]:
        """Every (rule, criterion, outcome) the percentage counts: possible and not ignored."""
        out = []
        for key in self.criteria:
            ign = self.ignored.get(key, (frozenset(), ""))[0]
            for o in OUTCOMES:
                if o in self.possible.get(key, set()) and o not in ign:
                    out.append((key[0], key[1], o))
        return out

    @property
    def percent(self) -> float:
        counted = self.counted()
        if not counted:
            return 100.0
        hit = sum(1 for r, c, o in counted if o in self.seen.get((r, c), set()))
        return 100.0 * hit / len(counted)

    def never(self, outcome: str) -> list[str]:
        return [f"{r}/{c}" for r, c, o in self.counted() if o == outcome and o not in self.seen.get((r, c), set())]

    def impossible(self) -> list[tuple[str, str, str]]:
        return [(k[0], k[1], o) for k in self.criteria for o in OUTCOMES if o not in self.possible.get(k, set())]

    def stale_ignores(self) -> list[tuple[str, str, str]]:
        return [(k[0], k[1], o) for k, (outs, _) in sorted(self.ignored.items()) for o in sorted(outs) if o in self.seen.get(k, set())]

    def to_dict(self) -> dict[str, Any]:
        counted = self.counted()
        hit = sum(1 for r, c, o in counted if o in self.seen.get((r, c), set()))
        return {
            "rules_dir": self.rules_dir,
            "percent": round(self.percent, 1),
            "seen": hit,
            "counted": len(counted),
            "criteria": len(self.criteria),
            "never": {o: self.never(o) for o in OUTCOMES},
            "impossible": [f"{r}/{c}:{o}" for r, c, o in self.impossible()],
            "ignored": {f"{r}/{c}": {"outcomes": sorted(outs), "reason": why} for (r, c), (outs, why) in sorted(self.ignored.items())},
            "ignored_but_seen": [f"{r}/{c}:{o}" for r, c, o in self.stale_ignores()],
        }


def seen_outcomes(evals: Iterable[RuleEval], into: dict[tuple[str, str], set[str]]) -> None:
    """Every criterion outcome of every evaluated row (not only the best) and of applicability."""
    def walk(rid: str, r: NodeResult) -> None:
        cid = getattr(r.node, "id", None)
        if cid:
            into.setdefault((rid, cid), set()).add(r.outcome)
        for ch in r.children:
            walk(rid, ch)

    for ev in evals:
        trees = ([ev.applies] if ev.applies is not None else []) + [i.result for i in ev.instances]
        for t in trees:
            walk(ev.rule.id, t)


def _test_may_lack(t: Optional[TNode], kind: str) -> bool:
    """Whether a fact of ``kind`` can lack a field the test reads (then the test can be unknown)."""
    if t is None:
        return False
    if isinstance(t, TField):
        model: Any = FACT_MODELS[kind]
        info = model.model_fields.get(t.field)
        return info is None or (not info.is_required() and info.default is None)
    return any(_test_may_lack(x, kind) for x in t.items)


def possible(p: PNode, into: dict[int, tuple[str, set[str]]]) -> set[str]:
    """Outcomes a plan node can have for some patient (an over-approximation: children independent)."""
    if isinstance(p, PConst):
        got = {p.outcome}
    elif isinstance(p, PBool):
        got = kleene_possible(p.op, [possible(x, into) for x in p.items])
    elif isinstance(p, PFact):
        leaf = p.node
        got = {MET}
        if p.kind != "patient" or p.where:  # every patient has exactly one patient fact
            got.add(leaf.missing)
        if p.window is not None:
            got.add(leaf.stale)
        if p.test is not None:
            got.add(NOT_MET)
            if _test_may_lack(p.test, p.kind):
                got.add(UNKNOWN)
    else:
        got = _ruleref_possible(p)
    cid = getattr(p.node, "id", None)
    if cid:
        into.setdefault(id(p.node), (cid, set()))[1].update(got)
    return got


def _ruleref_possible(p: PRuleRef) -> set[str]:
    leaf = p.node
    wanted: set[str]
    if leaf.criterion is None:
        wanted, undecided, options = set(leaf.status or ()), "indeterminate", ("flagged", "not_flagged")
        values: tuple[str, ...] = ("flagged", "not_flagged", "indeterminate", "not_applicable")
    else:
        wanted, undecided, options = set(leaf.outcome or ()), UNKNOWN, (MET, NOT_MET)
        values = OUTCOMES
    out = set()
    for got in values:
        if got != undecided:
            out.add(MET if got in wanted else NOT_MET)
        elif undecided in wanted or all(o in wanted for o in options):
            out.add(MET)
        elif not any(o in wanted for o in options):
            out.add(NOT_MET)
        else:
            out.add(UNKNOWN)
    return out


def possible_outcomes(compiled: Iterable[Any]) -> dict[tuple[str, str], set[str]]:
    out: dict[tuple[str, str], set[str]] = {}
    for crs in compiled:
        for cr in crs.rules:
            by_node: dict[int, tuple[str, set[str]]] = {}
            for plan in ([cr.applies] if cr.applies is not None else []) + [i.plan for i in cr.instances]:
                possible(plan, by_node)
            for cid, outs in by_node.values():
                out.setdefault((cr.rule.id, cid), set()).update(outs)
    return out


def coverage_report(rules_dir: str, evaluator: Any, results: Sequence[CaseResult],
                    ignored: dict[tuple[str, str], tuple[frozenset[str], str]]) -> CoverageReport:
    rs = evaluator.ruleset
    seen: dict[tuple[str, str], set[str]] = {}
    for r in results:
        seen_outcomes(r.evals.values(), seen)
    compiled = [evaluator.compiled(p) for p in sorted(rs.profiles.profiles)]
    criteria = [(rule.id, cid) for rule in rs.rules for cid in dict.fromkeys(criterion_ids(rule))]
    return CoverageReport(rules_dir, seen, possible_outcomes(compiled), ignored, criteria)


# ----------------------------------------------------------------------------- reporters

def failure_lines(res: CaseResult) -> list[str]:
    out: list[str] = []
    if res.status == "error":
        return [f"    {res.error}"]
    for f in res.failures:
        out.append(f"    {f.where} (line {f.pos.line}): expected {f.expected}, got {f.got}")
    if res.result is None:
        return out
    for group in dict.fromkeys(f.where.split(".")[1] for f in res.failures if f.where.startswith("decisions.")):
        d = res.result.decisions.get(group)
        if d is not None:
            pend = ", ".join(p.rule for p in d.pending) or "none"
            region = d.target.healthcare_region if d.target is not None else None
            out.append(f"    decision {group}: {d.level} by {', '.join(d.rules) or 'no rule'}; region {region or 'unknown'}; pending {pend}")
    for rid in dict.fromkeys(f.rule for f in res.failures if f.rule):
        out.extend(rule_lines(res, rid))  # type: ignore[arg-type]
    return out


def rule_lines(res: CaseResult, rid: str) -> list[str]:
    flag = res.result.flag(rid)
    ev = res.evals.get(rid)
    if flag is None or ev is None:
        return []
    row = f", row {ev.best.row.get('key')}" if ev.best is not None and ev.best.row is not None else ""
    out = [f"    {rid} is {flag.status}{row}:"]
    for reason in flag.reasons:
        text = reason.text.en  # the generic text already starts with the id ("T-ANC: met")
        shown = text if text.startswith(f"{reason.criterion}: ") else f"{reason.criterion}: {text}"
        out.append(f"      {MARK[reason.outcome]} {shown}")
    for c in flag.cohorts or []:
        extra = "".join([f"  ✗ {', '.join(c.failed)}" if c.failed else "", f"  ? {', '.join(c.unknown)}" if c.unknown else ""])
        out.append(f"      row {c.key}: {c.status}{extra}")
    for m in flag.missing:
        out.append(f"      missing: {m.fact} ({m.reason}{', ' + m.field if m.field else ''}) – {m.text.en}")
    return out


def render_text(run: TestRun) -> str:
    out = [d.format() for d in run.diagnostics]
    for res in run.results:
        word = {"pass": "PASS", "fail": "FAIL", "error": "ERROR"}[res.status]
        out.append(f"{word} {res.case.name} ({res.case.file}:{res.case.line})")
        if res.status != "pass":
            out.extend(failure_lines(res))
            out.append(f"    explain: mdtflag explain {res.case.file} --case '{res.case.name}'"
                       + "".join(f" --rule {r}" for r in dict.fromkeys(f.rule for f in res.failures if f.rule)))
    for cov in run.coverage:
        out.extend(coverage_lines(cov))
    if not run.results:
        out.append("no test cases ran")
    out.append(f"{run.passed} passed, {run.failed} failed")
    return "\n".join(out) + "\n"


def coverage_lines(cov: CoverageReport) -> list[str]:
    d = cov.to_dict()
    out = [f"coverage of {cov.rules_dir}: {d['percent']:.1f}% ({d['seen']} of {d['counted']} criterion outcomes seen; "
           f"{_n(len(cov.criteria), 'criterion', 'criteria')}, {_n(len(d['impossible']), 'outcome')} impossible by construction, "
           f"{sum(len(v['outcomes']) for v in d['ignored'].values())} ignored)"]
    for o in OUTCOMES:
        never = d["never"][o]
        if never:
            out.append(f"  never {o} ({len(never)}): {', '.join(never)}")
    for item in d["ignored_but_seen"]:
        out.append(f"  ignored but seen: {item} (remove it from tests/{COVERAGE_FILE})")
    return out


def _n(n: int, one: str, many: Optional[str] = None) -> str:
    return f"{n} {one if n == 1 else (many or one + 's')}"


def render_json(run: TestRun) -> dict[str, Any]:
    return {
        "cases": [
            {"name": r.case.name, "file": r.case.file, "line": r.case.line, "status": r.status,
             "failures": [{"where": f.where, "expected": f.expected, "got": f.got, "line": f.pos.line} for f in r.failures],
             "error": r.error or None}
            for r in run.results
        ],
        "diagnostics": [d.to_dict() for d in run.diagnostics],
        "coverage": [c.to_dict() for c in run.coverage],
        "summary": {"passed": run.passed, "failed": run.failed, "invalid": run.invalid},
    }


def render_junit(run: TestRun) -> str:
    suites = ET.Element("testsuites", name="mdtflag rules test", tests=str(len(run.results)),
                        failures=str(sum(1 for r in run.results if r.status == "fail")),
                        errors=str(sum(1 for r in run.results if r.status == "error")))
    by_file: dict[str, list[CaseResult]] = {}
    for r in run.results:
        by_file.setdefault(r.case.file, []).append(r)
    for file, results in by_file.items():
        suite = ET.SubElement(suites, "testsuite", name=file, tests=str(len(results)),
                              failures=str(sum(1 for r in results if r.status == "fail")),
                              errors=str(sum(1 for r in results if r.status == "error")))
        for r in results:
            tc = ET.SubElement(suite, "testcase", classname=file, name=r.case.name, file=file, line=str(r.case.line))
            if r.status != "pass":
                first = r.failures[0] if r.failures else None
                msg = f"{first.where}: expected {first.expected}, got {first.got}" if first else r.error
                el = ET.SubElement(tc, "failure" if r.status == "fail" else "error", message=msg)
                el.text = "\n".join(line.strip() for line in failure_lines(r))
    if run.diagnostics:
        suite = ET.SubElement(suites, "testsuite", name="test files", tests=str(len(run.diagnostics)), failures="0",
                              errors=str(sum(1 for d in run.diagnostics if d.severity == "error")))
        for d in run.diagnostics:
            tc = ET.SubElement(suite, "testcase", classname="diagnostics", name=f"{d.pos}: {d.code}")
            if d.severity == "error":
                ET.SubElement(tc, "error", message=d.message).text = d.format()
    ET.indent(suites)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"
