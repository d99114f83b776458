"""``mdtflag rules check``: every problem of a rule directory as diagnostics.

Three passes, each returning :class:`~mdtflag.ruleset.diagnostics.Diagnostic` data:

1. :func:`~mdtflag.ruleset.model.read_ruleset` (YAML and schema, fragments: ``Y``, ``S``, ``F`` codes);
2. :func:`~mdtflag.compile.compiler.compile_ruleset` for every threshold profile (``C`` codes);
3. the lint pass over the rule model and the compiled plans (``L`` codes, :mod:`mdtflag.authoring.lint`),
   plus the rule directory's own test files (``T`` codes, :mod:`mdtflag.authoring.casefile`).

Every code, its severity and meaning: :data:`mdtflag.ruleset.diagnostics.CODES`.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mdtflag.ruleset.model as rm
from mdtflag.authoring.casefile import check_rule_tests
from mdtflag.authoring.lint import (
    lint_absent_fills,
    lint_fragments,
    lint_placeholders,
    lint_sources,
    lint_tags,
    lint_texts_and_ids,
    lint_usage,
)
from mdtflag.authoring.lint_plans import lint_plans
from mdtflag.authoring.words import count as _n
from mdtflag.compile.compiler import compile_ruleset
from mdtflag.compile.plan import CompiledRuleSet
from mdtflag.ruleset.diagnostics import Diagnostic, Diagnostics, prefixed

SEVERITY_ORDER = {"error": 0, "warning": 1, "info": 2}


@dataclass
class CheckReport:
    """What ``rules check`` found for one rule directory."""

    root: str
    diagnostics: list[Diagnostic]
    ruleset: rm.RuleSet | None = None
    compiled: dict[str, CompiledRuleSet] = field(default_factory=dict)
    profiles: tuple[str, ...] = ()

    def count(self, severity: str) -> int:
        return sum(1 for d in self.diagnostics if d.severity == severity)


def lint_ruleset(rs: rm.RuleSet, compiled: Mapping[str, CompiledRuleSet]) -> Diagnostics:
    diags = Diagnostics()
    for rule in rs.rules:
        lint_texts_and_ids(rule, diags)
        lint_placeholders(rule, rs, diags)
        lint_absent_fills(rule, diags)
    lint_sources(rs, diags)
    lint_usage(rs, diags)
    lint_tags(rs, diags)
    lint_fragments(rs, diags)
    lint_plans(rs, compiled, diags)
    return diags


def check_ruleset(path: str | Path, profiles: Sequence[str] | None = None, *, with_tests: bool = True) -> CheckReport:
    """Read, compile for every profile (or those named) and lint one rule directory.

    Unknown profile names are reported as C005 errors. Diagnostics are sorted, with snippets.
    """
    root = str(path)
    rs, read_diags = rm.read_ruleset(path)
    if rs is None:
        return CheckReport(root, list(read_diags))
    diags = Diagnostics(list(read_diags))
    names = tuple(profiles) if profiles else tuple(sorted(rs.profiles.profiles))
    compiled: dict[str, CompiledRuleSet] = {}
    for name in names:
        crs, cdiags = compile_ruleset(rs, name)
        diags.items.extend(cdiags)
        if crs is not None:
            compiled[name] = crs
    diags.items.extend(lint_ruleset(rs, compiled).items)
    sources = dict(rs.sources)
    if with_tests:
        tdiags, tsources = check_rule_tests(rs)
        diags.items.extend(tdiags)
        sources.update(tsources)
    # sorted() also drops duplicates: compile diagnostics that every profile repeats are shown once
    return CheckReport(root, diags.sorted(sources), rs, compiled, names)


def summary(reports: Sequence[CheckReport]) -> dict[str, Any]:
    return {
        "errors": sum(r.count("error") for r in reports),
        "warnings": sum(r.count("warning") for r in reports),
        "infos": sum(r.count("info") for r in reports),
        "rule_sets": [
            {"path": r.root, "valid": r.ruleset is not None and r.count("error") == 0,
             "rules": len(r.ruleset.rules) if r.ruleset else 0, "profiles": list(r.profiles),
             "profiles_with_errors": [p for p in r.profiles if p not in r.compiled]}
            for r in reports
        ],
    }


def visible(reports: Sequence[CheckReport], min_severity: str) -> list[Diagnostic]:
    limit = SEVERITY_ORDER[min_severity]
    return [prefixed(d, r.root) for r in reports for d in r.diagnostics if SEVERITY_ORDER[d.severity] <= limit]


def render_text(reports: Sequence[CheckReport], min_severity: str = "info") -> str:
    out = [d.format() for d in visible(reports, min_severity)]
    s = summary(reports)
    for r in reports:
        failed = [p for p in r.profiles if p not in r.compiled]
        profiles = ", ".join(r.profiles) + (f" ({', '.join(failed)} with errors)" if failed else "")
        rules = len(r.ruleset.rules) if r.ruleset else 0
        out.append(f"{r.root}: {_n(rules, 'rule')}, profiles {profiles or '-'}")
    out.append(f"{_n(s['errors'], 'error')}, {_n(s['warnings'], 'warning')}, {_n(s['infos'], 'note')}")
    return "\n".join(out) + "\n"


def render_json(reports: Sequence[CheckReport], min_severity: str = "info") -> dict[str, Any]:
    return {"diagnostics": [d.to_dict() for d in visible(reports, min_severity)], "summary": summary(reports)}
