"""The ``mdtflag`` command group: ``evaluate``, ``batch``, ``schema``, ``example`` and the authoring commands.

Shared options, the Evaluator set-up and the exit codes live in :mod:`mdtflag.cli.common`; the rule
authoring commands (``rules check|test|diff``, ``explain``) in :mod:`mdtflag.cli.authoring`.
"""

from __future__ import annotations

import gc
import importlib
import sys
from collections.abc import Sequence
from typing import NoReturn, Optional, Union, cast

import click
import orjson

from mdtflag._version import __version__
from mdtflag.api import Validate, error_result, example_bundle
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


#: commands whose modules are imported when the command is run or listed, not at every start
_LAZY = {
    "batch": "mdtflag.cli.batch:batch",
    "explain": "mdtflag.cli.authoring:explain_cmd",
    "facts": "mdtflag.cli.facts:facts_cmd",
    "rules": "mdtflag.cli.authoring:rules_group",
    "serve": "mdtflag.service.command:serve",
}


class _Commands(click.Group):
    """The command group, with the commands of :data:`_LAZY` loaded on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *_LAZY})

    def get_command(self, ctx: click.Context, cmd_name: str) -> Optional[click.Command]:
        cmd = super().get_command(ctx, cmd_name)
        if cmd is None and cmd_name in _LAZY:
            cmd = _load(_LAZY[cmd_name])
            self.add_command(cmd, cmd_name)
        return cmd


def _load(target: str) -> click.Command:
    module, name = target.split(":")
    try:
        cmd = getattr(importlib.import_module(module), name)
    except ImportError:
        if module != "mdtflag.service.command":
            raise
        # the service extra is not installed: the command says how to install it
        from mdtflag.service.unavailable import serve as cmd
    assert isinstance(cmd, click.Command)
    return cmd


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]}, epilog=EXAMPLES)
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
