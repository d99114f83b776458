"""Shared test fixtures. Golden files: regenerate all with `MDTFLAG_UPDATE_GOLDEN=1 python -m pytest`."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

import pytest

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
GOLDEN = Path(__file__).resolve().parent / "golden"
REAL_FHIR = ROOT.parent / "shared" / "real-fhir"
UPDATE = os.environ.get("MDTFLAG_UPDATE_GOLDEN") == "1"

# compiled rule sets cached by the commands the tests run (in this process and in the processes it starts)
# go to a folder of this test run, not to the user's cache
if "MDTFLAG_CACHE_DIR" not in os.environ:
    os.environ["MDTFLAG_CACHE_DIR"] = _CACHE = tempfile.mkdtemp(prefix="mdtflag-test-cache-")
    atexit.register(shutil.rmtree, _CACHE, ignore_errors=True)


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
