"""Results handed to callers are deeply read-only: changing one can never change a later evaluation.

Result documents share the parts that are the same for every patient (reasons of patient-independent
criteria, missing-data entries, texts); every mapping and list in them refuses changes, ``thaw`` gives a
changeable copy, and the JSON is exactly what it was.
"""

from __future__ import annotations

import copy
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import pytest
from conftest import ROOT
from hypothesis import given, settings
from hypothesis import strategies as st

from mdtflag.api import Evaluator
from mdtflag.evaluation.result import ReadOnlyDict, ReadOnlyList, Result, thaw
from mdtflag.output.render import to_json

AS_OF = "2026-11-01"
EXAMPLES = sorted((ROOT / "fhir_examples").glob("*.json"))


@pytest.fixture(scope="module")
def ev() -> Evaluator:
    return Evaluator(str(ROOT / "rules"))


def _nodes(doc: Any) -> Iterator[Any]:
    """Every mapping and list in a document, the document included."""
    stack = [doc]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            yield node
            stack.extend(node.values())
        elif isinstance(node, list):
            yield node
            stack.extend(node)


LIST_CHANGES: list[Callable[[list[Any]], object]] = [
    lambda x: x.append(1),
    lambda x: x.extend([1]),
    lambda x: x.insert(0, 1),
    lambda x: x.pop(),
    lambda x: x.remove(x[0]),
    lambda x: x.clear(),
    lambda x: x.sort(),
    lambda x: x.reverse(),
    lambda x: x.__setitem__(0, 1),
    lambda x: x.__delitem__(0),
    lambda x: x.__iadd__([1]),
    lambda x: x.__imul__(2),
]
DICT_CHANGES: list[Callable[[dict[str, Any]], object]] = [
    lambda d: d.__setitem__("x", 1),
    lambda d: d.__setitem__(next(iter(d)), None),
    lambda d: d.__delitem__(next(iter(d))),
    lambda d: d.pop(next(iter(d))),
    lambda d: d.popitem(),
    lambda d: d.clear(),
    lambda d: d.update(x=1),
    lambda d: d.setdefault("x", 1),
    lambda d: d.__ior__({"x": 1}),
]


def _try_every_change(result: Result) -> int:
    refused = 0
    for node in list(_nodes(result)):
        if not node:
            continue
        for change in LIST_CHANGES if isinstance(node, list) else DICT_CHANGES:
            with pytest.raises(TypeError, match="read-only"):
                change(node)
            refused += 1
    return refused


def test_every_list_and_mapping_is_read_only(ev: Evaluator) -> None:
    result = ev.evaluate(str(EXAMPLES[0]), as_of=AS_OF)
    kinds = {type(n) for n in _nodes(result)}
    assert all(issubclass(k, (ReadOnlyList, ReadOnlyDict)) for k in kinds), kinds
    assert isinstance(result.decisions, ReadOnlyDict) and isinstance(result.flags, ReadOnlyList)
    with pytest.raises(AttributeError):
        result.flags[0].status = "flagged"


def test_changing_a_result_never_changes_later_evaluations(ev: Evaluator) -> None:
    fresh = Evaluator(str(ROOT / "rules"))
    first = ev.evaluate(str(EXAMPLES[0]), as_of=AS_OF)
    assert _try_every_change(first) > 1000
    for path in EXAMPLES[:8]:
        assert to_json(ev.evaluate(str(path), as_of=AS_OF)) == to_json(fresh.evaluate(str(path), as_of=AS_OF)), path


@settings(max_examples=25, deadline=None)
@given(st.sampled_from(EXAMPLES), st.data())
def test_a_random_change_is_refused_and_leaves_the_next_result_alone(ev: Evaluator, path: Path, data: Any) -> None:
    before = to_json(ev.evaluate(str(path), as_of=AS_OF))
    result = ev.evaluate(str(path), as_of=AS_OF)
    nodes = [n for n in _nodes(result) if n]
    node = data.draw(st.sampled_from(nodes))
    change = data.draw(st.sampled_from(LIST_CHANGES if isinstance(node, list) else DICT_CHANGES))
    with pytest.raises(TypeError):
        change(node)
    assert to_json(result) == before
    assert to_json(ev.evaluate(str(path), as_of=AS_OF)) == before


def test_thaw_gives_a_changeable_copy_that_is_not_shared(ev: Evaluator) -> None:
    result = ev.evaluate(str(EXAMPLES[0]), as_of=AS_OF)
    before = to_json(result)
    plain = thaw(result)
    assert type(plain) is dict and type(plain["flags"]) is list and plain == result
    assert to_json(plain) == before
    for flag in plain["flags"]:
        for reason in flag["reasons"]:
            reason["evidence"].clear()
            reason["text"]["en"] = "changed"
        flag["reasons"].append({"criterion": "X"})
    plain["decisions"]["mdk"]["level"] = "none"
    assert to_json(result) == before
    assert to_json(ev.evaluate(str(EXAMPLES[0]), as_of=AS_OF)) == before


def test_copies_and_pickles_stay_equal_and_read_only(ev: Evaluator) -> None:
    result = ev.evaluate(str(EXAMPLES[0]), as_of=AS_OF)
    for other in (copy.copy(result), copy.deepcopy(result), pickle.loads(pickle.dumps(result))):
        assert other == result and type(other) is Result
        assert to_json(other) == to_json(result)
        with pytest.raises(TypeError):
            other.flags[0].reasons.append(None)  # type: ignore[arg-type]
    assert pickle.loads(pickle.dumps(result)).flags[0].rule == result.flags[0].rule
