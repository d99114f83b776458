"""In-process checks of the service's building blocks: prefetch → Bundle, cards, FHIR outputs."""
from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from fhir.resources.R4B import get_fhir_model_class
from hypothesis import given, settings
from hypothesis import strategies as st
from service_support import AS_OF, example_paths, hook_request

from mdtflag.api import Evaluator
from mdtflag.output.render import to_json
from mdtflag.service.cards import SUMMARY_MAX, _summary, build_cards, pick_language
from mdtflag.service.fhirout import data_required, guidance_response, match_bundle
from mdtflag.service.prefetch import (
    PREFETCH_TEMPLATES,
    PrefetchProblem,
    collect_prefetch,
    patient_bundle,
)

EXAMPLES = example_paths()
KEYS = sorted(PREFETCH_TEMPLATES)


@pytest.fixture(scope="module")
def evaluator() -> Evaluator:
    return Evaluator()


@pytest.fixture(scope="module")
def results(evaluator: Evaluator) -> dict[str, Any]:
    return {p.name: evaluator.evaluate(p, as_of=AS_OF) for p in EXAMPLES}


def valid(resource: dict[str, Any]) -> None:
    get_fhir_model_class(resource["resourceType"]).model_validate(resource)


def test_prefetch_bundle_gives_the_same_result_as_the_file(evaluator: Evaluator, results: dict[str, Any]) -> None:
    for path in EXAMPLES:
        req = hook_request(json.loads(path.read_text()))
        collected = collect_prefetch(req["prefetch"])
        assert collected.missing == []
        bundle = patient_bundle(collected.resources, collected.full_urls)
        assert to_json(evaluator.evaluate(bundle, as_of=AS_OF)) == to_json(results[path.name]), path.name


@settings(max_examples=60, deadline=None)
@given(omit=st.sets(st.sampled_from(KEYS)), failed=st.sets(st.sampled_from(KEYS)), paged=st.sets(st.sampled_from(KEYS)))
def test_missing_keys_are_exactly_those_not_usable(omit: set[str], failed: set[str], paged: set[str]) -> None:
    req = hook_request(json.loads(EXAMPLES[0].read_text()))
    prefetch = req["prefetch"]
    outcome = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "exception"}]}
    for key in failed:
        if key == "patient":
            prefetch[key] = outcome
        else:
            prefetch[key]["entry"].append({"resource": outcome, "search": {"mode": "outcome"}})
    for key in paged - {"patient"}:
        prefetch[key]["link"] = [{"relation": "next", "url": f"https://ehr.example/{key}?page=2"}]
    for key in omit:
        del prefetch[key]
    collected = collect_prefetch(prefetch)
    expected = omit | failed | (paged - {"patient"})
    assert sorted(collected.missing) == sorted(expected)
    types = {r["resourceType"] for r in collected.resources}
    assert "OperationOutcome" not in types
    bundle = patient_bundle(collected.resources, collected.full_urls)
    ids = [(e["resource"]["resourceType"], e["resource"].get("id")) for e in bundle["entry"]]
    assert len(ids) == len(set(ids))
    if "patient" not in expected:
        assert bundle["entry"][0]["resource"]["resourceType"] == "Patient"


def test_null_prefetch_values() -> None:
    req = hook_request(json.loads(EXAMPLES[0].read_text()))
    req["prefetch"]["patient"] = None
    assert collect_prefetch(req["prefetch"]).missing == ["patient"]
    with pytest.raises(PrefetchProblem):
        collect_prefetch({"conditions": "Condition?patient=1"})
    with pytest.raises(PrefetchProblem):
        collect_prefetch({"conditions": {"resourceType": "Bundle", "entry": [{"resource": 3}]}})


@given(st.text(max_size=400))
def test_summary_is_always_shorter_than_140(text: str) -> None:
    out = _summary(text)
    assert len(out) < SUMMARY_MAX
    if len(" ".join(text.split())) < SUMMARY_MAX:
        assert out == " ".join(text.split())


@given(st.text(max_size=200))
def test_language_is_swedish_or_english(header: str) -> None:
    assert pick_language(header) in ("sv", "en")


@given(en=st.integers(0, 1000), sv=st.integers(0, 1000), en_first=st.booleans())
def test_language_follows_quality_values(en: int, sv: int, en_first: bool) -> None:
    parts = [f"en-GB;q={en / 1000}", f"sv-SE;q={sv / 1000}"]
    header = ", ".join(parts if en_first else parts[::-1])
    chosen = pick_language(header)
    if en > sv:
        assert chosen == "en"
    elif sv > en or en == 0:
        assert chosen == "sv"
    else:
        assert chosen == ("en" if en_first else "sv")
    assert pick_language(None) == "sv" and pick_language("de, fr") == "sv" and pick_language("en") == "en"


@pytest.mark.parametrize("lang", ["sv", "en"])
def test_cards_for_every_example(lang: str, results: dict[str, Any]) -> None:
    kinds_seen: set[str] = set()
    for name, result in results.items():
        cards = build_cards(result, lang, "0b7c1a8e-9e55-4c1e-8d3f-2f6a5b4c3d2e")
        assert len({c["uuid"] for c in cards}) == len(cards)
        for card in cards:
            assert 0 < len(card["summary"]) < SUMMARY_MAX, name
            assert card["indicator"] in ("info", "warning")
            assert card["source"]["topic"]["code"] == result["ruleset"]["digest"]
            assert card["detail"]
            for s in card.get("suggestions", []):
                for a in s["actions"]:
                    valid(a["resource"])
            kinds_seen.add(card["summary"].split(":")[0].split("(")[0].strip())
        level = result["decisions"]["mdk"]["level"]
        has_mdk = any("MDK" in c["summary"] or "MDT" in c["summary"] for c in cards)
        assert has_mdk == (level != "undetermined" or bool(result["decisions"]["mdk"]["pending"])), name
        flagged_cohorts = {c["key"] for f in result["flags"] if f["kind"] == "trial"
                           for c in f.get("cohorts") or [] if c["status"] == "flagged"}
        subjects = {a["resource"]["study"]["reference"].split("/")[1] for c in cards for s in c.get("suggestions", [])
                    for a in s["actions"] if a["resource"]["resourceType"] == "ResearchSubject"}
        assert subjects == flagged_cohorts, name
    assert len(kinds_seen) >= 5  # MDK, trial, hereditary, WGS and data-gap cards all occur in the examples


def test_fhir_outputs_for_every_example_validate(results: dict[str, Any]) -> None:
    statuses = set()
    for name, result in results.items():
        doc = to_json(result)
        gr = guidance_response(result, doc, "req-1", "2026-11-01T10:00:00+00:00", "en")
        valid(gr)
        assert base64.b64decode(gr["contained"][0]["parameter"][0]["valueAttachment"]["data"]) == doc
        assert (gr["status"] == "data-required") == data_required(result)
        assert ("dataRequirement" in gr) == (gr["status"] == "data-required"), name
        statuses.add(gr["status"])
        bundle = match_bundle(result, "https://cds.example.org", "sv", "b-1")
        valid(bundle)
        for entry in bundle["entry"]:
            assert entry["search"]["score"] in (1, 0.5)
    assert statuses == {"success", "data-required"}
