"""A sound fast path in front of ``fhir.resources`` validation.

``validate(cls, resource)`` has the effect of ``cls.model_validate(resource)`` for a FHIR model
class ``cls``: it returns ``None`` when the resource is valid and raises what ``model_validate``
raises when it is not. ``fhir.resources`` stays the authority: every "invalid" verdict, and every
verdict this module cannot vouch for, comes from ``cls.model_validate`` itself, so the errors (and
``load.py``'s data-quality notes) are exactly those of the full validation.

Design
======

**Skeleton** (:func:`skeleton`). One tight walk builds a flat token tuple and, in the same order,
the list of the resource's scalar leaves (:mod:`mdtflag.fhir.skeleton`). The tokens are: the model
class (or a name that stands for it, :func:`validate_named`); every dict key, in
order; ``dict``/``list`` to open a container and ``...`` to close it (so nesting and list lengths);
the exact type of every scalar leaf (``str``/``int``/``float``/``bool``/``NoneType``: ``True`` is
not ``1``, ``1.0`` is not ``1``, and every null is visible); and, after the type, the *value* of a
scalar under a ``resourceType`` or ``resource_type`` key at any depth. Anything else -- a non-``str``
key, another Python type (tuple, subclasses of dict/list/str, datetime, ...), nesting deeper than
``MAX_DEPTH`` (so cycles) -- makes the resource unsupported: it gets the full validation. The
grammar is unambiguous (keys are ``str``; markers are type objects or ``Ellipsis``; a raw value
only follows a ``resourceType``/``resource_type`` key and its type token), so equal skeletons mean
equal structure.

**Cache** (``_PLANS``): skeleton -> plan, at most ``CACHE_SIZE`` entries (cleared when full; plain
dict ``get``/set, safe from several threads). On a miss ``cls.model_validate`` runs; only if it
accepts the resource is a plan derived and stored, so a plan exists only for skeletons that
fhir.resources has accepted at least once. With a ``source`` set (:mod:`mdtflag.compile.plan_store`), a
miss first asks it for a plan derived in an earlier process, and new plans are handed to it.

**Plan** (``_Builder``): the model classes are walked alongside the resource -- ``model_fields``
by alias and, as ``validate_by_name`` allows, by field name (``class_fhir``, ``birthDate__ext``);
``Optional``/``List`` annotations; nested FHIR types through their ``FhirBase`` type
(``get_model_klass()``, or for ``Resource``/``Element``-typed fields such as ``contained`` and
``Bundle.entry.resource`` the class named by the value's ``resourceType``, looked up exactly as
``FhirElementOrResourceBase`` does); ``_x`` primitive extensions are ordinary aliased fields
(``FHIRPrimitiveExtension``); ``resourceType``/``resource_type`` are popped by
``FHIRAbstractModel.__init__``; ``extension``/``modifierExtension`` ``value[x]`` and Narrative
``div`` (xhtml = plain ``str``) are ordinary fields. The class chosen for every nested object is
cross-checked against the instance ``model_validate`` has just built. For each primitive leaf the
plan holds the pydantic validator of the field's own annotation (a cached ``TypeAdapter`` of e.g.
``Optional[Annotated[datetime, DateTime()]]``: fhir_core's own validators, nothing re-implemented);
a primitive list is checked item by item with its item annotation; any other value under a
primitive field (e.g. a list under ``fhir_comments: Union[str, List[str], None]``) is checked
whole, found by its path. Leaves are grouped per annotation into one pydantic call per group
(``operator.itemgetter`` over the leaf list). Anything unexpected (an unknown key, a scalar other
than null where an object is expected, a class or field this module has not read, ...) stores a
"no plan" marker: that skeleton always gets the full validation.

**Fast check**: on a hit the plan's validators run on the leaves; all pass -> valid. A failure or
any exception -> ``cls.model_validate(resource)`` decides. Validators that run Python code (date,
dateTime, instant, time, decimal, url, base64Binary) remember the values they accepted (exact
``str``/``int``/``bool`` values and ``float`` values other than zero and NaN; bounded): they are
pure functions of the value.

Soundness
=========

The argument that a plan's checks give exactly ``model_validate``'s verdict -- what fhir_core and
pydantic run, and which part of it the skeleton or the plan covers -- is in ``docs/fast-validation.md``.
"""

