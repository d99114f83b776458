"""Walks over the rule model: criteria trees, criterion ids, nested models, field conditions."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel

import mdtflag.ruleset.model as rm

__all__ = ["children", "criterion_ids", "rule_nodes", "test_fields", "walk_criteria", "walk_models"]


def children(c: Any) -> tuple[Any, ...]:
    """The child criteria of a criterion node (none for a leaf)."""
    if isinstance(c, rm.AllNode):
        return c.all
    if isinstance(c, rm.AnyNode):
        return c.any
    if isinstance(c, rm.NotNode):
        return (c.not_,)
    return ()


def walk_criteria(c: Any) -> Iterator[Any]:
    """Every criterion node below (and including) ``c``, in tree order."""
    if c is None:
        return
    yield c
    for ch in children(c):
        yield from walk_criteria(ch)


def rule_nodes(rule: rm.Rule) -> Iterator[Any]:
    yield from walk_criteria(rule.applies_when)
    yield from walk_criteria(rule.criteria)


def walk_models(obj: Any) -> Iterator[BaseModel]:
    """Every pydantic model inside ``obj`` (fields, tuples, lists), depth first."""
    if isinstance(obj, BaseModel):
        yield obj
        for name in type(obj).model_fields:
            yield from walk_models(getattr(obj, name))
    elif isinstance(obj, (list, tuple)):
        for x in obj:
            yield from walk_models(x)


def test_fields(t: Any) -> Iterator[rm.FieldTest]:
    if t is None:
        return
    if isinstance(t, rm.Conditions):
        yield from t.fields
    elif isinstance(t, rm.TestNot):
        yield from test_fields(t.not_)
    else:
        for x in t.all if isinstance(t, rm.TestAll) else t.any:
            yield from test_fields(x)


def criterion_ids(rule: rm.Rule) -> list[str]:
    """Ids of every criterion node in a rule, in tree order (applicability first)."""
    return [n.id for n in rule_nodes(rule) if getattr(n, "id", None)]
