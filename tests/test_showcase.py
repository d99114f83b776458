"""Golden text and JSON outputs for showcase patients of the shipped rule set.

Regenerate after an intended change with `MDTFLAG_UPDATE_GOLDEN=1 python -m pytest tests/test_showcase.py`
and review the diff as a clinician would.
"""

from __future__ import annotations

import pytest
from conftest import ROOT

from mdtflag.api import Evaluator
from mdtflag.output.render import to_json, to_text

SHOWCASE = [
    "01-cholangio-braf-v600e-focuse-eligible",  # national: off-label candidate and trial cohort
    "11-prostate-mcrpc-germline-brca2-halland-kungsbacka",  # germline BRCA2, Halland → Västra
    "15-child-neuroblastoma-no-wgs",  # paediatric route, offer WGS
    "24-colon-kras-g12c-ecog-missing",  # indeterminate trial: ECOG missing
    "14-deceased-cholangio-braf",  # no routing for a deceased patient
]


@pytest.fixture(scope="module")
def ev() -> Evaluator:
    return Evaluator(ROOT / "rules")


@pytest.mark.parametrize("name", SHOWCASE)
def test_showcase_outputs(ev: Evaluator, name: str, golden) -> None:
    result = ev.evaluate(ROOT / "fhir_examples" / f"{name}.json", as_of="2026-11-01")
    # what a clinician reads first (the summary), and everything (--detail)
    golden(f"showcase/{name}.summary.sv.txt", to_text(result, "sv"))
    golden(f"showcase/{name}.summary.en.txt", to_text(result, "en"))
    golden(f"showcase/{name}.en.txt", to_text(result, "en", detail=True))
    golden(f"showcase/{name}.sv.txt", to_text(result, "sv", detail=True))
    golden(f"showcase/{name}.json", to_json(result).decode())