from __future__ import annotations

import operator
import typing
from typing import Any, Callable

from mdtflag.fhir.skeleton import SCALARS as _SCALARS
from mdtflag.fhir.skeleton import SPECIAL_KEYS as _SPECIAL_KEYS
from mdtflag.fhir.skeleton import Unsupported as _Unsupported
from mdtflag.fhir.skeleton import count_scalars as _count_scalars
from mdtflag.fhir.skeleton import skeleton

__all__ = [
    "CACHE_SIZE",
    "PlanSource",
    "clear_cache",
    "plan_of",
    "skeleton",
    "source",
    "stats",
    "validate",
    "validate_named",
]

#: Largest number of cached skeletons; the cache is cleared when it is full.
CACHE_SIZE = 4096
#: Largest number of remembered accepted values per slow validator.
_MEMO_SIZE = 65536

#: Counters for tests and benchmarks: cache hits (fast verdict "valid"), misses, full validations.
stats: dict[str, int] = {"hits": 0, "misses": 0, "full": 0, "fallbacks": 0, "stored": 0}

if typing.TYPE_CHECKING:  # imported lazily (first use) to keep ``import mdtflag.fhir.load`` cheap
    import fhir_core.constraints as _fc_constraints
    from fhir_core.fhirabstractmodel import FHIRAbstractModel as _FHIRAbstractModel
    from fhir_core.types import FhirBase as _FhirBase
    from fhir_core.types import FhirElementOrResourceBase as _FhirElementOrResourceBase
    from fhir_core.types import import_string as _import_string  # type: ignore[attr-defined]
    from pydantic import BaseModel as _BaseModel
    from pydantic import TypeAdapter as _TypeAdapter

#: ``None`` until first use, then whether fhir_core could be imported and read.
_ENABLED: bool | None = None


def _setup() -> bool:
    """Import fhir_core and snapshot the schema-building constants (once)."""
    global _ENABLED, _fc_constraints, _FHIRAbstractModel, _FhirBase, _FhirElementOrResourceBase
    global _import_string, _BaseModel, _TypeAdapter, _CONSTRAINTS_SNAPSHOT
    try:
        import fhir_core.constraints as _fc_constraints
        from fhir_core.fhirabstractmodel import FHIRAbstractModel as _FHIRAbstractModel
        from fhir_core.types import FhirBase as _FhirBase
        from fhir_core.types import (
            FhirElementOrResourceBase as _FhirElementOrResourceBase,
        )
        from fhir_core.types import import_string as _import_string  # type: ignore[attr-defined]
        from pydantic import BaseModel as _BaseModel
        from pydantic import TypeAdapter as _TypeAdapter
    except ImportError:  # pragma: no cover - other fhir.resources generations: always full
        _ENABLED = False
        return False
    _CONSTRAINTS_SNAPSHOT = _constraints_now()
    _ENABLED = True
    return True


# skeleton markers: ``dict`` / ``list`` open a container, ``...`` (Ellipsis) closes it


# --------------------------------------------------------------------------------------------
# leaf validators


class _Leaf:
    """The validator of one primitive annotation: single and batched, with a memo when slow."""

    __slots__ = ("annotation", "batch", "memo", "single")

    def __init__(self, annotation: Any) -> None:
        self.annotation = annotation
        self.single: Callable[[Any], Any] = _TypeAdapter(annotation).validate_python
        self.batch: Callable[[Any], Any] = _TypeAdapter(list[annotation]).validate_python
        self.memo: set[Any] | None = set() if _runs_python(annotation) else None


