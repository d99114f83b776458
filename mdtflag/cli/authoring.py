"""Rule authoring commands: ``rules check``, ``rules test``, ``rules diff`` and ``explain``.

The work is done by :mod:`mdtflag.authoring`; this module parses options, picks a reporter and sets the
exit code through :mod:`mdtflag.cli.common` (0 ok · 1 failed tests or coverage below the bar · 2 unreadable
bundle · 3 invalid rules or test files · 64 usage error). A guide for rule authors: docs/authoring.md.
"""

from __future__ import annotations

import datetime as dt
import difflib
import sys
from pathlib import Path
from typing import Any, Optional, Union

import click

from mdtflag.api import default_rules_dir
from mdtflag.cli.common import (
    EXIT_FAILED,
    EXIT_INPUT,
    EXIT_OK,
    EXIT_RULES,
    as_of_date,
    as_of_option,
    check_profile,
    check_profile_names,
    emit,
    format_option,
    json_text,
    leave,
    load_evaluator,
    profile_option,
    rules_option,
)
from mdtflag.errors import InputError, one_line
from mdtflag.fhir.load import LoadedBundle, load_bundle
from mdtflag.ruleset.diagnostics import Diagnostics

__all__ = ["check_cmd", "diff_cmd", "explain_cmd", "rules_group", "test_cmd"]


# ----------------------------------------------------------------------------- rules check


@click.command("check")
@click.argument("paths", nargs=-1, type=click.Path())
@format_option("text", "json")
@click.option("--profile", "profiles", multiple=True, help="Compile for this profile only (repeatable).")
@click.option("--all-profiles", is_flag=True, help="Compile for every profile (the default).")
@click.option("--strict", is_flag=True, help="Warnings fail the check too (exit 3).")
@click.option(
    "--severity",
    "min_severity",
    type=click.Choice(["info", "warning", "error"]),
    default="info",
    show_default=True,
    help="Show diagnostics of this severity or worse.",
)
def check_cmd(
    paths: tuple[str, ...], fmt: str, profiles: tuple[str, ...], all_profiles: bool, strict: bool, min_severity: str
) -> None:
    """Check rule directories (default: ./rules): YAML, schema, compilation for every profile, lint.

    Every problem is a diagnostic with a stable code, file:line:col, the source line and help.
    Exit 0 without errors (warnings allowed), 3 with errors (or warnings under --strict).
    """
    from mdtflag.authoring import check  # imported by the command that needs it

    if profiles and all_profiles:
        raise click.UsageError("--profile and --all-profiles exclude each other")
    reports = [check.check_ruleset(p, profiles or None) for p in (paths or (str(default_rules_dir()),))]
    for r in reports:  # a profile the rule set does not define is a bad argument, not an invalid rule set
        if r.ruleset is not None:
            check_profile_names(profiles, r.ruleset.profiles.profiles)
    if fmt == "json":
        emit(json_text(check.render_json(reports, min_severity)))
    else:
        emit(check.render_text(reports, min_severity))
    errors = sum(r.count("error") for r in reports)
    warnings = sum(r.count("warning") for r in reports)
    leave(EXIT_RULES if errors or (strict and warnings) else EXIT_OK)


# ----------------------------------------------------------------------------- rules test


@click.command("test")
@click.argument("paths", nargs=-1, type=click.Path(exists=True))
@rules_option(
    help="Rule directory for test files outside a rule directory "
    "(default: a rule directory among PATHS, else ./rules).",
    exists=True,
)
@format_option("text", "junit", "json")
@click.option(
    "--junit-xml", "junit_xml", type=click.Path(dir_okay=False), default=None, help="Also write JUnit XML to this file."
)
@click.option(
    "--coverage", is_flag=True, help="Report which criterion outcomes (met / not met / unknown) the cases reach."
)
@click.option(
    "--fail-under",
    "fail_under",
    type=click.FloatRange(0, 100),
    default=None,
    help="Exit 1 when coverage is below this percentage (implies --coverage).",
)
@click.option("-k", "keyword", default=None, help="Run only cases whose name or file contains this text.")
def test_cmd(
    paths: tuple[str, ...],
    rules: Optional[str],
    fmt: str,
    junit_xml: Optional[str],
    coverage: bool,
    fail_under: Optional[float],
    keyword: Optional[str],
) -> None:
    """Run rule test cases: rule directories (their tests/ folder), test files, or folders of *.expected.yaml.

    Exit 0 when every case passes, 1 on failures (or coverage below --fail-under), 3 when the rules or
    a test file are invalid.
    """
    from mdtflag.authoring import reporters, runner  # imported by the command that needs it

    coverage = coverage or fail_under is not None
    run = runner.run_tests(list(paths or (str(default_rules_dir()),)), rules, keyword, coverage)
    if fmt == "json":
        emit(json_text(reporters.render_json(run)))
    elif fmt == "junit":
        emit(reporters.render_junit(run))
    else:
        emit(reporters.render_text(run))
    if junit_xml:
        Path(junit_xml).write_text(reporters.render_junit(run), encoding="utf-8")
    low = [c for c in run.coverage if fail_under is not None and c.percent < fail_under]
    for c in low:
        click.echo(f"coverage of {c.rules_dir} is {c.percent:.1f}%, below --fail-under {fail_under:g}", err=True)
    leave(EXIT_RULES if run.invalid else EXIT_FAILED if (run.failed or low) else EXIT_OK)


