"""``mdtflag facts BUNDLE``: the facts a bundle yields and the elements that could not be used."""

from __future__ import annotations

import sys
from typing import Optional, Union, cast

import click

from mdtflag.api import Validate
from mdtflag.cli.common import (
    EXIT_INPUT,
    as_of_date,
    as_of_option,
    format_option,
    json_text,
    leave,
    load_evaluator,
    rules_option,
    terminology_option,
    validate_option,
    write_output,
)
from mdtflag.errors import InputError
from mdtflag.fhir.load import load_bundle

__all__ = ["facts_cmd"]


@click.command("facts", epilog="Example: mdtflag example | mdtflag facts - --as-of 2026-11-01")
@click.argument("bundle", type=click.Path(dir_okay=False, allow_dash=True))
@as_of_option()
@rules_option()
@terminology_option()
@validate_option()
@format_option("text", "json")
@click.option("-o", "--output", default=None, help="Write to a file instead of standard output.")
def facts_cmd(
    bundle: str, as_of: Optional[str], rules: Optional[str], validate: str, fmt: str, output: Optional[str]
) -> None:
    """List the facts extracted from one patient BUNDLE and the coded elements that could not be used
    (unknown code system, unmapped code, unreadable unit): what the data yields for the rules."""
    from mdtflag.authoring.facts_report import facts_document, facts_text  # this command's own

    day = as_of_date(as_of)
    ev = load_evaluator(rules)
    src: Union[str, bytes] = sys.stdin.buffer.read() if bundle == "-" else bundle
    try:
        loaded = load_bundle(src, validate=cast(Validate, validate))
    except InputError as e:
        click.echo(f"error: {e}", err=True)
        leave(EXIT_INPUT)
    doc = facts_document(ev.facts(loaded, day), day.isoformat(), ev.ruleset.terminology)
    write_output(json_text(doc) if fmt == "json" else facts_text(doc), output)
