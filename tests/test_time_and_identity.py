"""Bad data never decides, continued: resources without an id, medications read as they were known at
``as_of``, and partial dates of observations, reports and medications as intervals. Each case is a shipped
example with one thing changed; the tests assert the decision and the data-quality note."""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import random
import re
from typing import Any

import orjson
from example_bundles import AS_OF, EV, EXAMPLES, FOCUSE, Bundle, example, notes, resource, run, status
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mdtflag.fhir.facts import GenomicReportFact
from mdtflag.fhir.load import load_bundle
from mdtflag.output.render import to_json

ECOG = "p01-obs11"
FOLFOX = "p01-med6"  # fluorouracil, completed, 2025-11-06..2026-08-13


def facts(b: Bundle, kind: str) -> list[Any]:
    fs = EV.facts(load_bundle(b), dt.date.fromisoformat(AS_OF))
    return [f for f in fs.facts if f.kind == kind]


def ecog_without_id(b: Bundle, value: int, day: str, url: str | None = None) -> dict[str, Any]:
    r = copy.deepcopy(resource(b, ECOG))
    del r["id"]
    r["valueInteger"] = value
    r["effectiveDateTime"] = day
    b["entry"].append({"resource": r} if url is None else {"fullUrl": url, "resource": r})
    return r


def content_name(r: dict[str, Any]) -> str:
    return "Observation/#" + hashlib.sha256(orjson.dumps(r, option=orjson.OPT_SORT_KEYS)).hexdigest()[:12]


def shuffled(b: Bundle, seed: int) -> Bundle:
    rnd = random.Random(seed)

    def keys(x: Any) -> Any:
        if isinstance(x, dict):
            items = list(x.items())
            rnd.shuffle(items)
            return {k: keys(v) for k, v in items}
        return [keys(v) for v in x] if isinstance(x, list) else x

    out: Bundle = keys(b)
    rnd.shuffle(out["entry"])
    return out


# ------------------------------------------------------------------ resources without an id


def test_a_resource_without_id_is_named_by_its_content_and_read_once() -> None:
    b = example()
    r = ecog_without_id(b, 4, "2026-10-25")
    b["entry"].append({"resource": copy.deepcopy(r)})  # the same record twice
    (ecog,) = facts(b, "ecog")
    assert ecog.value == 4 and ecog.evidence[0].resource == content_name(r)
    doc = run(b)
    assert status(doc)["TRIAL-FOCUSE"] == "not_flagged"  # ECOG 4
    assert not notes(doc, "duplicate-id") and not notes(doc, "conflicting-values")
    out = to_json(EV.evaluate(b, as_of=AS_OF))
    for seed in range(5):
        assert to_json(EV.evaluate(shuffled(b, seed), as_of=AS_OF)) == out
    assert content_name(r) in out.decode() if isinstance(out, bytes) else content_name(r) in out


def test_resources_without_id_and_different_content_are_different_records() -> None:
    b = example()
    one = ecog_without_id(b, 1, "2026-10-25")
    four = ecog_without_id(b, 4, "2026-10-25")
    doc = run(b)
    assert not facts(b, "ecog") and status(doc)["DQ-1"] == "indeterminate"  # present, but which value?
    assert not notes(doc, "duplicate-id")
    (note,) = notes(doc, "conflicting-values")
    assert content_name(one) in note["message"] and content_name(four) in note["message"]
    # the same two records, whatever their place in the bundle
    assert to_json(EV.evaluate(shuffled(b, 7), as_of=AS_OF)) == to_json(EV.evaluate(b, as_of=AS_OF))


def test_resources_without_id_sharing_a_full_url_are_one_record_given_twice() -> None:
    url = "urn:uuid:5e1f0000-0000-4000-8000-0000000000aa"
    b = example()
    ecog_without_id(b, 1, "2026-10-25", url)
    ecog_without_id(b, 4, "2026-10-10", url)  # dated apart: still one record with two contents
    doc = run(b)
    name = "Observation/#" + hashlib.sha256(b"fullUrl:" + url.encode()).hexdigest()[:12]
    assert notes(doc, "duplicate-id")[0]["resource"] == name
    assert notes(doc, "conflicting-values") and status(doc)["DQ-1"] == "indeterminate"
    # different fullUrls, the same content: two records that agree, no conflict
    b = example()
    ecog_without_id(b, 4, "2026-10-25", url)
    ecog_without_id(b, 4, "2026-10-25", url[:-2] + "bb")
    doc = run(b)
    assert [f.value for f in facts(b, "ecog")] == [4] and not notes(doc, "duplicate-id")
    assert not notes(doc, "conflicting-values")


