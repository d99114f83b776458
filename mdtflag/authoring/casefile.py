"""Rule test files (``mdtflag rules test``): their format, reading and validation against a rule set.

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
errors with file:line:col; ``T`` codes in :data:`mdtflag.ruleset.diagnostics.CODES`).
"""

from __future__ import annotations

import datetime as dt
import difflib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

from pydantic import Field, field_validator, model_validator

import mdtflag.ruleset.model as rm
from mdtflag.fhir.facts import FACT_SCHEMA
from mdtflag.ruleset.diagnostics import Diagnostic, Diagnostics, Pos, decode_utf8
from mdtflag.ruleset.load import validate_document
from mdtflag.ruleset.walk import criterion_ids
from mdtflag.ruleset.yamlpos import KEYPOS_KEY, POS_KEY, locate, read_yaml, strip

COVERAGE_FILE = "coverage.yaml"


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
        return {
            rid: {k: ({"status": x} if isinstance(x, str) else x) for k, x in rows.items()}
            if isinstance(rows, dict)
            else rows
            for rid, rows in v.items()
        }


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
    def _one_source(self) -> Case:
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
        raw = path.read_bytes()
    except OSError as e:
        diags.add("F002", f"cannot read file: {e}", Pos(label))
        return []
    text = decode_utf8(raw, label, diags)
    if text is None:
        return []
    sources[label] = text
    data = read_yaml(text, label, diags)
    if data is None:
        return []
    if isinstance(data, dict) and "cases" in data:
        suite = validate_document(Suite, data, label, diags)
        if suite is None:
            return []
        pairs: list[tuple[Case, tuple[Any, ...], str]] = []
        for i, raw in enumerate(data["cases"]):  # one invalid case does not hide the others
            case = validate_document(Case, raw, label, diags)
            if case is not None:
                pairs.append((case, ("cases", i), case.name or f"{_stem(path)}[{i + 1}]"))
        as_of, profile = suite.as_of, suite.profile
    else:
        case = validate_document(Case, data, label, diags)
        if case is None:
            return []
        pairs = [(case, (), case.name or _stem(path))]
        as_of, profile = None, None
    out = []
    for case, prefix, name in pairs:
        tc = TestCase(
            name,
            label,
            case.pos.line,
            case,
            case.as_of or as_of,
            case.profile or profile,
            (path.parent / case.bundle) if case.bundle else None,
            data,
            prefix,
        )
        if tc.as_of is None:
            diags.add(
                "T003",
                f"case '{name}' has no as_of date",
                case.pos,
                help="add as_of: YYYY-MM-DD (to the case or the file)",
            )
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
    diags.add(
        code,
        f"unknown {noun} '{value}'" + (f" of {owner}" if owner else ""),
        pos,
        help=f"did you mean '{close[0]}'?" if close else "",
    )


def validate_case(tc: TestCase, rs: rm.RuleSet, diags: Diagnostics) -> None:
    """Every id an expectation names must exist in the rule set (T001, T002, T004-T006)."""
    ex = tc.model.expect
    rules = {r.id: r for r in rs.rules}
    if tc.profile is not None and tc.profile not in rs.profiles.profiles:
        where = tc.pos("profile") if tc.model.profile else Pos(tc.file, 1, 1)
        _unknown(diags, "profile", tc.profile, rs.profiles.profiles, where, "T002")
    if tc.bundle_path is not None and not tc.bundle_path.is_file():
        diags.add(
            "T004",
            f"bundle file not found: {tc.model.bundle}",
            tc.pos("bundle"),
            help="the path is relative to the test file",
        )

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
                    diags.add(
                        "T006",
                        f"unknown fact kind '{kind}'",
                        tc.pos("expect", "missing", rid, i),
                        help="kinds: " + ", ".join(sorted(FACT_SCHEMA)),
                    )
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
            diags.add(
                "T006",
                f"decision group '{group}' has no level '{d.level}'",
                tc.pos("expect", "decisions", group, "level"),
                help="levels: " + ", ".join(sorted(levels)),
            )
        for key in ("rules", "pending"):
            for i, rid in enumerate(getattr(d, key) or ()):
                if rid not in rules:
                    _unknown(diags, "rule", rid, rules, tc.pos("expect", "decisions", group, key, i))


def load_coverage_spec(
    rules_dir: Path, rs: rm.RuleSet, diags: Diagnostics, sources: dict[str, str], label: str
) -> dict[tuple[str, str], tuple[frozenset[str], str]]:
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
    ignore = (
        data.get("coverage", {}).get("ignore")
        if isinstance(data, dict) and isinstance(data.get("coverage"), dict)
        else None
    )
    if isinstance(ignore, dict):
        for rid, crits in ignore.items():
            if isinstance(crits, dict):
                for cid, entry in crits.items():
                    if (
                        isinstance(entry, list)
                        and rid not in (POS_KEY, KEYPOS_KEY)
                        and cid not in (POS_KEY, KEYPOS_KEY)
                    ):
                        line, col = locate(data, ("coverage", "ignore", rid, cid))
                        diags.add(
                            "T007",
                            f"ignored outcomes of {rid}/{cid} need a reason",
                            Pos(label, line, col),
                            help='write {outcomes: [unknown], reason: "why it cannot happen"}',
                        )
                        bare = True
    spec = None if bare else validate_document(CoverageFile, data, label, diags)
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


def case_bundle(tc: TestCase) -> Union[Path, dict[str, Any]]:
    if tc.bundle_path is not None:
        return tc.bundle_path
    return {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": r} for r in tc.model.resources or ()],
    }
