"""One registry of diagnostic codes: the code emits only registered codes, and the guide lists exactly them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mdtflag.ruleset.diagnostics import CODES, Diagnostics, Pos

ROOT = Path(__file__).resolve().parent.parent
CODE = re.compile(r"""[(=,]\s*["']([YSFCLT]\d{3})["']""")  # a code as an argument, default or tuple item


def _documented() -> dict[str, str]:
    text = (ROOT / "docs" / "authoring.md").read_text(encoding="utf-8")
    section = text.split("## Diagnostics", 1)[1]
    return {
        m.group(1): m.group(2)
        for m in re.finditer(r"^\| ([YSFCLT]\d{3}) \| (error|warning|info) \|", section, re.MULTILINE)
    }


def test_guide_documents_exactly_the_registered_codes_with_their_severity() -> None:
    assert _documented() == {code: c.severity for code, c in CODES.items()}


def test_every_code_in_the_source_is_registered_and_every_registered_code_is_emitted() -> None:
    used: set[str] = set()
    for path in (ROOT / "mdtflag").rglob("*.py"):
        if path.name == "diagnostics.py" and path.parent.name == "ruleset":
            continue
        used |= set(CODE.findall(path.read_text(encoding="utf-8")))
    assert used - set(CODES) == set(), "codes emitted but not registered"
    assert set(CODES) - used == set(), "codes registered but never emitted"


def test_unregistered_code_or_other_severity_is_refused() -> None:
    diags = Diagnostics()
    with pytest.raises(ValueError, match="not registered"):
        diags.add("Z999", "x", Pos("f"))
    with pytest.raises(ValueError, match="registered as warning"):
        diags.add("L001", "x", Pos("f"), severity="error")
    diags.add("L001", "x", Pos("f"))
    assert diags.items[0].severity == "warning"
