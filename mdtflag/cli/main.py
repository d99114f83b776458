"""The ``mdtflag`` command group: ``evaluate``, ``batch``, ``schema``, ``example`` and the authoring commands.

Shared options, the Evaluator set-up and the exit codes live in :mod:`mdtflag.cli.common`; the rule
authoring commands (``rules check|test|diff``, ``explain``) in :mod:`mdtflag.cli.authoring`.
"""

from __future__ import annotations

import gc
import sys
from collections.abc import Sequence
from typing import NoReturn, Optional, Union, cast

import click
import orjson

from mdtflag._version import __version__
from mdtflag.api import Validate, error_result, example_bundle
from mdtflag.cli.authoring import register as register_authoring
from mdtflag.cli.batch import batch
from mdtflag.cli.common import (
    EXIT_INPUT,
    as_of_date,
    as_of_option,
    check_output_path,
    format_option,
    leave,
    load_evaluator,
    profile_option,
    rules_option,
    run,
    terminology_option,
    validate_option,
    write_output,
)
from mdtflag.cli.facts import register as register_facts
from mdtflag.errors import InputError, one_line
from mdtflag.evaluation.result import result_json_schema
from mdtflag.output.render import to_json, to_text
from mdtflag.ruleset.schema import rule_json_schema

__all__ = ["cli", "entry", "main"]

EXAMPLES = """Examples:

\b
  mdtflag example | mdtflag evaluate - --as-of 2026-11-01 --format text
  mdtflag example > patient.json && mdtflag explain patient.json --rule TRIAL-FOCUSE --as-of 2026-11-01
  mdtflag batch exports/ --workers 4 -o results.ndjson --summary summary.csv
  mdtflag rules check my-rules/ && mdtflag rules test my-rules/ --coverage

Exit codes: 0 ok, 1 internal error (rules test: failing cases), 2 bad input, 3 invalid rule set, 64 usage error.
"""


@click.group(context_settings={"help_option_names": ["-h", "--help"]}, epilog=EXAMPLES)
@click.version_option(__version__, prog_name="mdtflag")
def cli() -> None:
    """Flag MDK level and precision-medicine trial cohorts from FHIR R4, with reasons."""


@cli.command(epilog="Example: mdtflag example | mdtflag evaluate - --as-of 2026-11-01 --format text")
@click.argument("bundle", type=click.Path(dir_okay=False, allow_dash=True))
@as_of_option()
@rules_option()
@terminology_option()
@profile_option()
@validate_option()
@format_option("json", "text")
@click.option(
    "--lang", type=click.Choice(["sv", "en"]), default="sv", show_default=True, help="Language of the text format."
)
@click.option(
    "--detail", is_flag=True, default=False, help="Text format: every rule with its reasons after the summary."
)
@click.option("-o", "--output", default=None, help="Write to a file instead of standard output.")
def evaluate(
    bundle: str,
    as_of: Optional[str],
    rules: Optional[str],
    profile: Optional[str],
    validate: str,
    fmt: str,
    lang: str,
    detail: bool,
    output: Optional[str],
) -> None:
    """Evaluate one patient BUNDLE (a FHIR R4 Bundle JSON file, or - for standard input)."""
    check_output_path(output)
    day = as_of_date(as_of)
    ev = load_evaluator(rules, profile, checked=True)
    src: Union[str, bytes] = sys.stdin.buffer.read() if bundle == "-" else bundle
    try:
        result = ev.evaluate(src, as_of=day, profile=profile, validate=cast(Validate, validate))
    except InputError as e:
        click.echo(f"error: {one_line(str(e))}", err=True)
        if fmt == "json":
            write_output(to_json(error_result(e)), output)
        leave(EXIT_INPUT)
    write_output(to_json(result) if fmt == "json" else to_text(result, lang, detail=detail), output)


@cli.command()
@click.argument("which", type=click.Choice(["result", "rule"]))
def schema(which: str) -> None:
    """Print the JSON Schema of the result format or of a rule file."""
    data = result_json_schema() if which == "result" else rule_json_schema()
    write_output(orjson.dumps(data, option=orjson.OPT_INDENT_2) + b"\n")


@cli.command()
@click.option("--path", "show_path", is_flag=True, help="Print where the file is instead of its content.")
def example(show_path: bool) -> None:
    """Print a synthetic patient bundle shipped with mdtflag (cholangiocarcinoma, BRAF V600E), to try the commands.

    \b
    mdtflag example | mdtflag evaluate - --as-of 2026-11-01 --format text
    """
    path = example_bundle()
    write_output(f"{path}\n" if show_path else path.read_bytes())


register_authoring(cli)
cli.add_command(batch)
register_facts(cli)


def _register_serve() -> None:
    try:
        from mdtflag.service.command import serve
    except ImportError:  # the service extra is not installed: the command says how to install it
        from mdtflag.service.unavailable import serve
    cli.add_command(serve)


_register_serve()


def main(argv: Optional[Sequence[str]] = None) -> NoReturn:
    """Runs the command line and exits (``SystemExit`` with the exit code)."""
    run(cli, argv)


def entry() -> NoReturn:
    """The ``mdtflag`` console script and ``python -m mdtflag``: :func:`main` in a process of its own.

    The objects still alive when the command ends go to the collector's permanent generation, so the
    interpreter's last collection passes at exit do not walk the rule set and the modules once more.
    """
    try:
        main()
    finally:
        gc.freeze()


if __name__ == "__main__":  # pragma: no cover
    main()