_SLOW_NAMES = frozenset({"Date", "DateTime", "Instant", "Time", "Decimal", "Url", "Base64Binary", "EncodedBytes"})


def _runs_python(annotation: Any) -> bool:
    """Whether the annotation's validator runs Python code (worth a memo). Speed only."""
    for meta in getattr(annotation, "__metadata__", ()):
        if type(meta).__name__ in _SLOW_NAMES:
            return True
    return any(_runs_python(a) for a in typing.get_args(annotation))


_LEAVES: dict[Any, _Leaf] = {}
_CONSTRAINTS_SNAPSHOT: tuple[Any, ...] = ()


def _constraints_now() -> tuple[Any, ...]:
    return (
        getattr(_fc_constraints, "TYPES_ID_MAX_LENGTH", None),
        getattr(_fc_constraints, "TYPES_ID_PATTERN", None),
        getattr(_fc_constraints, "TYPES_STRING_ALLOW_EMPTY_STR", None),
    )


def _leaf_for(annotation: Any) -> _Leaf:
    global _ENABLED
    try:
        return _LEAVES[annotation]
    except KeyError:
        pass
    except TypeError:  # unhashable annotation
        raise _Unsupported from None
    if _constraints_now() != _CONSTRAINTS_SNAPSHOT:
        _ENABLED = False  # schemas built now would differ from the models' ones
        raise _Unsupported
    leaf = _Leaf(annotation)
    _LEAVES[annotation] = leaf
    return leaf


def _memo_key(v: Any) -> Any:
    c = v.__class__
    if c is str:
        return v
    if c is float:
        return (float, v) if (v == v and v != 0.0) else None
    return (c, v)


# --------------------------------------------------------------------------------------------
# model classes


_MODEL, _MODEL_LIST, _PRIM, _PRIM_LIST, _REFUSE = range(5)
#: Model config keys read here: with ``extra='forbid'`` the by-alias/by-name switches only decide
#: which keys are accepted (the skeleton holds the keys); none of them changes a field's validator.
_ALLOWED_CONFIG_KEYS = frozenset(
    {"extra", "validate_assignment", "populate_by_name", "validate_by_alias", "validate_by_name"}
)
_KNOWN_MODEL_VALIDATORS: dict[str, Any] = {}
_OWN_NAMES = (
    "__init__",
    "model_validate",
    "model_post_init",
    "__get_pydantic_core_schema__",
    "reject_null_complex_elements",
    "validate_after_model_construction",
    "_validate_one_of_many",
    "_validate_required_primitive_elements",
)


class _FieldInfo:
    __slots__ = ("fhir_type", "item_leaf", "kind", "leaf", "name", "other_key")

    def __init__(
        self,
        name: str,
        other_key: str | None,
        kind: int,
        fhir_type: Any = None,
        leaf: _Leaf | None = None,
        item_leaf: _Leaf | None = None,
    ) -> None:
        self.name = name
        self.other_key = other_key
        self.kind = kind
        self.fhir_type = fhir_type
        self.leaf = leaf
        self.item_leaf = item_leaf


_CLASS_INFO: dict[type, dict[str, _FieldInfo] | None] = {}


