"""Stand-in for ``mdtflag serve`` when the ``service`` extra is not installed: says how to install it."""
from __future__ import annotations

import sys

import click

__all__ = ["serve"]


@click.command("serve", context_settings={"ignore_unknown_options": True, "allow_extra_args": True,
                                          "help_option_names": []})
@click.pass_context
def serve(ctx: click.Context) -> None:
    """Run the HTTP service (needs: pip install 'mdtflag[service]')."""
    click.echo("error: mdtflag serve needs the service extra; install it with:\n"
               "    pip install 'mdtflag[service]'", err=True)
    sys.exit(64)
