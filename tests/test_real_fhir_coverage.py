"""The measurement harness of the readers on real data: per kind, how many items the real public FHIR
data holds and how many became facts, and which coded elements could not be read. Kept as a golden
file (tests/golden/real_fhir_coverage.txt) so that every improvement and every regression shows in
review. Skipped when ../shared/real-fhir is absent."""

from __future__ import annotations

import pytest

from tests.real_coverage import KINDS, REAL, bundles, census, report

pytestmark = pytest.mark.skipif(not REAL.is_dir(), reason=f"{REAL} not present")


@pytest.fixture(scope="module")
def measured():
    return census(bundles())


def test_present_and_extracted_per_kind_match_the_golden_file(measured, golden):
    golden("real_fhir_coverage.txt", report(*measured))


def test_nothing_is_extracted_that_is_not_present(measured):
    have, got, _ = measured
    for kind in KINDS:
        assert got[kind] <= have[kind] or kind == "markers", (kind, have[kind], got[kind])
    assert have["cancer conditions"] > 0 and have["variants"] > 0
