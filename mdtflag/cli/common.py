"""What every ``mdtflag`` command shares: options, the Evaluator set-up, exit codes and the one way out.

Exit codes (part of the command line's contract):

==  =====================================================================================
0   ok
1   internal error; for ``rules test``: failing cases or coverage below ``--fail-under``
2   bad input: a bundle that cannot be read (``batch``: at least one input ended as an error)
3   the rule set (or a rule test file) is invalid
64  usage error: a bad option or argument, an unknown profile or rule
==  =====================================================================================

A command leaves with a code other than 0 by calling :func:`leave`; :func:`run` turns that, click's
own errors and mdtflag's errors (:class:`~mdtflag.errors.UsageError`, :class:`~mdtflag.errors.InputError`,
:class:`~mdtflag.ruleset.diagnostics.RuleSetError`) into the process exit code, in one place.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any, Callable, NoReturn, Optional, TypeVar, Union

import click
import orjson

from mdtflag.api import Evaluator, UnknownProfileError, cached_evaluator, default_rules_dir, parse_date
from mdtflag.errors import InputError, UsageError, one_line
from mdtflag.ruleset.diagnostics import RuleSetError, prefixed
from mdtflag.ruleset.terminology import TERMINOLOGY_ENV

__all__ = [
    "EXIT_FAILED",
    "EXIT_INPUT",
    "EXIT_INTERNAL",
    "EXIT_OK",
    "EXIT_RULES",
    "EXIT_USAGE",
    "Leave",
    "as_of_date",
    "as_of_option",
    "check_output_path",
    "check_profile",
    "check_profile_names",
    "emit",
    "format_option",
    "json_text",
    "leave",
    "load_evaluator",
    "profile_option",
    "report_ruleset_error",
    "rules_option",
    "run",
    "terminology_option",
    "validate_option",
    "workers_option",
    "write_output",
]

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_FAILED = 1  # rules test: failing cases or coverage below the bar
EXIT_INPUT = 2
EXIT_RULES = 3
EXIT_USAGE = 64

F = TypeVar("F", bound=Callable[..., Any])


class Leave(Exception):
    """Raised by :func:`leave`; :func:`run` ends the process with ``code``."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def leave(code: int) -> NoReturn:
    """End the command with an exit code (0 included): the only way a command sets one."""
    raise Leave(code)


# ----------------------------------------------------------------------------- output


