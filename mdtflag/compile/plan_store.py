"""Validation plans kept on disk, so that a new process validates resources of known shapes without
importing and building fhir.resources' models.

:mod:`mdtflag.fhir.fastvalid` derives a *plan* for each resource skeleton fhir.resources has accepted
once: which primitive validator of fhir_core checks which scalar leaf. In a long-running process
the plans live in memory; a command that evaluates one patient and exits would derive them again,
and the first validation of each resource type imports its model and builds its pydantic validators
(about 0.2 s for a typical patient, most of the command's time). The store keeps the plans between
processes:

* **What is written**: per skeleton, a digest of its tokens (BLAKE2b of their JSON encoding), the
  number of leaves and the plan as data -- each group of leaf indices and each whole-value path with
  the *name* of its primitive annotation (``opt:DateTimeType`` is ``Optional[fhirtypes.DateTimeType]``
  of ``fhir.resources.R4B.fhirtypes``). A plan with an annotation that has no such name stays in
  memory only. Nothing is executed when the store is read: it is JSON, and names are looked up in a
  fixed table built from ``fhirtypes``; each rebuilt annotation is checked equal to the one named.
* **When it is valid**: the file's name and header carry a key over mdtflag's code (every file of the
  package, as for compiled rule sets), the installed fhir.resources, fhir_core, pydantic and
  pydantic-core, Python's version and fhir_core's run-time constraints. Another version is another
  file; a plan is only ever read by the code that could have derived it.
* **Trust**: the file is authenticated like a compiled rule set (:mod:`mdtflag.compile.cache`): an
  HMAC-SHA256 with the user's secret key over header and payload; a file that fails any check is
  ignored (and replaced on the next write). A forged plan could otherwise skip checks.
* **Soundness** is unchanged: a plan from the store is the plan fhir.resources' acceptance gave for
  the same skeleton, so its checks give ``model_validate``'s verdict (``docs/fast-validation.md``);
  when a check fails, the model is imported and decides, as with a plan derived in the process.
* **Writing**: at the end of the process, when it derived plans the store did not have: the file is
  read again, the new plans added (at most :data:`MAX_PLANS`; beyond that the oldest go) and the
  file replaced atomically. Two processes writing at once may lose one's additions, never the file.

:func:`attach` turns the store on for the process (the command line, the service and batch workers
do, through :func:`mdtflag.api.cached_evaluator`; ``MDTFLAG_NO_CACHE=1`` turns it off with the rest of
the cache); a plain :class:`mdtflag.api.Evaluator` does not touch the disk.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import sys
import threading
import typing
from pathlib import Path
from typing import Any, Final, Optional

import orjson

from mdtflag.compile.cache import CompiledCache, code_stamp, package_stamp, seal, unseal
from mdtflag.fhir import fastvalid

__all__ = [
    "FORMAT",
    "MAX_PLANS",
    "PlanStore",
    "annotation",
    "attach",
    "attached",
    "describe",
    "detach",
    "digest",
    "prepare_models",
]

#: First line of the file; a new layout gets a new format.
FORMAT: Final = b"mdtflag-validation-plans/1\n"
#: Most plans kept in the file (about 0.3 KB each).
MAX_PLANS: Final = 8192

# ---------------------------------------------------------------------------------------------
# names of annotations

_NAMED: dict[str, Any] = {}
_NAME_OF: dict[Any, list[str]] = {}
_KINDS: Final = ("opt", "optlist", "bare")


def _fixed() -> dict[str, Any]:
    from typing import List, Union  # noqa: UP035 - the models' own spelling, compared with ==

    return {
        "bool?": Optional[bool],
        "bool|None": bool | None,
        "comments": Union[str, List[str], None],  # noqa: UP006
    }


def _build(kind: str, value: Any) -> Any:
    from typing import List  # noqa: UP035

    optional: Any = Optional  # subscripted with run-time values
    list_of: Any = List  # noqa: UP006
    if kind == "opt":
        return optional[value]
    if kind == "optlist":
        return optional[list_of[optional[value]]]
    return value


def annotation(name: str) -> Any:
    """The annotation a name stands for (built on first use); ``KeyError`` for a name not in the table."""
    got = _NAMED.get(name)
    if got is None:
        fixed = _fixed()
        if name in fixed:
            got = fixed[name]
        else:
            import fhir.resources.R4B.fhirtypes as ft

            kind, _, attr = name.partition(":")
            value = vars(ft).get(attr)
            if kind not in _KINDS or typing.get_origin(value) is not typing.Annotated:
                raise KeyError(name)
            got = _build(kind, value)
        _NAMED[name] = got
    return got


def _names() -> dict[Any, list[str]]:
    """Annotation -> its names, for every primitive annotation of the table (built once)."""
    if not _NAME_OF:
        import fhir.resources.R4B.fhirtypes as ft

        names = list(_fixed()) + [
            f"{kind}:{attr}"
            for attr in sorted(vars(ft))
            if typing.get_origin(getattr(ft, attr)) is typing.Annotated
            for kind in _KINDS
        ]
        back: dict[Any, list[str]] = {}
        for name in names:
            try:
                back.setdefault(annotation(name), []).append(name)  # equal ones of other types: X | None, Optional[X]
            except TypeError:  # unhashable: cannot be looked up, so never named
                continue
        _NAME_OF.update(back)
    return _NAME_OF


def describe(ann: Any) -> Optional[str]:
    """The name the store writes for a primitive annotation, or None when it has none."""
    try:
        names = _names().get(ann, ())
    except TypeError:
        return None
    for name in names:
        if type(annotation(name)) is type(ann) and annotation(name) == ann:
            return name
    return None


# ---------------------------------------------------------------------------------------------
# skeleton digests

_TYPE_CODES: Final[dict[Any, str]] = {
    dict: "{",
    list: "[",
    str: "s",
    int: "i",
    float: "f",
    bool: "b",
    type(None): "n",
}


def digest(key: tuple[Any, ...]) -> Optional[str]:
    """A digest of a skeleton whose first token is a name (a ``str``), or None for another skeleton.

    Tokens are encoded without ambiguity (a string as ``'`` + itself, a type by its code, the end of
    a container as ``.``, a raw value under ``resourceType`` as ``=`` + its JSON) and the JSON list of
    the codes is hashed."""
    if not key or key[0].__class__ is not str:
        return None
    codes: list[str] = []
    add = codes.append
    for t in key:
        c = t.__class__
        if c is str:
            add("'" + t)
        elif t is ...:
            add(".")
        elif c is type:
            code = _TYPE_CODES.get(t)
            if code is None:
                return None
            add(code)
        elif c is bool:
            add("=true" if t else "=false")
        elif c is int:
            add("=i" + str(t))
        elif c is float:
            add("=f" + repr(t))
        elif t is None:
            add("=null")
        else:
            return None
    return hashlib.blake2b(orjson.dumps(codes), digest_size=16).hexdigest()


# ---------------------------------------------------------------------------------------------
# the store


def _store_key() -> str:
    """What the plans depend on: mdtflag's code, the model and validation packages, fhir_core's constraints."""
    h = hashlib.sha256(FORMAT)
    h.update(code_stamp())
    for name in ("fhir.resources", "fhir_core", "pydantic", "pydantic_core"):
        h.update(package_stamp(name).encode() + b"\n")
    h.update(f"python {sys.version}\n".encode())
    h.update(repr(fastvalid._constraints_now()).encode())
    return h.hexdigest()


class PlanStore:
    """The plans of one cache folder; a :class:`mdtflag.fhir.fastvalid.PlanSource`."""

    def __init__(self, cache: CompiledCache) -> None:
        self.cache = cache
        self._lock = threading.Lock()
        self._plans: Optional[dict[str, Any]] = None  # digest -> [n_leaves, groups, paths], read on first use
        self._new: dict[str, Any] = {}
        self._key: Optional[str] = None  # see _store_key, computed on first use

    # ---- reading
    def _where(self) -> tuple[Optional[Path], str, Optional[bytes]]:
        """The file, its key and the user's secret (no file without a secret)."""
        if self._key is None:
            self._key = _store_key()
        key = self._key
        return self.cache.path_for("plans-" + key[:40], ".plans"), key, self.cache.secret()

    def _read(self) -> dict[str, Any]:
        path, key, secret = self._where()
        blob = self.cache.read_file(path) if path is not None and secret is not None else None
        payload = unseal(FORMAT, key, secret, blob) if blob is not None and secret is not None else None
        if payload is None:
            return {}
        try:
            plans = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return {}
        return plans if isinstance(plans, dict) else {}

    def plans(self) -> dict[str, Any]:
        with self._lock:
            if self._plans is None:
                self._plans = self._read()
            return self._plans

    def plan(self, key: tuple[Any, ...], n_leaves: int) -> Optional[fastvalid._Plan]:
        d = digest(key)
        if d is None:
            return None
        raw = self.plans().get(d)
        if raw is None:
            return None
        try:
            return _materialize(raw, n_leaves)
        except Exception:  # a stored plan that cannot be rebuilt is no plan: the model decides
            return None

    # ---- writing
    def remember(self, key: tuple[Any, ...], plan: fastvalid._Plan, n_leaves: int) -> None:
        d = digest(key)
        if d is None:
            return
        raw = _portable(plan, n_leaves)
        if raw is not None:
            with self._lock:
                if len(self._new) < MAX_PLANS:  # a long-running process meeting endless shapes stays bounded
                    self._new[d] = raw

    def save(self) -> bool:
        """Add the plans derived in this process to the file; False when nothing was written."""
        with self._lock:
            new, self._new = self._new, {}
        if not new:
            return False
        path, key, secret = self._where()
        if path is None or secret is None:
            return False
        merged = {k: v for k, v in self._read().items() if k not in new}
        merged.update(new)
        if len(merged) > MAX_PLANS:
            merged = dict(list(merged.items())[len(merged) - MAX_PLANS :])
        return self.cache.write_file(path, seal(FORMAT, key, secret, orjson.dumps(merged)))


