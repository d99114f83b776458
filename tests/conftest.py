"""Shared test fixtures. Golden files: regenerate all with `MDTFLAG_UPDATE_GOLDEN=1 python -m pytest`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import pytest

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
GOLDEN = Path(__file__).resolve().parent / "golden"
REAL_FHIR = ROOT.parent / "shared" / "real-fhir"
UPDATE = os.environ.get("MDTFLAG_UPDATE_GOLDEN") == "1"


@pytest.fixture
def golden() -> Callable[[str, str], None]:
    def check(name: str, text: str) -> None:
        path = GOLDEN / name
        if UPDATE or not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            if not UPDATE:
                pytest.fail(f"golden file {name} was missing and has been written; check it and run again")
            return
        expected = path.read_text(encoding="utf-8")
        assert text == expected, (
            f"output differs from golden file tests/golden/{name} (MDTFLAG_UPDATE_GOLDEN=1 to accept)"
        )

    return check