def _strip_optional(ann: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(ann)
    if origin is typing.Union or (origin is not None and getattr(origin, "__name__", "") == "UnionType"):
        args = typing.get_args(ann)
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1 and len(rest) < len(args):
            return rest[0], True
    return ann, False


def _is_fhir_type(t: Any) -> bool:
    return isinstance(t, type) and issubclass(t, _FhirBase)


def _mentions_model(ann: Any) -> bool:
    if isinstance(ann, type) and (issubclass(ann, _FhirBase) or issubclass(ann, _BaseModel)):
        return True
    return any(_mentions_model(a) for a in typing.get_args(ann))


def _known_model_validators() -> dict[str, Any]:
    """The model validators read for the docstring, by name (built once, then swapped in whole)."""
    global _KNOWN_MODEL_VALIDATORS
    if _KNOWN_MODEL_VALIDATORS:
        return _KNOWN_MODEL_VALIDATORS
    base = _FHIRAbstractModel.__dict__
    known: dict[str, Any] = {}
    for name in ("reject_null_complex_elements", "validate_after_model_construction"):
        known[name] = getattr(base[name], "__func__", base[name])
    try:
        from fhir.resources.R4B.fhirprimitiveextension import FHIRPrimitiveExtension

        extra = FHIRPrimitiveExtension.__dict__["validate_extension_or_fhir_comment_required"]
        known["validate_extension_or_fhir_comment_required"] = getattr(extra, "__func__", extra)
    except (ImportError, KeyError):  # pragma: no cover - then FHIRPrimitiveExtension gets no plan
        pass
    _KNOWN_MODEL_VALIDATORS = known
    return known


def _class_info(klass: Any) -> dict[str, _FieldInfo]:
    """Key -> field facts for a model class; raises ``_Unsupported`` for a class not read here."""
    try:
        info = _CLASS_INFO[klass]
    except KeyError:
        info = _CLASS_INFO[klass] = _build_class_info(klass)
    if info is None:
        raise _Unsupported
    return info


def _build_class_info(klass: Any) -> dict[str, _FieldInfo] | None:
    if not (isinstance(klass, type) and issubclass(klass, _FHIRAbstractModel)):
        return None
    for c in klass.__mro__:
        if c is _FHIRAbstractModel:
            break
        if any(n in c.__dict__ for n in _OWN_NAMES):
            return None
    config = dict(klass.model_config)
    if config.get("extra") != "forbid" or not set(config) <= _ALLOWED_CONFIG_KEYS:
        return None
    if getattr(klass, "__pydantic_post_init__", None) is not None:
        return None
    if getattr(klass, "__pydantic_root_model__", False):
        return None
    decs = klass.__pydantic_decorators__
    if decs.validators or decs.field_validators or decs.root_validators or getattr(decs, "computed_fields", None):
        return None
    known = _known_model_validators()
    for name, dec in decs.model_validators.items():
        func = getattr(dec.func, "__func__", dec.func)
        if known.get(name) is not func:
            return None
    fields = klass.model_fields
    by_alias: dict[str, str] = {}
    for name, f in fields.items():
        if f.alias:
            by_alias[f.alias] = name
    info: dict[str, _FieldInfo] = {}
    for name, f in fields.items():
        alias = f.alias or name
        if alias in _SPECIAL_KEYS or name in _SPECIAL_KEYS:
            return None
        other = name if name != alias else None
        fi = _classify(name, f, other_key=other)
        if alias in info:
            return None
        info[alias] = fi
        if other is not None:
            if other in by_alias:  # a field's name is another field's alias: refuse that key
                info[other] = _FieldInfo(name, None, _REFUSE)
            else:
                info[other] = _classify(name, f, other_key=alias)
    return info


def _classify(name: str, f: Any, other_key: str | None) -> _FieldInfo:
    ann = f.annotation
    if getattr(f, "discriminator", None) is not None:
        return _FieldInfo(name, other_key, _REFUSE)
    if f.metadata:
        full = typing.Annotated[(ann, *f.metadata)]  # type: ignore[valid-type]
        if _mentions_model(full):
            return _FieldInfo(name, other_key, _REFUSE)
        return _FieldInfo(name, other_key, _PRIM, leaf=_leaf_for(full))
    inner, _ = _strip_optional(ann)
    if typing.get_origin(inner) is list:
        (item,) = typing.get_args(inner) or (Any,)
        item_inner, _ = _strip_optional(item)
        if _is_fhir_type(item_inner):
            return _FieldInfo(name, other_key, _MODEL_LIST, fhir_type=item_inner)
        if _mentions_model(item):
            return _FieldInfo(name, other_key, _REFUSE)
        return _FieldInfo(name, other_key, _PRIM_LIST, leaf=_leaf_for(ann), item_leaf=_leaf_for(item))
    if _is_fhir_type(inner):
        return _FieldInfo(name, other_key, _MODEL, fhir_type=inner)
    if _mentions_model(ann):
        return _FieldInfo(name, other_key, _REFUSE)
    return _FieldInfo(name, other_key, _PRIM, leaf=_leaf_for(ann))


def _func(method: Any) -> Any:
    """The plain function behind a (class)method."""
    return getattr(method, "__func__", method)


def _resolve(fhir_type: Any, value: dict[str, Any]) -> Any:
    """The model class ``fhir_type``'s validator uses for the dict ``value`` (fhir_core's rule)."""
    if _func(fhir_type.__get_pydantic_core_schema__) is not _func(_FhirBase.__get_pydantic_core_schema__):
        raise _Unsupported
    validator = _func(fhir_type.fhir_model_validator)
    model_klass = fhir_type.get_model_klass()
    if validator is _func(_FhirBase.fhir_model_validator):
        return model_klass
    if validator is not _func(_FhirElementOrResourceBase.fhir_model_validator):
        raise _Unsupported
    klass = model_klass
    if "resourceType" in value:
        rt = value["resourceType"]
        if rt.__class__ is not str:
            raise _Unsupported
        try:
            klass = _import_string(_fc_constraints.FHIR_TYPES_MAPS[fhir_type._prefix + rt + "Type"])
        except Exception:
            raise _Unsupported from None
    if model_klass.__name__ == "Resource":
        if not klass.has_resource_base():
            raise _Unsupported
    elif model_klass.__name__ == "Element":
        if klass.has_resource_base():
            raise _Unsupported
    else:
        raise _Unsupported
    return klass


# --------------------------------------------------------------------------------------------
# plans


class _Plan:
    __slots__ = ("groups", "paths", "spec")

    def __init__(
        self,
        groups: tuple[tuple[_Leaf, Callable[[list[Any]], Any]], ...],
        paths: tuple[tuple[_Leaf, tuple[Any, ...]], ...],
        spec: tuple[tuple[tuple[Any, tuple[int, ...]], ...], tuple[tuple[Any, tuple[Any, ...]], ...]] = ((), ()),
    ) -> None:
        self.groups = groups
        self.paths = paths
        #: (annotation, leaf indices) per group and (annotation, path) per whole check: what the plan
        #: store (:mod:`mdtflag.compile.plan_store`) writes down
        self.spec = spec

    def check(self, resource: dict[str, Any], leaves: list[Any]) -> bool:
        """True when every primitive check passes (the resource is then valid)."""
        try:
            for leaf, get in self.groups:
                vals = get(leaves)
                memo = leaf.memo
                if memo is None:
                    leaf.batch(vals)
                    continue
                todo = [v for v in vals if _memo_key(v) not in memo]
                if todo:
                    leaf.batch(todo)
                    if len(memo) > _MEMO_SIZE:
                        memo.clear()
                    for v in todo:
                        k = _memo_key(v)
                        if k is not None:
                            memo.add(k)
            for leaf, path in self.paths:
                node: Any = resource
                for p in path:
                    node = node[p]
                leaf.single(node)
        except Exception:
            return False
        return True


_NO_PLAN = _Plan((), ())


class _Builder:
    def __init__(self) -> None:
        self.n = 0
        self.groups: dict[_Leaf, list[int]] = {}
        self.paths: list[tuple[_Leaf, tuple[Any, ...]]] = []

    def leaf(self, leaf: _Leaf) -> None:
        self.groups.setdefault(leaf, []).append(self.n)
        self.n += 1

    def whole(self, leaf: _Leaf, value: Any, path: tuple[Any, ...]) -> None:
        """Check ``value`` (a dict or list under a primitive field) whole, found by its path."""
        self.paths.append((leaf, path))
        self.n += _count_scalars(value)

    def model(self, klass: Any, data: dict[str, Any], inst: Any, path: tuple[Any, ...]) -> None:
        if type(inst) is not klass:
            raise _Unsupported
        info = _class_info(klass)
        for k, v in data.items():
            fi = info.get(k)
            if fi is None:
                if k in _SPECIAL_KEYS and v.__class__ in _SCALARS:  # popped by __init__
                    self.n += 1
                    continue
                raise _Unsupported
            if fi.other_key is not None and fi.other_key in data:
                raise _Unsupported
            kind = fi.kind
            t = v.__class__
            if kind == _PRIM:
                if t in _SCALARS:
                    self.leaf(fi.leaf)  # type: ignore[arg-type]
                else:
                    self.whole(fi.leaf, v, path + (k,))  # type: ignore[arg-type]
            elif kind == _PRIM_LIST:
                if t is list:
                    item_leaf = fi.item_leaf
                    for i, x in enumerate(v):
                        if x.__class__ in _SCALARS:
                            self.leaf(item_leaf)  # type: ignore[arg-type]
                        else:
                            self.whole(item_leaf, x, path + (k, i))  # type: ignore[arg-type]
                elif t in _SCALARS:
                    self.leaf(fi.leaf)  # type: ignore[arg-type]
                else:
                    self.whole(fi.leaf, v, path + (k,))  # type: ignore[arg-type]
            elif kind == _MODEL:
                sub = getattr(inst, fi.name, None)
                if v is None:
                    if sub is not None:
                        raise _Unsupported
                    self.n += 1
                elif t is dict:
                    self.model(_resolve(fi.fhir_type, v), v, sub, path + (k,))
                else:
                    raise _Unsupported
            elif kind == _MODEL_LIST:
                sub = getattr(inst, fi.name, None)
                if v is None:
                    if sub is not None:
                        raise _Unsupported
                    self.n += 1
                elif t is list:
                    if not isinstance(sub, list) or len(sub) != len(v):
                        raise _Unsupported
                    for i, x in enumerate(v):
                        if x is None:
                            if sub[i] is not None:
                                raise _Unsupported
                            self.n += 1
                        elif x.__class__ is dict:
                            self.model(_resolve(fi.fhir_type, x), x, sub[i], path + (k, i))
                        else:
                            raise _Unsupported
                else:
                    raise _Unsupported
            else:
                raise _Unsupported

    def plan(self) -> _Plan:
        return plan_of(
            tuple((leaf, tuple(idx)) for leaf, idx in self.groups.items()),
            tuple(self.paths),
        )


def plan_of(
    groups: tuple[tuple[_Leaf, tuple[int, ...]], ...], paths: tuple[tuple[_Leaf, tuple[Any, ...]], ...]
) -> _Plan:
    """The plan that checks each group of leaves (by index) and each whole value (by path) with its leaf."""
    getters = []
    for leaf, idx in groups:
        get: Callable[[list[Any]], Any] = _one(idx[0]) if len(idx) == 1 else operator.itemgetter(*idx)
        getters.append((leaf, get))
    spec = (
        tuple((leaf.annotation, idx) for leaf, idx in groups),
        tuple((leaf.annotation, path) for leaf, path in paths),
    )
    return _Plan(tuple(getters), paths, spec)


def _one(i: int) -> Callable[[list[Any]], tuple[Any]]:
    """Like ``operator.itemgetter(i)`` but always a 1-tuple (what the batch validator takes)."""

    def get(leaves: list[Any]) -> tuple[Any]:
        return (leaves[i],)

    return get


def _derive(cls: Any, resource: dict[str, Any], instance: Any, n_leaves: int) -> _Plan:
    global _ENABLED
    if not _ENABLED:
        return _NO_PLAN
    if _constraints_now() != _CONSTRAINTS_SNAPSHOT:
        _ENABLED = False  # models built from now on differ from our validators: always full
        _PLANS.clear()
        return _NO_PLAN
    b = _Builder()
    try:
        b.model(cls, resource, instance, ())
    except (_Unsupported, RecursionError):
        return _NO_PLAN
    except Exception:
        return _NO_PLAN
    if b.n != n_leaves:
        return _NO_PLAN
    return b.plan()


# --------------------------------------------------------------------------------------------
# entry point

_PLANS: dict[tuple[Any, ...], _Plan] = {}


def _full(cls: Any, resource: Any) -> Any:
    """The authority: ``cls.model_validate(resource)`` (counted in ``stats['full']``)."""
    stats["full"] += 1
    return cls.model_validate(resource)


class PlanSource(typing.Protocol):
    """Plans kept outside the process (see :mod:`mdtflag.compile.plan_store`), asked on a cache miss."""

    def plan(self, key: tuple[Any, ...], n_leaves: int) -> _Plan | None: ...

    def remember(self, key: tuple[Any, ...], plan: _Plan, n_leaves: int) -> None: ...


#: Where plans come from on a miss, besides deriving them (``None``: nowhere).
source: PlanSource | None = None


def validate(cls: Any, resource: dict[str, Any]) -> None:
    """Validate ``resource`` with FHIR model ``cls``: ``None`` when valid, else raise what
    ``cls.model_validate(resource)`` raises (it is then the one that decided)."""
    _validate(cls, _itself, resource)


def validate_named(name: str, resolve: Callable[[str], Any], resource: dict[str, Any]) -> bool:
    """As :func:`validate` with the class ``resolve(name)`` returns (one name, one class): a resource whose
    skeleton has a plan is checked without calling ``resolve`` (so without importing the model). False
    when ``resolve(name)`` returns None (no such model), True when valid."""
    return _validate(name, resolve, resource)


def _validate(token: Any, resolve: Callable[[Any], Any], resource: dict[str, Any]) -> bool:
    if not _ENABLED and (_ENABLED is False or not _setup()):
        return _full_if_known(resolve(token), resource)
    sk = skeleton(token, resource)
    if sk is None:
        return _full_if_known(resolve(token), resource)
    key, leaves = sk
    plan = _PLANS.get(key)
    if plan is None and source is not None:
        plan = source.plan(key, len(leaves))
        if plan is not None:
            stats["stored"] += 1
            _keep(key, plan)
    if plan is not None:
        if plan is not _NO_PLAN and plan.check(resource, leaves):
            stats["hits"] += 1
            return True
        if plan is not _NO_PLAN:
            stats["fallbacks"] += 1
        return _full_if_known(resolve(token), resource)
    cls = resolve(token)
    if cls is None:
        return False
    stats["misses"] += 1
    instance = _full(cls, resource)  # raises when invalid: no plan for this skeleton yet
    new_plan = _derive(cls, resource, instance, len(leaves))
    _keep(key, new_plan)
    if source is not None and new_plan is not _NO_PLAN:
        source.remember(key, new_plan, len(leaves))
    return True


def _itself(cls: Any) -> Any:
    return cls


def _full_if_known(cls: Any, resource: dict[str, Any]) -> bool:
    if cls is None:
        return False
    _full(cls, resource)
    return True


def _keep(key: tuple[Any, ...], plan: _Plan) -> None:
    if len(_PLANS) >= CACHE_SIZE:
        _PLANS.clear()
    _PLANS[key] = plan


def clear_cache() -> None:
    """Forget every plan and every remembered accepted value (tests, benchmarks)."""
    _PLANS.clear()
    for leaf in list(_LEAVES.values()):
        if leaf.memo is not None:
            leaf.memo.clear()
