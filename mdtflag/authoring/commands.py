"""Rule authoring commands: ``rules check``, ``rules test``, ``rules diff`` and ``explain``.

:func:`register` adds them to the ``mdtflag`` command group (``mdtflag.cli`` calls it at import).
The logic lives in :mod:`mdtflag.authoring.check` (with :mod:`~mdtflag.authoring.lint`), the test
runner :mod:`mdtflag.authoring.runner` (case files, coverage, reporters), :mod:`mdtflag.authoring.explain`
and :mod:`mdtflag.authoring.diff`; this module only parses options,
picks a reporter and sets the exit code (0 ok · 1 failed tests or coverage below the bar ·
2 unreadable bundle · 3 invalid rules or test files · 64 usage error). A guide for rule authors:
docs/authoring.md.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
import orjson

EXIT_FAILED, EXIT_INPUT, EXIT_RULES = 1, 2, 3


def _done(code: int) -> None:
    """Leave with an exit code; SystemExit passes through click and ``mdtflag.cli.main`` unchanged."""
    sys.stdout.flush()
    if code:
        raise SystemExit(code)


def _emit(text: str) -> None:
    sys.stdout.buffer.write(text.encode("utf-8"))
    sys.stdout.flush()


def _json(data: Any) -> str:
    return orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode() + "\n"


def _date(value: str | None) -> Any:
    from mdtflag.api import parse_date

    try:
        return parse_date(value)
    except ValueError as e:
        raise click.UsageError(str(e)) from None


def _evaluator(rules: str | None) -> Any:
    from mdtflag.api import Evaluator
    from mdtflag.ruleset.diagnostics import RuleSetError

    try:
        return Evaluator(rules)
    except RuleSetError as e:
        for d in e.diagnostics:
            click.echo(d.format(), err=True)
        click.echo(f"error: the rule set is invalid ({sum(d.severity == 'error' for d in e.diagnostics)} errors); "
                   "run `mdtflag rules check` for details", err=True)
        raise SystemExit(EXIT_RULES) from None


def _check_profile(ev: Any, profile: str | None) -> None:
    names = ev.ruleset.profiles.profiles
    if profile and profile not in names:
        raise click.UsageError(f"unknown profile '{profile}'; choose from {', '.join(sorted(names))}")


# ----------------------------------------------------------------------------- rules check

@click.command("check")
@click.argument("paths", nargs=-1, type=click.Path())
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--profile", "profiles", multiple=True, help="Compile for this profile only (repeatable).")
@click.option("--all-profiles", is_flag=True, help="Compile for every profile (the default).")
@click.option("--strict", is_flag=True, help="Warnings fail the check too (exit 3).")
@click.option("--severity", "min_severity", type=click.Choice(["info", "warning", "error"]), default="info",
              show_default=True, help="Show diagnostics of this severity or worse.")
def check_cmd(paths: tuple[str, ...], fmt: str, profiles: tuple[str, ...], all_profiles: bool, strict: bool,
              min_severity: str) -> None:
    """Check rule directories (default: ./rules): YAML, schema, compilation for every profile, lint.

    Every problem is a diagnostic with a stable code, file:line:col, the source line and help.
    Exit 0 without errors (warnings allowed), 3 with errors (or warnings under --strict).
    """
    from mdtflag.api import default_rules_dir
    from mdtflag.authoring.check import check_ruleset, render_json, render_text

    if profiles and all_profiles:
        raise click.UsageError("--profile and --all-profiles exclude each other")
    reports = [check_ruleset(p, profiles or None) for p in (paths or (str(default_rules_dir()),))]
    _emit(_json(render_json(reports, min_severity)) if fmt == "json" else render_text(reports, min_severity))
    errors = sum(r.count("error") for r in reports)
    warnings = sum(r.count("warning") for r in reports)
    _done(EXIT_RULES if errors or (strict and warnings) else 0)


# ----------------------------------------------------------------------------- rules test

@click.command("test")
@click.argument("paths", nargs=-1, type=click.Path(exists=True))
@click.option("--rules", "rules", type=click.Path(file_okay=False, exists=True), default=None,
              help="Rule directory for test files outside a rule directory (default: a rule directory among PATHS, else ./rules).")
@click.option("--format", "fmt", type=click.Choice(["text", "junit", "json"]), default="text", show_default=True)
@click.option("--junit-xml", "junit_xml", type=click.Path(dir_okay=False), default=None, help="Also write JUnit XML to this file.")
@click.option("--coverage", is_flag=True, help="Report which criterion outcomes (met / not met / unknown) the cases reach.")
@click.option("--fail-under", "fail_under", type=click.FloatRange(0, 100), default=None,
              help="Exit 1 when coverage is below this percentage (implies --coverage).")
@click.option("-k", "keyword", default=None, help="Run only cases whose name or file contains this text.")
def test_cmd(paths: tuple[str, ...], rules: str | None, fmt: str, junit_xml: str | None, coverage: bool,
             fail_under: float | None, keyword: str | None) -> None:
    """Run rule test cases: rule directories (their tests/ folder), test files, or folders of *.expected.yaml.

    Exit 0 when every case passes, 1 on failures (or coverage below --fail-under), 3 when the rules or
    a test file are invalid.
    """
    from mdtflag.api import default_rules_dir
    from mdtflag.authoring.reporters import render_json, render_junit, render_text
    from mdtflag.authoring.runner import run_tests

    coverage = coverage or fail_under is not None
    run = run_tests(list(paths or (str(default_rules_dir()),)), rules, keyword, coverage)
    if fmt == "json":
        _emit(_json(render_json(run)))
    elif fmt == "junit":
        _emit(render_junit(run))
    else:
        _emit(render_text(run))
    if junit_xml:
        Path(junit_xml).write_text(render_junit(run), encoding="utf-8")
    low = [c for c in run.coverage if fail_under is not None and c.percent < fail_under]
    for c in low:
        click.echo(f"coverage of {c.rules_dir} is {c.percent:.1f}%, below --fail-under {fail_under:g}", err=True)
    _done(EXIT_RULES if run.invalid else EXIT_FAILED if (run.failed or low) else 0)


# ----------------------------------------------------------------------------- explain

def _explain_source(bundle: str, case_name: str | None, ev: Any) -> tuple[Any, Any | None, str | None]:
    """(loaded bundle, as_of, profile) from a bundle file, standard input, or a test case file."""
    from mdtflag.authoring.casefile import case_bundle, load_test_file
    from mdtflag.fhir.load import load_bundle
    from mdtflag.ruleset.diagnostics import Diagnostics

    if bundle.endswith((".yaml", ".yml")):
        diags = Diagnostics()
        cases = load_test_file(Path(bundle), bundle, diags, {})
        for d in diags.items:
            click.echo(d.format(), err=True)
        if diags.errors:
            raise SystemExit(EXIT_RULES)
        chosen = [c for c in cases if case_name is None or c.name == case_name]
        if len(chosen) != 1:
            names = ", ".join(repr(c.name) for c in cases)
            raise click.UsageError(f"choose one case with --case; {bundle} has {names}" if case_name is None
                                   else f"no case '{case_name}' in {bundle}; it has {names}")
        tc = chosen[0]
        return load_bundle(case_bundle(tc)), tc.as_of, tc.profile
    if case_name is not None:
        raise click.UsageError("--case needs a test file (.yaml) as BUNDLE")
    return load_bundle(sys.stdin.buffer.read() if bundle == "-" else bundle), None, None


@click.command("explain")
@click.argument("bundle", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--rule", "rule_ids", multiple=True, help="Explain only this rule (repeatable; default: every rule).")
@click.option("--case", "case_name", default=None, help="With a test file as BUNDLE: the case to explain.")
@click.option("--as-of", "as_of", default=None, metavar="YYYY-MM-DD", help="Evaluation date (default: the test case's, else today).")
@click.option("--rules", "rules", type=click.Path(file_okay=False), default=None, help="Rule directory (default: $MDTFLAG_RULES or ./rules).")
@click.option("--profile", default=None, help="Threshold profile (default: the test case's, else the rule set's default).")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--lang", type=click.Choice(["en", "sv"]), default="en", show_default=True)
def explain_cmd(bundle: str, rule_ids: tuple[str, ...], case_name: str | None, as_of: str | None, rules: str | None,
                profile: str | None, fmt: str, lang: str) -> None:
    """Why each rule fired or not for one patient: the criteria tree with ✓ ✗ ?, values, resources, blockers.

    BUNDLE is a FHIR Bundle JSON file, - for standard input, or a rule test file (.yaml; pick a case with --case).
    """
    import difflib

    from mdtflag.authoring.explain import explain, render_text
    from mdtflag.errors import InputError

    day = _date(as_of) if as_of else None
    ev = _evaluator(rules)
    _check_profile(ev, profile)
    known = [r.id for r in ev.ruleset.rules]
    for rid in rule_ids:
        if rid not in known:
            close = difflib.get_close_matches(rid, known, n=1)
            raise click.UsageError(f"unknown rule '{rid}'" + (f"; did you mean '{close[0]}'?" if close else ""))
    try:
        loaded, case_day, case_profile = _explain_source(bundle, case_name, ev)
    except InputError as e:
        click.echo(f"error: {e}", err=True)
        raise SystemExit(EXIT_INPUT) from None
    profile = profile or case_profile
    _check_profile(ev, profile)
    data = explain(ev, loaded, day or case_day or _date(None), profile, rule_ids, lang)
    _emit(_json(data) if fmt == "json" else render_text(data, lang))


# ----------------------------------------------------------------------------- rules diff

@click.command("diff")
@click.argument("old", type=click.Path(file_okay=False, exists=True))
@click.argument("new", type=click.Path(file_okay=False, exists=True))
@click.argument("more", nargs=-1, type=click.Path(exists=True))
@click.option("--cohort", "cohort", multiple=True, type=click.Path(exists=True),
              help="Patients: bundle files, folders, Bulk Data NDJSON or rule test files (.yaml); repeatable, further paths may follow.")
@click.option("--as-of", "as_of", default=None, metavar="YYYY-MM-DD",
              help="Evaluation date (default: a test case's own, else today).")
@click.option("--profile", default=None, help="Threshold profile for both versions (default: a test case's own, else each one's default).")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
def diff_cmd(old: str, new: str, more: tuple[str, ...], cohort: tuple[str, ...], as_of: str | None,
             profile: str | None, fmt: str) -> None:
    """Compare two rule directories on a cohort: patients whose decisions, rule or row statuses change, and why."""
    from mdtflag.authoring.diff import diff_cohort, render_text

    inputs = list(cohort) + list(more)
    if not inputs:
        raise click.UsageError("give the patients with --cohort INPUT")
    day = _date(as_of) if as_of else None
    old_ev, new_ev = _evaluator(old), _evaluator(new)
    for ev in (old_ev, new_ev):
        _check_profile(ev, profile)
    data = diff_cohort(old_ev, new_ev, inputs, day, profile)
    _emit(_json(data) if fmt == "json" else render_text(data))


# ----------------------------------------------------------------------------- registration

def register(cli: click.Group) -> None:
    """Add ``rules check|test|diff`` and ``explain`` to the ``mdtflag`` command group."""
    rules = click.Group("rules", help="Rule authoring: check, test and diff rule directories (see docs/authoring.md).")
    for cmd in (check_cmd, test_cmd, diff_cmd):
        rules.add_command(cmd)
    cli.add_command(rules)
    cli.add_command(explain_cmd)