# ------------------------------------------------------------------ medications as known at as_of


def test_a_medication_ending_after_as_of_is_read_as_ongoing_then() -> None:
    later = example()
    resource(later, FOLFOX)["effectivePeriod"]["end"] = "2026-12-31"
    ongoing = example()
    resource(ongoing, FOLFOX)["status"] = "active"
    del resource(ongoing, FOLFOX)["effectivePeriod"]["end"]
    doc = run(later)
    assert status(doc) == status(run(ongoing)) and status(doc)["TRIAL-FOCUSE"] == "not_flagged"  # current 5-FU
    assert status(run(example()))["TRIAL-FOCUSE"] == "flagged"
    (note,) = notes(doc, "after-as-of")
    assert (note["resource"], note["element"]) == (
        f"MedicationStatement/{FOLFOX}",
        "MedicationStatement.effectivePeriod.end",
    )
    fu = next(f for f in facts(later, "medication") if f.atc == "L01BC02")
    assert fu.current and fu.end_days_ago is None
    # an end on or before as_of is used as it is, and nothing is noted
    for end in ("2026-10-15", AS_OF):
        b = example()
        resource(b, FOLFOX)["effectivePeriod"]["end"] = end
        doc = run(b)
        assert not notes(doc, "after-as-of")
        fu = next(f for f in facts(b, "medication") if f.atc == "L01BC02")
        assert fu.end_days_ago == (dt.date.fromisoformat(AS_OF) - dt.date.fromisoformat(end)).days
        assert not fu.current and status(doc)["TRIAL-FOCUSE"] == "flagged"


def test_a_medication_starting_after_as_of_is_ignored_with_a_note() -> None:
    b = example()
    med = copy.deepcopy(resource(b, FOLFOX))
    med["id"] = "med-later"
    med["status"] = "active"
    med["effectivePeriod"] = {"start": "2026-11-20", "end": "2027-03-01"}
    b["entry"].append({"resource": med})
    doc = run(b)
    assert status(doc) == status(run(example()))
    (note,) = notes(doc, "after-as-of")
    assert note["resource"] == "MedicationStatement/med-later"
    assert note["element"] == "MedicationStatement.effectivePeriod.start"
    assert all(f.evidence[0].resource != "MedicationStatement/med-later" for f in facts(b, "medication"))
    # a MedicationRequest authored after as_of alike
    req = {
        "resourceType": "MedicationRequest",
        "id": "req-later",
        "status": "active",
        "intent": "order",
        "subject": med["subject"],
        "medicationCodeableConcept": med["medicationCodeableConcept"],
        "authoredOn": "2026-11-05",
    }
    b["entry"].append({"resource": req})
    doc = run(b)
    assert status(doc) == status(run(example()))
    assert {n["resource"] for n in notes(doc, "after-as-of")} == {
        "MedicationStatement/med-later",
        "MedicationRequest/req-later",
    }


# ------------------------------------------------------------------ partial dates of observations and medications


def test_a_partial_observation_date_decides_a_window_only_when_the_whole_interval_agrees() -> None:
    expected = {  # ECOG within 30 days (DQ-1b flags an older one)
        "2026-10": "indeterminate",  # 1 to 31 days old
        "2026-09": "flagged",  # 31 to 61 days old
        "2026": "indeterminate",
        "2025": "flagged",
    }
    for day, dq1b in expected.items():
        b = example()
        resource(b, ECOG)["effectiveDateTime"] = day
        doc = run(b)
        assert status(doc)["DQ-1b"] == dq1b, day
        assert status(doc)["TRIAL-FOCUSE"] == "indeterminate", day  # an ECOG too old, or perhaps too old
        (note,) = notes(doc, "partial-date")
        assert note["element"] == "Observation.effectiveDateTime" and note["resource"] == f"Observation/{ECOG}"
    # a month that begins on as_of can only mean as_of
    b = example()
    resource(b, ECOG)["effectiveDateTime"] = "2026-11"
    assert status(run(b)) == status(run(example()))


