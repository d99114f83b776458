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
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Callable, NoReturn, Optional, TypeVar, Union

import click
import orjson

from mdtflag.api import Evaluator, UnknownProfileError, parse_date
from mdtflag.errors import InputError, UsageError
from mdtflag.ruleset.diagnostics import RuleSetError

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
    "check_profile",
    "emit",
    "format_option",
    "json_text",
    "leave",
    "load_evaluator",
    "profile_option",
    "report_ruleset_error",
    "rules_option",
    "run",
    "validate_option",
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


def load_evaluator(rules: Optional[str], profile: Optional[str] = None) -> Evaluator:
    """The rule set loaded and compiled for ``profile``; exit 3 when it is invalid, 64 for an unknown profile."""
    try:
        return Evaluator(rules, profile)
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


def _unknown_profile(profile: str, choices: Sequence[str]) -> str:
    return f"unknown profile '{profile}'; choose from {', '.join(choices)}"


# ----------------------------------------------------------------------------- shared options


def rules_option(
    help: str = "Rule directory (default: $MDTFLAG_RULES, ./rules, else the rule set shipped with mdtflag).",
    exists: bool = False,
) -> Callable[[F], F]:
    return click.option("--rules", "rules", type=click.Path(file_okay=False, exists=exists), default=None, help=help)


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
        click.echo(f"error: {e}", err=True)
        code = EXIT_INPUT
    except RuleSetError as e:
        report_ruleset_error(e)
        code = EXIT_RULES
    except BrokenPipeError:  # the reader went away (`mdtflag ... | head`): not an error
        code = EXIT_OK
    sys.exit(code)