def write_output(data: Union[bytes, str], output: Optional[str] = None) -> None:
    """Write to the file ``output``, or to standard output when it is None or ``-``."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    if output and output != "-":
        Path(output).write_bytes(raw)
    else:
        sys.stdout.buffer.write(raw)
        sys.stdout.flush()


def check_output_path(path: Optional[str], option: str = "-o/--output") -> None:
    """A usage error, before any work starts, when ``path`` cannot be written as a file.

    ``None`` and ``-`` (standard output) are always fine. A path that is a directory, whose folder does not
    exist or is not a folder, or whose folder cannot be written is refused with the option's name, so a
    long run never ends with its output lost.
    """
    if path is None or path == "-":
        return
    target = Path(path)
    if target.is_dir():
        raise click.BadParameter(f"'{path}' is a directory; give a file name", param_hint=option)
    folder = target.parent
    if not folder.exists():
        raise click.BadParameter(f"the folder '{folder}' does not exist", param_hint=option)
    if not folder.is_dir():
        raise click.BadParameter(f"'{folder}' is not a folder", param_hint=option)
    if target.exists() and not os.access(target, os.W_OK):
        raise click.BadParameter(f"'{path}' cannot be written", param_hint=option)
    if not target.exists() and not os.access(folder, os.W_OK | os.X_OK):
        raise click.BadParameter(f"the folder '{folder}' cannot be written", param_hint=option)


def emit(text: str) -> None:
    """Text to standard output, UTF-8 whatever the locale."""
    write_output(text)


def json_text(data: Any) -> str:
    """Indented JSON with a final newline, as every ``--format json`` prints it."""
    return orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode() + "\n"


# ----------------------------------------------------------------------------- set-up


def as_of_date(value: Optional[str]) -> dt.date:
    """``--as-of`` as a date (today when absent); a bad date is a usage error."""
    try:
        return parse_date(value)
    except UsageError as e:
        raise click.UsageError(str(e)) from None


def report_ruleset_error(e: RuleSetError) -> None:
    """Every diagnostic of an invalid rule set on standard error, then a one-line summary."""
    for d in e.diagnostics:
        click.echo(d.format(), err=True)
    errors = sum(d.severity == "error" for d in e.diagnostics)
    click.echo(f"error: the rule set is invalid ({errors} errors); run `mdtflag rules check` for details", err=True)


def load_evaluator(rules: Optional[str], profile: Optional[str] = None, *, checked: bool = False) -> Evaluator:
    """The rule set loaded and compiled for ``profile``; exit 3 when it is invalid, 64 for an unknown profile.

    ``checked`` (``evaluate``, ``batch``): the rule set must also pass ``rules check`` — compiled for every
    profile, and no lint error such as a criterion id used twice — or the command exits 3 with those
    errors before any patient is read. (The rule directory's own test files are not part of this.)
    """

    def build() -> Evaluator:
        if not checked:
            return Evaluator(rules, profile)
        from mdtflag.authoring.check import check_ruleset

        report = check_ruleset(rules or default_rules_dir(), with_tests=False)
        errors = [prefixed(d, report.root) for d in report.diagnostics if d.severity == "error"]
        if errors or report.ruleset is None:
            report_ruleset_error(RuleSetError(errors))
            leave(EXIT_RULES)
        return Evaluator(report.ruleset, profile, compiled=report.compiled)

    try:
        return cached_evaluator(rules, profile, mode="checked" if checked else "loaded", build=build)
    except UnknownProfileError as e:
        raise click.UsageError(_unknown_profile(e.profile, e.choices)) from None
    except RuleSetError as e:
        report_ruleset_error(e)
        leave(EXIT_RULES)


def check_profile(ev: Evaluator, profile: Optional[str]) -> None:
    """A usage error when ``profile`` is given and the evaluator's rule set does not define it."""
    names = ev.ruleset.profiles.profiles
    if profile and profile not in names:
        raise click.UsageError(_unknown_profile(profile, sorted(names)))


def check_profile_names(requested: Sequence[str], known: Collection[str]) -> None:
    """A usage error for the first of ``requested`` that is not one of the ``known`` profile names."""
    for name in requested:
        if name not in known:
            raise click.UsageError(_unknown_profile(name, sorted(known)))


def _unknown_profile(profile: str, choices: Sequence[str]) -> str:
    return f"unknown profile '{profile}'; choose from {', '.join(choices)}"


# ----------------------------------------------------------------------------- shared options


def rules_option(
    help: str = "Rule directory (default: $MDTFLAG_RULES, ./rules, else the rule set shipped with mdtflag).",
    exists: bool = False,
) -> Callable[[F], F]:
    return click.option("--rules", "rules", type=click.Path(file_okay=False, exists=exists), default=None, help=help)


def terminology_option() -> Callable[[F], F]:
    """``--terminology DIR`` (repeatable; default ``$MDTFLAG_TERMINOLOGY``): a site's own FHIR ConceptMap /
    ValueSet / CodeSystem folders layered on the rule set's terminology. Given folders are put in the
    environment, so that every Evaluator of the run (batch workers included) reads them."""

    def remember(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> tuple[str, ...]:
        if value:
            os.environ[TERMINOLOGY_ENV] = os.pathsep.join(value)
        return value

    return click.option(
        "--terminology",
        "terminology",
        multiple=True,
        metavar="DIR",
        expose_value=False,
        type=click.Path(file_okay=False),
        callback=remember,
        is_eager=True,
        help="A site's terminology folder (FHIR ConceptMap/ValueSet/CodeSystem JSON) added to the "
        f"rule set's own; repeatable (default: ${TERMINOLOGY_ENV}).",
    )


def as_of_option(
    help: str = "Evaluation date; ages and data windows are computed against it (default: today).",
) -> Callable[[F], F]:
    return click.option("--as-of", "as_of", default=None, metavar="YYYY-MM-DD", help=help)


def profile_option(help: str = "Threshold profile (default: the rule set's default).") -> Callable[[F], F]:
    return click.option("--profile", default=None, help=help)


def validate_option() -> Callable[[F], F]:
    return click.option(
        "--validate",
        type=click.Choice(["facts", "all", "none"]),
        default="facts",
        show_default=True,
        help="FHIR R4 validation: resources facts are read from, every resource, or none.",
    )


def workers_option() -> Callable[[F], F]:
    """``--workers N``: worker processes, at least 1 (0 or a negative number is a usage error)."""
    return click.option(
        "--workers",
        type=click.IntRange(min=1),
        default=1,
        show_default=True,
        help="Worker processes, at least 1 (a crash costs one patient, not the run).",
    )


def format_option(*choices: str) -> Callable[[F], F]:
    """``--format`` with these choices; the first is the default."""
    return click.option("--format", "fmt", type=click.Choice(list(choices)), default=choices[0], show_default=True)


# ----------------------------------------------------------------------------- the one way out


def run(group: click.Group, argv: Optional[Sequence[str]] = None) -> NoReturn:
    """Run the command line and end the process with its exit code."""
    code = EXIT_OK
    try:
        group.main(args=list(argv) if argv is not None else None, prog_name="mdtflag", standalone_mode=False)
    except Leave as e:
        code = e.code
    except click.exceptions.Exit as e:  # --help, --version
        code = e.exit_code
    except click.Abort:
        click.echo("aborted", err=True)
        code = EXIT_INTERNAL
    except click.ClickException as e:  # bad options and arguments
        e.show()
        code = EXIT_USAGE
    except UsageError as e:  # also UnknownProfileError, which is a RuleSetError too
        click.echo(f"Error: {e}", err=True)
        code = EXIT_USAGE
    except InputError as e:
        click.echo(f"error: {one_line(str(e))}", err=True)
        code = EXIT_INPUT
    except RuleSetError as e:
        report_ruleset_error(e)
        code = EXIT_RULES
    except BrokenPipeError:  # the reader went away (`mdtflag ... | head`): not an error
        code = EXIT_OK
    sys.exit(code)
