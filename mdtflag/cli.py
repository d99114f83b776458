"""Command line: ``mdtflag evaluate``, ``mdtflag batch``, ``mdtflag schema`` (and ``rules``/``explain`` from authoring).

Exit codes: 0 ok · 1 internal error · 2 bad input (unreadable bundle; for ``batch``: at least one input
was an error) · 3 invalid rule set · 64 usage error.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Optional

import click

from . import __version__

EXIT_OK, EXIT_INTERNAL, EXIT_INPUT, EXIT_RULES, EXIT_USAGE = 0, 1, 2, 3, 64


class ExitCode(Exception):
    def __init__(self, code: int):
        self.code = code


def _out(data: bytes | str, output: Optional[str]) -> None:
    if isinstance(data, str):
        data = data.encode("utf-8")
    if output and output != "-":
        Path(output).write_bytes(data)
    else:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()


def _evaluator(rules: Optional[str], profile: Optional[str]) -> Any:
    from .api import Evaluator
    from .diagnostics import RuleSetError

    try:
        return Evaluator(rules, profile)
    except RuleSetError as e:
        for d in e.diagnostics:
            click.echo(d.format(), err=True)
        click.echo(f"error: the rule set is invalid ({len([d for d in e.diagnostics if d.severity == 'error'])} errors)", err=True)
        raise ExitCode(EXIT_RULES) from None


rules_opt = click.option("--rules", "rules", type=click.Path(file_okay=False), default=None,
                         help="Rule directory (default: $MDTFLAG_RULES or ./rules).")
asof_opt = click.option("--as-of", "as_of", default=None, metavar="YYYY-MM-DD",
                        help="Evaluation date; ages and data windows are computed against it (default: today).")
profile_opt = click.option("--profile", default=None, help="Threshold profile (default: the rule set's default).")
validate_opt = click.option("--validate", type=click.Choice(["facts", "all", "none"]), default="facts", show_default=True,
                            help="FHIR R4 validation: resources facts are read from, every resource, or none.")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mdtflag")
def cli() -> None:
    """Flag MDK level and precision-medicine trial cohorts from FHIR R4, with reasons."""


@cli.command()
@click.argument("bundle", type=click.Path(dir_okay=False, allow_dash=True))
@asof_opt
@rules_opt
@profile_opt
@validate_opt
@click.option("--format", "fmt", type=click.Choice(["json", "text"]), default="json", show_default=True)
@click.option("--lang", type=click.Choice(["en", "sv"]), default="en", show_default=True, help="Language of the text format.")
@click.option("-o", "--output", default=None, help="Write to a file instead of standard output.")
def evaluate(bundle: str, as_of: Optional[str], rules: Optional[str], profile: Optional[str], validate: str,
             fmt: str, lang: str, output: Optional[str]) -> None:
    """Evaluate one patient BUNDLE (a FHIR R4 Bundle JSON file, or - for standard input)."""
    from .api import error_result, parse_date
    from .errors import InputError
    from .render import to_json, to_text

    try:
        day = parse_date(as_of)
    except ValueError as e:
        raise click.UsageError(str(e)) from None
    ev = _evaluator(rules, profile)
    if profile and profile not in ev.ruleset.profiles.profiles:
        raise click.UsageError(f"unknown profile '{profile}'; choose from {', '.join(sorted(ev.ruleset.profiles.profiles))}")
    src: Any = sys.stdin.buffer.read() if bundle == "-" else bundle
    try:
        result = ev.evaluate(src, as_of=day, profile=profile, validate=validate)  # type: ignore[arg-type]
    except InputError as e:
        click.echo(f"error: {e}", err=True)
        if fmt == "json":
            _out(to_json(error_result(e)), output)
        raise ExitCode(EXIT_INPUT) from None
    _out(to_json(result) if fmt == "json" else to_text(result, lang), output)


@cli.command()
@click.argument("which", type=click.Choice(["result", "rule"]))
def schema(which: str) -> None:
    """Print the JSON Schema of the result format or of a rule file."""
    import orjson

    if which == "result":
        from .result import result_json_schema

        data = result_json_schema()
    else:
        from .rulemodel import rule_json_schema

        data = rule_json_schema()
    _out(orjson.dumps(data, option=orjson.OPT_INDENT_2) + b"\n", None)


def _register_optional() -> None:
    from .cohort.command import register as register_batch

    register_batch(cli)
    try:
        from . import authoring
    except ImportError:  # pragma: no cover
        return
    authoring.register(cli)


_register_optional()


def main(argv: Optional[list[str]] = None) -> None:
    try:
        cli.main(args=argv, prog_name="mdtflag", standalone_mode=False)
    except ExitCode as e:
        sys.exit(e.code)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except click.Abort:
        click.echo("aborted", err=True)
        sys.exit(EXIT_INTERNAL)
    except click.UsageError as e:
        e.show()
        sys.exit(EXIT_USAGE)
    except click.ClickException as e:
        e.show()
        sys.exit(EXIT_USAGE)
    except BrokenPipeError:
        sys.exit(EXIT_OK)
    sys.exit(EXIT_OK)


if __name__ == "__main__":  # pragma: no cover
    main()