def test_a_partial_date_that_may_be_the_latest_leaves_the_value_unknown() -> None:
    b = example()
    other = copy.deepcopy(resource(b, ECOG))
    other["id"] = "ecog-month"
    other["valueInteger"] = 3
    other["effectiveDateTime"] = "2026-10"  # perhaps after 2026-10-20, perhaps before
    b["entry"].append({"resource": other})
    doc = run(b)
    assert not facts(b, "ecog") and status(doc)["DQ-1"] == "indeterminate"
    assert any("ecog-month" in n["message"] for n in notes(doc, "conflicting-values"))
    other["effectiveDateTime"] = "2026-09"  # surely older: the ECOG of 2026-10-20 counts
    assert [f.value for f in facts(b, "ecog")] == [1] and status(run(b)) == status(run(example()))
    other["valueInteger"] = 1
    other["effectiveDateTime"] = "2026-10"  # the same value whichever is later
    assert [f.value for f in facts(b, "ecog")] == [1]


def test_a_partial_medication_end_around_as_of_leaves_current_unknown() -> None:
    b = example()
    resource(b, FOLFOX)["effectivePeriod"]["end"] = "2026"  # ended in 2026: before as_of, or ongoing then
    doc = run(b)
    assert status(doc)["TRIAL-FOCUSE"] == "indeterminate"
    assert not notes(doc, "after-as-of")  # nothing was ignored: the year is read as an interval
    resource(b, FOLFOX)["effectivePeriod"]["end"] = "2026-08"  # ended before as_of whatever the day
    assert status(run(b)) == status(run(example()))


def test_a_partial_since_date_decides_only_when_the_whole_interval_agrees() -> None:
    b = example("07-nsclc-met-amp-brain-mets-stable-treated.json")  # brain metastases stable since 2026-07-01
    assert status(run(b))["TRIAL-FOCUSE"] == "flagged"
    stable = resource(b, "p07-obs12")
    for start, expected in (("2026-09", "flagged"), ("2026-10", "indeterminate"), ("2026", "indeterminate")):
        stable["effectivePeriod"]["start"] = start  # stable >= 30 days: for every day of September, not of October
        doc = run(b)
        assert status(doc)["TRIAL-FOCUSE"] == expected, start
        (note,) = notes(doc, "partial-date")
        assert note["element"] == "Observation.effectivePeriod.start" and note["resource"] == "Observation/p07-obs12"


def test_a_partial_report_date_is_an_interval() -> None:
    b = example()
    resource(b, "p01-dr23")["effectiveDateTime"] = "2026-09"
    doc = run(b)
    assert status(doc) == status(run(example()))  # no rule counts the report's days
    (note,) = notes(doc, "partial-date")
    assert (note["resource"], note["element"]) == ("DiagnosticReport/p01-dr23", "DiagnosticReport.effectiveDateTime")
    fs = EV.facts(load_bundle(b), dt.date.fromisoformat(AS_OF))
    ((k, last),) = [(k, f) for k, f in fs.completions if isinstance(f, GenomicReportFact)]
    first = fs.facts[k]
    assert isinstance(first, GenomicReportFact) and isinstance(last, GenomicReportFact)
    assert (first.date, first.age_days) == (dt.date(2026, 9, 1), 61)
    assert (last.date, last.age_days) == (dt.date(2026, 9, 30), 32)


# ------------------------------------------------------------------ property: no completion contradicts


_TARGETS = [
    ("Observation", ("effectiveDateTime",)),
    ("DiagnosticReport", ("effectiveDateTime",)),
    ("MedicationStatement", ("effectivePeriod", "start")),
    ("MedicationStatement", ("effectivePeriod", "end")),
]


def _completions(text: str, rnd: random.Random) -> list[str]:
    first = dt.date(int(text[:4]), int(text[5:7]) if len(text) > 4 else 1, 1)
    last = (
        dt.date(first.year, 12, 31)
        if len(text) == 4
        else dt.date(first.year + (first.month == 12), first.month % 12 + 1, 1) - dt.timedelta(days=1)
    )
    days = [first, last] + [first + dt.timedelta(days=rnd.randint(0, (last - first).days)) for _ in range(2)]
    return [d.isoformat() for d in days]