def _portable(plan: fastvalid._Plan, n_leaves: int) -> Optional[list[Any]]:
    groups_spec, paths_spec = plan.spec
    groups = []
    for ann, idx in groups_spec:
        name = describe(ann)
        if name is None:
            return None
        groups.append([name, list(idx)])
    paths = []
    for ann, path in paths_spec:
        name = describe(ann)
        if name is None or not all(p.__class__ in (str, int) for p in path):
            return None
        paths.append([name, list(path)])
    return [n_leaves, groups, paths]


def _materialize(raw: Any, n_leaves: int) -> Optional[fastvalid._Plan]:
    count, groups, paths = raw
    taken = 0
    built_groups = []
    for name, idx in groups:
        if not idx or not all(i.__class__ is int and 0 <= i < n_leaves for i in idx):
            return None
        taken += len(idx)
        built_groups.append((fastvalid._leaf_for(annotation(name)), tuple(idx)))
    if count != n_leaves or taken > n_leaves:
        return None
    built_paths = tuple((fastvalid._leaf_for(annotation(name)), tuple(path)) for name, path in paths)
    return fastvalid.plan_of(tuple(built_groups), built_paths)


# ---------------------------------------------------------------------------------------------
# the process's store

_ATTACHED: list[PlanStore] = []
_EXIT_HOOK: list[bool] = []


