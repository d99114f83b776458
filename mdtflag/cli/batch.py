"""``mdtflag batch``: screen a cohort (files, folders, one-bundle-per-line NDJSON, Bulk Data exports, stdin)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click

from mdtflag.cli.common import (
    EXIT_INPUT,
    EXIT_INTERNAL,
    EXIT_USAGE,
    as_of_date,
    check_output_path,
    leave,
    load_evaluator,
    profile_option,
    rules_option,
)

#: Exit code of a run interrupted by Ctrl-C or SIGTERM (128 + SIGINT, as shells report it).
EXIT_INTERRUPTED = 130


def _n(x: int) -> str:
    return f"{x:,}"


def accounting_text(counts: dict[str, Any]) -> list[str]:
    """The accounting printed at the end of a run (also in the run manifest as numbers)."""
    first = (
        f"{_n(counts['inputs'])} inputs = {_n(counts['results'])} results + {_n(counts['errors'])} errors"
        f" + {_n(counts['unassigned'])} resources that belong to no patient"
    )
    out = [first]
    if counts.get("error_codes"):
        out.append("errors: " + ", ".join(f"{code} {_n(n)}" for code, n in counts["error_codes"].items()))
    lines = counts["lines"]
    if lines["read"]:
        out.append(
            f"Bulk export lines: {_n(lines['read'])} = {_n(lines['in_results'])} in results"
            f" + {_n(lines['in_errors'])} in errors + {_n(lines['unassigned'])} unassigned"
            f" + {_n(lines['blank'])} blank"
        )
    return out


@click.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path(exists=True, allow_dash=True))
@click.option(
    "--as-of",
    "as_of",
    default=None,
    metavar="YYYY-MM-DD",
    help="Evaluation date (default: today; on --resume: the interrupted run's).",
)
@rules_option()
@profile_option()
@click.option(
    "--validate",
    type=click.Choice(["facts", "all", "none"]),
    default="facts",
    show_default=True,
    help="FHIR R4 validation: resources facts are read from, every resource, or none.",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Worker processes; each reads, validates and evaluates its own inputs (a crash costs one input).",
)
@click.option(
    "-o",
    "--output",
    default=None,
    help="NDJSON results file (default: standard output). Also keeps the run manifest beside it "
    "(OUTPUT.manifest.json) so that the run can be resumed.",
)
@click.option("--summary", default=None, help="Also write a CSV summary (one row per input) to this file.")
@click.option("--manifest", "manifest", default=None, help="Run manifest path (default: OUTPUT.manifest.json).")
@click.option(
    "--resume",
    is_flag=True,
    help="Continue an interrupted run with the same -o (refused if the rule set, as_of, profile or inputs changed).",
)
@click.option("--recursive/--no-recursive", default=True, show_default=True, help="Read folders recursively.")
@click.option(
    "--progress/--no-progress",
    "progress",
    default=None,
    help="Progress on standard error (default: when it is a terminal).",
)
@click.option(
    "--table",
    "table",
    default=None,
    help="Also write the flat results table (one row per patient × flag/cohort): .parquet or .csv.",
)
@click.option("--report", "report", default=None, help="Also write the self-contained HTML cohort report.")
@click.option(
    "--lang",
    type=click.Choice(["sv", "en"]),
    default="sv",
    show_default=True,
    help="Language of the table's words and of the report.",
)
def batch(
    inputs: tuple[str, ...],
    as_of: str | None,
    rules: str | None,
    profile: str | None,
    validate: str,
    workers: int,
    output: str | None,
    summary: str | None,
    manifest: str | None,
    resume: bool,
    recursive: bool,
    progress: bool | None,
    table: str | None,
    report: str | None,
    lang: str,
) -> None:
    """Screen many patients: bundle files, folders (recursively), one-bundle-per-line NDJSON, FHIR Bulk Data
    exports (.ndjson / .ndjson.gz with manifest.json), or - for NDJSON on standard input.

    Writes one JSON line per input (a result or a named error), in input order, and accounts for every input:
    inputs = results + named errors + resources that belong to no patient.
    """
    if output == "-":
        output = None
    if (resume or table or report) and not output:
        raise click.UsageError("--resume, --table and --report need a results file (-o)")
    from mdtflag.cohort.run import Options, ResumeRefused, RuleSetId, RunFailed, run  # this command's own

    check_output_path(output)
    check_output_path(summary, "--summary")
    check_output_path(table, "--table")
    check_output_path(report, "--report")
    day = as_of_date(as_of)
    ev = load_evaluator(rules, profile, checked=True)  # checks the rule set once, before any worker starts
    rs = ev.ruleset
    ident = RuleSetId(root=os.path.abspath(rs.root), name=rs.name, version=rs.version, digest=rs.digest)
    effective_profile = ev.profile
    del ev
    opts = Options(
        inputs=list(inputs),
        ruleset=ident,
        as_of=day,
        profile=effective_profile,
        validate=validate,
        workers=workers,
        output=output,
        summary=summary,
        manifest=manifest,
        resume=resume,
        recursive=recursive,
        progress=sys.stderr.isatty() if progress is None else progress,
        as_of_given=as_of is not None,
    )
    try:
        outcome = run(opts)
    except ResumeRefused as e:
        click.echo(f"error: cannot resume: {e}", err=True)
        leave(EXIT_USAGE)
    except RunFailed as e:
        click.echo(f"error: {e}", err=True)
        leave(EXIT_INTERNAL)
    counts = outcome.manifest["counts"]
    for line in accounting_text(counts):
        click.echo(line, err=True)
    if outcome.interrupted:
        click.echo(
            f"interrupted; the results up to the last checkpoint are kept"
            f"{'; continue with --resume' if output else ''}",
            err=True,
        )
        leave(EXIT_INTERRUPTED)
    if output and table:
        from mdtflag.cohort.table import write_table

        write_table(Path(output), Path(table), lang)
    if output and report:
        from mdtflag.cohort.report import write_report

        write_report(Path(output), Path(outcome.manifest_path) if outcome.manifest_path else None, Path(report), lang)
    if outcome.errors:
        leave(EXIT_INPUT)
