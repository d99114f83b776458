"""The ``mdtflag`` command line: evaluation, batch, schemas, an example patient and the rule-authoring commands."""

from __future__ import annotations

from mdtflag.cli.main import cli, main

__all__ = ["cli", "main"]