def _slots(b: Bundle) -> list[tuple[dict[str, Any], tuple[str, ...]]]:
    out = []
    for e in b["entry"]:
        r = e["resource"]
        for rt, path in _TARGETS:
            holder = r if len(path) == 1 else r.get(path[0])
            if r["resourceType"] == rt and isinstance(holder, dict) and isinstance(holder.get(path[-1]), str):
                out.append((r, path))
    return out


def _put(r: dict[str, Any], path: tuple[str, ...], value: str) -> None:
    (r if len(path) == 1 else r[path[0]])[path[-1]] = value


def _about_unknowns() -> frozenset[str]:
    """Rules that fire on another rule or criterion being undecided (data-quality rules, "possible study
    patient"), and the rules that refer to them: an unknown is what they report, so a partial date may
    rightly flag them where a full date would not."""
    undecided = re.compile(r"status: \[[^]]*indeterminate|outcome: \[[^]]*unknown")
    refs: dict[str, set[str]] = {}
    out: set[str] = set()
    for path in (EXAMPLES.parent / "rules" / "criteria").rglob("*.yaml"):
        text = path.read_text(encoding="utf-8")
        rid = re.search(r"^id: (\S+)", text, re.MULTILINE)
        if rid is None:
            continue
        refs[rid[1]] = set(re.findall(r"rule: ([A-Z][A-Z0-9-]+)", text))
        if undecided.search(text):
            out.add(rid[1])
    while True:
        more = {r for r, to in refs.items() if to & out} - out
        if not more:
            return frozenset(out)
        out |= more


_ABOUT_UNKNOWNS = _about_unknowns()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(
        [
            FOCUSE,
            "07-nsclc-met-amp-brain-mets-stable-treated.json",
            "09-nsclc-met-amp-brain-mets-stable-on-steroids.json",
            "27-colon-braf-v600e-after-encorafenib-cetuximab.json",
            "34-cholangio-braf-labs-stale-halland-varberg.json",
        ]
    ),
    st.integers(0, 2**32 - 1),
    st.integers(-60, 500),
    st.booleans(),
    st.booleans(),
)
def test_a_partial_observation_or_medication_date_never_gives_a_decision_a_completion_contradicts(
    name: str, seed: int, days: int, year_only: bool, twin: bool
) -> None:
    b = example(name)
    rnd = random.Random(seed)
    r, path = rnd.choice(_slots(b))
    end = path[-1] == "end"
    day = dt.date.fromisoformat(AS_OF) - dt.timedelta(days=days if end else abs(days))
    if twin and r["resourceType"] == "Observation" and ("valueInteger" in r or "valueQuantity" in r):
        # another value of the same kind on a full date inside the partial date: which is the latest is open
        other = copy.deepcopy(r)
        other["id"] = "twin"
        other["effectiveDateTime"] = day.isoformat()
        if "valueInteger" in other:
            other["valueInteger"] = (other["valueInteger"] + 3) % 6
        else:
            other["valueQuantity"]["value"] = other["valueQuantity"]["value"] * 3
        b["entry"].append({"resource": other})
    partial = str(day.year) if year_only else day.isoformat()[:7]
    _put(r, path, partial)
    decided = status(run(b))
    assert {"TRIAL-FOCUSE", "F-ACT", "PED-WGS-1", "MDK-REG-1"}.isdisjoint(_ABOUT_UNKNOWNS)
    period = r.get("effectivePeriod") if r["resourceType"] == "MedicationStatement" else None
    for c in _completions(partial, rnd):
        if c > AS_OF and not end:  # on record at as_of: not dated after it (that would be ignored instead)
            continue
        if period is not None and not end and "end" in period and c > period["end"]:
            continue  # a start after the end is not a possible truth
        if period is not None and end and "start" in period and c < period["start"]:
            continue
        _put(r, path, c)
        full = status(run(b))
        for rule, s in decided.items():
            fires = {"flagged": True, "not_flagged": False, "not_applicable": False}
            if s in ("flagged", "not_flagged") and rule not in _ABOUT_UNKNOWNS:
                assert fires.get(full[rule]) == fires[s], (rule, r.get("id"), path, partial, c, full[rule])
