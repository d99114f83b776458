"""The skeleton of a JSON resource: its structure as one hashable token tuple, and its scalar leaves.

One tight walk builds a flat token tuple and, in the same order, the list of the resource's scalar
leaves. The tokens are: a first token naming the model (given by the caller); every dict key, in
order; ``dict``/``list`` to open a container and ``...`` to close it (so nesting and list lengths);
the exact type of every scalar leaf (``str``/``int``/``float``/``bool``/``NoneType``); and, after the
type, the *value* of a scalar under a ``resourceType`` or ``resource_type`` key at any depth. Anything
else (a non-``str`` key, another Python type, nesting deeper than ``MAX_DEPTH``) makes the resource
unsupported. :mod:`mdtflag.fhir.fastvalid` describes why equal skeletons mean equal structure.
"""

from __future__ import annotations

from typing import Any, Callable

__all__ = ["MAX_DEPTH", "SCALARS", "SPECIAL_KEYS", "Unsupported", "count_scalars", "skeleton"]

#: Deeper resources are not cached (real FHIR is ~12 deep; load.py refuses > 100).
MAX_DEPTH = 120

SCALARS = frozenset({str, int, float, bool, type(None)})
SPECIAL_KEYS = frozenset({"resourceType", "resource_type"})
# skeleton markers: ``dict`` / ``list`` open a container, ``...`` (Ellipsis) closes it


class Unsupported(Exception):
    """The resource (or its model) is outside what the fast path can vouch for."""


# _walk_dict and _walk_list repeat the per-value dispatch on purpose: it runs for every value of every
# resource, and a shared helper would add a call per value to the warm path.
def _walk_dict(d: dict[str, Any], ap: Callable[[Any], None], lap: Callable[[Any], None], depth: int) -> None:
    if depth > MAX_DEPTH:
        raise Unsupported
    depth += 1
    for k, v in d.items():
        if type(k) is not str:
            raise Unsupported
        ap(k)
        t = type(v)
        if t is dict:
            ap(dict)
            _walk_dict(v, ap, lap, depth)
            ap(...)
        elif t is list:
            ap(list)
            _walk_list(v, ap, lap, depth)
            ap(...)
        elif t in SCALARS:
            ap(t)
            lap(v)
            if k in SPECIAL_KEYS:
                ap(v)
        else:
            raise Unsupported


def _walk_list(lst: list[Any], ap: Callable[[Any], None], lap: Callable[[Any], None], depth: int) -> None:
    if depth > MAX_DEPTH:
        raise Unsupported
    depth += 1
    for v in lst:
        t = type(v)
        if t is dict:
            ap(dict)
            _walk_dict(v, ap, lap, depth)
            ap(...)
        elif t is list:
            ap(list)
            _walk_list(v, ap, lap, depth)
            ap(...)
        elif t in SCALARS:
            ap(t)
            lap(v)
        else:
            raise Unsupported


def skeleton(first: Any, resource: dict[str, Any]) -> tuple[tuple[Any, ...], list[Any]] | None:
    """``(skeleton, leaves)`` of ``resource`` with the token ``first`` (the model class, or a name that
    stands for it) in front, or ``None`` when unsupported."""
    if resource.__class__ is not dict:
        return None
    toks: list[Any] = [first]
    leaves: list[Any] = []
    try:
        _walk_dict(resource, toks.append, leaves.append, 0)
    except (Unsupported, RecursionError):
        return None
    return tuple(toks), leaves


def count_scalars(v: Any) -> int:
    """Number of leaves the skeleton walk appends for ``v`` (mirrors ``_walk_*``)."""
    t = v.__class__
    if t is dict:
        return sum(count_scalars(x) for x in v.values())
    if t is list:
        return sum(count_scalars(x) for x in v)
    if t in SCALARS:
        return 1
    raise Unsupported