def attach(cache: CompiledCache) -> PlanStore:
    """Use the plans of ``cache``'s folder in this process and add new ones to it at exit (once)."""
    if _ATTACHED and _ATTACHED[0].cache.folder == cache.folder:
        return _ATTACHED[0]
    store = PlanStore(cache)
    _ATTACHED[:] = [store]
    fastvalid.source = store
    if not _EXIT_HOOK:
        _EXIT_HOOK.append(True)
        atexit.register(_save_at_exit)
    return store


def attached() -> Optional[PlanStore]:
    return _ATTACHED[0] if _ATTACHED else None


def prepare_models() -> int:
    """Build the R4B models of every resource type facts are read from, now; how many. With stored plans a
    model is otherwise built at the first resource of a shape not met before: a server calls this before
    it is ready, so that no request pays for it."""
    from mdtflag.fhir.load import FACT_RESOURCE_TYPES
    from mdtflag.fhir.validation import model_class

    return sum(model_class(rt) is not None for rt in sorted(FACT_RESOURCE_TYPES))


def detach() -> None:
    """Stop using a store (what was derived and not saved is dropped)."""
    _ATTACHED.clear()
    fastvalid.source = None


def _save_at_exit() -> None:
    store = attached()
    if store is not None:
        with contextlib.suppress(Exception):  # the store is only an aid: never fail an exit for it
            store.save()
