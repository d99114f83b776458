"""A code that says what something is, corrupted on file, never turns one definite decision into the other.

Property: take a shipped example, corrupt one coding of one resource (a code or a system with junk appended,
another system, the code in upper or lower case) and evaluate again. Every rule that was flagged or not
flagged is afterwards the same, or open (indeterminate), or not applicable – never the opposite definite
answer; and whenever anything changed, the result carries a data-quality note on that resource. Left out:
the data-quality rules (DQ-*), which report on the data itself, the local-MDK fallback (MDK-LOC-1, flagged
when no higher level is decided) and MDK-NAT-2, which by its criteria is flagged when the cohort is flagged
*or* indeterminate for clinical reasons."""

from __future__ import annotations

import copy
import json
from functools import cache
from typing import Any

from example_bundles import EXAMPLES, Bundle, run, status
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

BY_DESIGN = ("DQ-", "MDK-LOC-1", "MDK-NAT-2")
DEFINITE = ("flagged", "not_flagged")
SKIP_KEYS = frozenset({"id", "reference", "fullUrl", "resourceType", "subject", "patient", "meta"})
Path = tuple[Any, ...]


def codings_in(node: Any, path: Path = ()) -> list[Path]:
    """Paths (inside a resource) of every coding object: a dict with a string ``code``."""
    out: list[Path] = []
    if isinstance(node, dict):
        if isinstance(node.get("code"), str) and ("system" in node or "display" in node):
            out.append(path)
        for k, v in node.items():
            if k not in SKIP_KEYS:
                out += codings_in(v, (*path, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += codings_in(v, (*path, i))
    return out


@cache
def example_files() -> tuple[str, ...]:
    return tuple(sorted(p.name for p in EXAMPLES.glob("*.json")))


@cache
def baseline(name: str) -> tuple[str, tuple[tuple[int, Path], ...], tuple[tuple[str, str], ...]]:
    text = (EXAMPLES / name).read_text(encoding="utf-8")
    bundle = json.loads(text)
    sites = tuple(
        (k, path)
        for k, e in enumerate(bundle["entry"])
        if e["resource"].get("resourceType") != "Patient"
        for path in codings_in(e["resource"])
    )
    return text, sites, tuple(sorted(status(run(bundle)).items()))


def corrupt(coding: dict[str, Any], how: str) -> None:
    if how == "code+junk":
        coding["code"] += "X9"
    elif how == "code upper":
        coding["code"] = coding["code"].upper()
    elif how == "code lower":
        coding["code"] = coding["code"].lower()
    elif how == "system+junk":
        coding["system"] = str(coding.get("system", "")) + "X9"
    else:
        coding["system"] = "urn:example:other-system"


def check_open(
    name: str,
    resource: dict[str, Any],
    change: str,
    before: dict[str, str],
    doc: dict[str, Any],
    other: dict[str, str] | None = None,
) -> None:
    """After a corruption of ``resource`` (``doc``): no rule went from one definite status to the other, a
    rule on which ``before`` and the ``other`` world disagree is open, and any change has a note on it."""
    after = status(doc)
    where = f"{resource['resourceType']}/{resource.get('id')}"
    for rule, was in before.items():
        if rule.startswith(BY_DESIGN) or was not in DEFINITE:
            continue
        assert after[rule] == was or after[rule] not in DEFINITE, (
            f"{name}: {where} {change}: {rule} {was} -> {after[rule]}"
        )
        if other is not None and other[rule] in DEFINITE and other[rule] != was:  # the value decides: stay open
            assert after[rule] not in DEFINITE, f"{name}: {where} {change}: {rule} decided ({after[rule]})"
    if after != before:
        assert any(n["resource"] == where for n in doc["data_quality"]), f"{name}: {where} {change}: no note"


def at(node: Any, path: Path) -> Any:
    for p in path:
        node = node[p]
    return node


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(example_files()),
    st.integers(min_value=0, max_value=10_000),
    st.sampled_from(["code+junk", "code upper", "code lower", "system+junk", "other system"]),
)
def test_a_corrupted_code_never_flips_a_definite_decision(name: str, pick: int, how: str) -> None:
    text, sites, before_items = baseline(name)
    if not sites:
        return
    k, path = sites[pick % len(sites)]
    bundle: Bundle = json.loads(text)
    resource = bundle["entry"][k]["resource"]
    original = copy.deepcopy(at(resource, path))
    corrupt(at(resource, path), how)
    if at(resource, path) == original:
        return  # e.g. a code already in upper case
    check_open(name, resource, f"{'.'.join(map(str, path))} {original} ({how})", dict(before_items), run(bundle))


@cache
def status_sites(name: str) -> tuple[int, ...]:
    text, _, _ = baseline(name)
    return tuple(k for k, e in enumerate(json.loads(text)["entry"]) if isinstance(e["resource"].get("status"), str))


#: a status that withdraws what the resource says, per resource type (entered-in-error where R4 has it)
WITHDRAWN = {"ResearchSubject": "ineligible"}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(example_files()), st.integers(min_value=0, max_value=10_000), st.sampled_from(["X9", "upper"]))
def test_a_corrupted_status_is_open_wherever_the_status_would_decide(name: str, pick: int, how: str) -> None:
    """A status outside its R4 codes may be the one on file or one that withdraws the resource (entered in
    error): wherever those two give opposite definite answers, the corrupted status gives neither; and any
    change comes with a note on the resource."""
    text, _, before_items = baseline(name)
    sites = status_sites(name)
    if not sites:
        return
    k = sites[pick % len(sites)]
    bundle: Bundle = json.loads(text)
    resource = bundle["entry"][k]["resource"]
    original = resource["status"]
    withdrawn = WITHDRAWN.get(resource["resourceType"], "entered-in-error")
    resource["status"] = withdrawn
    other = status(run(bundle))
    resource["status"] = original + "X9" if how == "X9" else original.upper()
    if resource["status"] == original:
        return
    check_open(name, resource, f"status {original!r} -> {resource['status']!r}", dict(before_items), run(bundle), other)
