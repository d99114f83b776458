"""Plausible ranges of laboratory values and scores, read from the data file shipped with the package
(``mdtflag/data/plausible-ranges.json``, each row with its source). A value outside its range is a data
error: the readers make it unknown with an ``implausible-value`` note."""

from __future__ import annotations

import json
from decimal import Decimal
from functools import lru_cache
from importlib import resources
from typing import Any

__all__ = ["lab_range", "score_range"]


@lru_cache(maxsize=1)
def _table() -> tuple[dict[tuple[str, str], tuple[Decimal, Decimal]], dict[str, tuple[Decimal, Decimal]]]:
    text = (resources.files("mdtflag") / "data" / "plausible-ranges.json").read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(text)
    labs = {(r["analyte"], r["unit"]): (Decimal(str(r["min"])), Decimal(str(r["max"]))) for r in data["lab"]}
    scores = {r["score"]: (Decimal(str(r["min"])), Decimal(str(r["max"]))) for r in data["score"]}
    return labs, scores


def lab_range(analyte: str, unit: str) -> tuple[Decimal, Decimal] | None:
    """(lowest, highest) plausible value of ``analyte`` in its canonical ``unit``; None if not listed."""
    return _table()[0].get((analyte, unit))


def score_range(score: str) -> tuple[Decimal, Decimal] | None:
    """(lowest, highest) value of a score (``ecog``, ``karnofsky``); None if not listed."""
    return _table()[1].get(score)
