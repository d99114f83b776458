"""Cohort screening at scale: many patients, worker processes, resumable runs, cohort outputs.

``mdtflag batch`` runs here. The parent process lists the inputs and hands out work (file paths,
byte ranges of NDJSON files, groups of a Bulk Data export); worker processes read, parse, validate,
evaluate and serialise; the parent writes the results in input order and accounts for every input.
"""

from __future__ import annotations