# ----------------------------------------------------------------------------- explain


def _explain_source(bundle: str, case_name: Optional[str]) -> tuple[LoadedBundle, Optional[Any], Optional[str]]:
    """(loaded bundle, as_of, profile) from a bundle file, standard input, or a test case file."""
    from mdtflag.authoring import casefile  # imported by the command that needs it

    if bundle.endswith((".yaml", ".yml")):
        diags = Diagnostics()
        found = casefile.load_test_file(Path(bundle), bundle, diags, {})
        for d in diags.items:
            click.echo(d.format(), err=True)
        if diags.errors:
            leave(EXIT_RULES)
        chosen = [c for c in found if case_name is None or c.name == case_name]
        if len(chosen) != 1:
            names = ", ".join(repr(c.name) for c in found)
            raise click.UsageError(
                f"choose one case with --case; {bundle} has {names}"
                if case_name is None
                else f"no case '{case_name}' in {bundle}; it has {names}"
            )
        tc = chosen[0]
        return load_bundle(casefile.case_bundle(tc)), tc.as_of, tc.profile
    if case_name is not None:
        raise click.UsageError("--case needs a test file (.yaml) as BUNDLE")
    src: Union[str, bytes] = sys.stdin.buffer.read() if bundle == "-" else bundle
    return load_bundle(src), None, None


@click.command("explain")
@click.argument("bundle", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--rule", "rule_ids", multiple=True, help="Explain only this rule (repeatable; default: every rule).")
@click.option("--case", "case_name", default=None, help="With a test file as BUNDLE: the case to explain.")
@as_of_option(help="Evaluation date (default: the test case's, else today).")
@rules_option()
@profile_option(help="Threshold profile (default: the test case's, else the rule set's default).")
@format_option("text", "json")
@click.option("--lang", type=click.Choice(["en", "sv"]), default="en", show_default=True)
def explain_cmd(
    bundle: str,
    rule_ids: tuple[str, ...],
    case_name: Optional[str],
    as_of: Optional[str],
    rules: Optional[str],
    profile: Optional[str],
    fmt: str,
    lang: str,
) -> None:
    """Why each rule fired or not for one patient: the criteria tree with ✓ ✗ ?, values, resources, blockers.

    BUNDLE is a FHIR Bundle JSON file, - for standard input, or a rule test file (.yaml; pick a case with --case).
    """
    from mdtflag.authoring import explain  # imported by the command that needs it

    day = as_of_date(as_of) if as_of else None
    ev = load_evaluator(rules)
    check_profile(ev, profile)
    known = [r.id for r in ev.ruleset.rules]
    for rid in rule_ids:
        if rid not in known:
            close = difflib.get_close_matches(rid, known, n=1)
            raise click.UsageError(f"unknown rule '{rid}'" + (f"; did you mean '{close[0]}'?" if close else ""))
    try:
        loaded, case_day, case_profile = _explain_source(bundle, case_name)
    except InputError as e:
        click.echo(f"error: {one_line(str(e))}", err=True)
        leave(EXIT_INPUT)
    profile = profile or case_profile
    check_profile(ev, profile)
    data = explain.explain(ev, loaded, day or case_day or as_of_date(None), profile, rule_ids, lang)
    emit(json_text(data) if fmt == "json" else explain.render_text(data, lang))


# ----------------------------------------------------------------------------- rules diff


@click.command("diff")
@click.argument("old", type=click.Path(file_okay=False, exists=True))
@click.argument("new", type=click.Path(file_okay=False, exists=True))
@click.argument("more", nargs=-1, type=click.Path(exists=True))
@click.option(
    "--cohort",
    "cohort",
    multiple=True,
    type=click.Path(exists=True),
    help="Patients: bundle files, folders, Bulk Data NDJSON or rule test files (.yaml); "
    "repeatable, further paths may follow.",
)
@as_of_option(help="Evaluation date (default: a test case's own, else today).")
@profile_option(help="Threshold profile for both versions (default: a test case's own, else each one's default).")
@format_option("text", "json")
def diff_cmd(
    old: str,
    new: str,
    more: tuple[str, ...],
    cohort: tuple[str, ...],
    as_of: Optional[str],
    profile: Optional[str],
    fmt: str,
) -> None:
    """Compare two rule directories on a cohort: patients whose decisions, rule or row statuses change, and why."""
    from mdtflag.authoring import diff  # imported by the command that needs it

    inputs = list(cohort) + list(more)
    if not inputs:
        raise click.UsageError("give the patients with --cohort INPUT")
    day: Optional[dt.date] = as_of_date(as_of) if as_of else None
    old_ev, new_ev = load_evaluator(old), load_evaluator(new)
    for ev in (old_ev, new_ev):
        check_profile(ev, profile)
    data = diff.diff_cohort(old_ev, new_ev, inputs, day, profile)
    emit(json_text(data) if fmt == "json" else diff.render_text(data))


# ----------------------------------------------------------------------------- registration


#: ``mdtflag rules check|test|diff``
rules_group = click.Group(
    "rules",
    help="Rule authoring: check, test and diff rule directories (see docs/authoring.md).",
    commands=[check_cmd, test_cmd, diff_cmd],
)
