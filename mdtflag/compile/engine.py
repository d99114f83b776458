"""Adapter over the durable-rules C engine (``durable_rules_engine``), narrow path only.

The engine evaluates *atoms* (a fact kind plus a conjunction of single-field tests) and
reports which facts satisfy which atom; everything above atoms happens in Python.
``durable.lang`` and ``durable.engine.Host`` are never imported (timer threads,
swallowed exceptions, use-after-free; see docs/architecture.md, section "Engine").

Every known engine fault is made unreachable by construction:

* rulesets are canonical JSON: one rule per distinct atom, one alias ``m``, a flat
  ``$and`` of one-key conditions starting with ``{"kind": K}``; no joins, ``$not``,
  ``$or``, ``any``, ``pri``, ``id``/``sid`` references (P3, P4, P5, P9, P14, P15, P17, P19);
* constants and facts are strictly typed against one schema (P11, P12, P13, P20);
* static limits are checked *before* ``create_ruleset`` (P10 hang, a full child table that
  hangs ``assert_facts``, errors 106/108/303, stack height accumulated across tree levels);
* property-name hashes (32-bit FNV-1, the engine compares only hashes) must not collide;
* one ``assert_facts`` call per patient, never an empty batch, never a rejected fact (P2);
* a sentinel rule fires in every session and state slots are warmed up, so
  ``delete_state`` never frees uninitialised pointers (P1);
* fact ids ``#i`` and the session's state-fact id ``sid-<sid>`` never share a hash (P20);
* one live session at a time, guarded by a lock (P6, P8).
"""

from __future__ import annotations

import importlib
import itertools
import os
import re
import threading
import weakref
from bisect import bisect_left, bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, Union, cast

import orjson

from mdtflag.fhir.facts.encoding import EngineType


class _Native(Protocol):
    """The part of the C extension ``durable_rules_engine`` the adapter calls (it ships no types)."""

    error: type[Exception]

    def create_ruleset(self, name: str, ruleset_json: str, /) -> int: ...
    def delete_ruleset(self, handle: int, /) -> None: ...
    def assert_facts(self, handle: int, facts_json: str, /) -> tuple[int, int]: ...
    def start_action_for_state(self, handle: int, offset: int, /) -> tuple[str, str] | None: ...
    def complete_and_start_action(self, handle: int, offset: int, /) -> str | None: ...
    def delete_state(self, handle: int, sid: str, /) -> None: ...


_dre = cast(_Native, importlib.import_module("durable_rules_engine"))

__all__ = [
    "Atom",
    "EncodeError",
    "Engine",
    "EngineError",
    "EngineLimitError",
    "Op",
    "Test",
]

Op = Literal["eq", "ne", "lt", "lte", "gt", "gte"]
Scalar = Union[str, int, bool]
FactValue = Union[str, int, bool, None]  # None: unknown, dropped by the encoder


@dataclass(frozen=True)
class Test:
    """One single-field test: ``field op value``."""

    __test__ = False  # not a pytest test class

    field: str
    op: Op
    value: Scalar


@dataclass(frozen=True)
class Atom:
    """A fact kind plus a conjunction of tests (empty: any fact of this kind)."""

    kind: str
    tests: tuple[Test, ...]


class EngineError(Exception):
    """The engine failed for one patient (the message names the engine code)."""


class EngineLimitError(EngineError):
    """A ruleset the engine cannot hold or the adapter refuses; raised before ``create_ruleset``."""


class EncodeError(EngineError):
    """A fact the strict encoder refuses."""


# --- limits of the durable-rules 2.0.28 C engine (read in its rete.c and events.c; tests/test_engine_canaries.py) --
_MAX_RULES = 4096  # rete.c MAX_ACTIONS, error 106; includes the sentinel rule
# NEXT_BUCKET_LENGTH is 512 open-addressing slots searched until an empty one: the 513th child
# makes create_ruleset spin forever, and with all 512 filled any fact reaching the node makes
# assert_facts spin forever. So at most 511 distinct child tests per alpha node.
_MAX_CHILD_TESTS = 511
_MAX_STACK = 64  # events.c MAX_STACK_SIZE: pending alpha nodes for one fact, error 303
_MAX_PROPERTIES = 240  # engine: 252 user properties (error 302); margin for id/sid
_MAX_INT = 2**53  # ints in [-2**53, 2**53]
_MAX_STRING_BYTES = 65535  # JSON-escaped UTF-8 length; the engine keeps lengths in 16 bits
_MAX_FACTS = 100_000  # facts per patient; "#i" ids are hash-collision free far beyond this
_MAX_TESTS = 256  # tests per atom (adapter limit: keeps the tree walk shallow)
_RESERVED_FIELDS = frozenset({"id", "sid", "kind", "pad"})
_WARMUP_SLOTS = 4
_SENTINEL = "__session__"
_SENTINEL_PREFIX = '{"__session__":'
_EMPTY: frozenset[int] = frozenset()
_MARK = '":{"m":{"id":"#'  # how the engine serialises one of our facts in an action
_MARK_LEN = len(_MARK)

_OPS: dict[str, str | None] = {
    "eq": None,
    "ne": "$neq",
    "lt": "$lt",
    "lte": "$lte",
    "gt": "$gt",
    "gte": "$gte",
}
_OP_ORDER = {op: i for i, op in enumerate(_OPS)}
_EQ_ONLY = frozenset({"eq", "ne"})
_FIELD_TYPES: dict[str, type] = {"str": str, "int": int, "bool": bool}
_FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_CONTROL = re.compile(r"[\x00-\x1f]")
_ERROR_NAMES = {
    1: "event not handled",
    2: "event observed (duplicate id)",
    3: "event deferred",
    101: "out of memory",
    106: "rule limit exceeded",
    108: "rule beta limit exceeded",
    201: "parse value",
    202: "parse string",
    203: "parse number",
    204: "parse object",
    302: "too many properties",
    303: "alpha stack overflow",
    304: "too many messages in frame",
    309: "sid not found",
    311: "property not found",
    314: "property too large",
}
_CODE = re.compile(r"error code: (\d+)")

_TestKey = tuple[str, str, Scalar]  # (field, op, value), canonical and typed


def _fnv1_32(text: str) -> int:
    """The engine's 32-bit FNV-1 (C ``char`` is signed: bytes >= 0x80 are sign-extended)."""
    h = 0x811C9DC5
    for b in text.encode("utf-8"):
        h ^= b if b < 0x80 else (b | 0xFFFFFF00)
        h = (h * 16777619) & 0xFFFFFFFF
    return h


class _IdHashes:
    """Hashes of the fact ids ``#0``, ``#1``, … grown on demand (one table per process)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._index: dict[int, int] = {}
        self._size = 0

    def first_index(self, h: int, n: int) -> int | None:
        """The smallest ``i < n`` with ``hash("#i") == h``, if any."""
        if self._size < n:
            self._grow(n)
        i = self._index.get(h)
        return i if i is not None and i < n else None

    def _grow(self, n: int) -> None:
        with self._lock:
            for i in range(self._size, n):
                h = _fnv1_32(f"#{i}")
                if h in self._index:  # pragma: no cover - none below 1,279,192
                    raise EngineError(f"fact ids `#{self._index[h]}` and `#{i}` share a hash")
                self._index[h] = i
            self._size = max(self._size, n)


_ID_HASHES = _IdHashes()
_RULESET_SERIAL = itertools.count()


def _engine_error(exc: BaseException, what: str) -> EngineError:
    text = str(exc)
    m = _CODE.search(text)
    if m:
        code = int(m.group(1))
        return EngineError(f"engine error {code} ({_ERROR_NAMES.get(code, 'unknown')}) {what}")
    return EngineError(f"engine failure {what}: {type(exc).__name__}: {text}")


def _check_string(s: str, where: str, error: type[EngineError]) -> None:
    if _CONTROL.search(s):
        raise error(f"{where}: string contains a control character")
    if not s.isascii():
        try:
            raw = s.encode("utf-8")
        except UnicodeEncodeError:
            raise error(f"{where}: string is not valid unicode (lone surrogate)") from None
        size = len(raw)
    else:
        size = len(s)
    if size >= _MAX_STRING_BYTES // 2 and size + s.count('"') + s.count("\\") > _MAX_STRING_BYTES:
        raise error(f"{where}: string longer than {_MAX_STRING_BYTES} bytes")


def _check_value(value: object, ftype: str, where: str, error: type[EngineError]) -> None:
    if type(value) is not _FIELD_TYPES[ftype]:
        raise error(f"{where}: expected {ftype}, got {type(value).__name__} `{value!r:.40}`")
    if type(value) is int and not -_MAX_INT <= value <= _MAX_INT:
        raise error(f"{where}: int `{value}` outside ±2**53")
    if type(value) is str:
        _check_string(value, where, error)


def _describe(path: Sequence[_TestKey]) -> str:
    return " & ".join(f"{f} {op} {v!r}" for f, op, v in path) or "root"


class _Node:
    """One alpha node of the simulated rete tree."""

    __slots__ = ("children",)

    def __init__(self) -> None:
        self.children: dict[_TestKey, _Node] = {}


def _max_simultaneous(ftype: str, tests: list[tuple[str, Scalar]]) -> int:
    """How many of these sibling tests on one field a single value can satisfy at once."""
    eq = {v for op, v in tests if op == "eq"}
    ne = {v for op, v in tests if op == "ne"}
    if ftype == "bool":
        candidates: list[Scalar] = [True, False]
    elif ftype == "str":
        candidates = [*eq, *ne, "\x00"]  # "\x00": a value equal to no constant
    else:
        return _max_simultaneous_int(cast("list[tuple[str, int]]", tests))
    return max((v in eq) + len(ne) - (v in ne) for v in candidates)


def _max_simultaneous_int(tests: list[tuple[str, int]]) -> int:
    """The same for int tests: try every constant and its neighbours (tests are step functions)."""
    eq = {v for op, v in tests if op == "eq"}
    ne = {v for op, v in tests if op == "ne"}
    lt = sorted(v for op, v in tests if op == "lt")
    lte = sorted(v for op, v in tests if op == "lte")
    gt = sorted(v for op, v in tests if op == "gt")
    gte = sorted(v for op, v in tests if op == "gte")
    candidates = {c + d for _, c in tests for d in (-1, 0, 1)}
    best = 0
    for v in candidates:
        if -_MAX_INT <= v <= _MAX_INT:
            n = (v in eq) + len(ne) - (v in ne)
            n += len(lt) - bisect_right(lt, v)  # c > v
            n += len(lte) - bisect_left(lte, v)  # c >= v
            n += bisect_left(gt, v)  # c < v
            n += bisect_right(gte, v)  # c <= v
            best = max(best, n)
    return best


class Engine:
    """A compiled ruleset of atoms; ``match`` evaluates one patient at a time."""

    def __init__(
        self, atoms: Sequence[Atom], schema: Mapping[str, Mapping[str, EngineType]], *, limits_checked: bool = False
    ) -> None:
        """``limits_checked``: these atoms and this schema passed the limit checks in an engine built by the
        same code before (a compiled rule set read back from the authenticated cache); not checked again."""
        self._atoms: tuple[Atom, ...] = tuple(atoms)
        self._types: dict[str, dict[str, str]] = self._check_schema(schema)
        canon: dict[tuple[str, tuple[_TestKey, ...]], int] = {}
        self._atom_rule: tuple[int, ...] = tuple(
            canon.setdefault(self._canonical(i, a), len(canon)) for i, a in enumerate(self._atoms)
        )
        self._rules: tuple[tuple[str, tuple[_TestKey, ...]], ...] = self._path_order(tuple(canon))
        if not limits_checked:
            self._check_limits()
        # fields sent to the engine, per kind; kinds without atoms are never sent
        needed: dict[str, set[str]] = {}
        for kind, tests in self._rules:
            needed.setdefault(kind, set()).update(f for f, _, _ in tests)
        self._sent: dict[str, frozenset[str]] = {k: frozenset(v | {"kind"}) for k, v in needed.items()}
        self._classes: dict[str, dict[str, type]] = {
            k: {"kind": str, **{f: _FIELD_TYPES[t] for f, t in v.items()}} for k, v in self._types.items()
        }
        self._rule_index: dict[str, int] = {f"a{i}": i for i in range(len(self._rules))}
        self._lock = threading.Lock()
        self._sids = itertools.count()
        self._broken: str | None = None
        self._name = f"mdtflag_{os.getpid()}_{next(_RULESET_SERIAL)}_{os.urandom(4).hex()}"
        try:
            self._handle: int = _dre.create_ruleset(self._name, self._ruleset_json())
        except (_dre.error, MemoryError) as exc:
            raise _engine_error(exc, "while creating the ruleset") from exc
        self._finalizer = weakref.finalize(self, _dre.delete_ruleset, self._handle)
        self._warm_up()

    @property
    def atoms(self) -> tuple[Atom, ...]:
        """The atoms, in the order given."""
        return self._atoms

    # --- compile time -------------------------------------------------------------------
    @staticmethod
    def _check_schema(schema: Mapping[str, Mapping[str, EngineType]]) -> dict[str, dict[str, str]]:
        types: dict[str, dict[str, str]] = {}
        for kind, fields in schema.items():
            if type(kind) is not str or not kind:
                raise EngineLimitError(f"kind `{kind!r}` must be a non-empty string")
            _check_string(kind, f"kind `{kind}`", EngineLimitError)
            if len(fields) + 1 > _MAX_PROPERTIES:
                raise EngineLimitError(f"kind `{kind}` has {len(fields) + 1} properties (limit {_MAX_PROPERTIES})")
            hashes = {_fnv1_32(n): n for n in ("kind", "id", "sid", "$s")}
            for name, ftype in fields.items():
                if type(name) is not str or not _FIELD_NAME.fullmatch(name):
                    bad = "contains `.` or `$`" if "." in str(name) or "$" in str(name) else "is not an identifier"
                    raise EngineLimitError(f"field `{name}` of kind `{kind}` {bad}")
                if name in _RESERVED_FIELDS:
                    raise EngineLimitError(f"field `{name}` of kind `{kind}` is reserved")
                if ftype not in _FIELD_TYPES:
                    raise EngineLimitError(f"field `{kind}.{name}` has unknown type `{ftype}`")
                h = _fnv1_32(name)
                if h in hashes:
                    raise EngineLimitError(f"fields `{hashes[h]}` and `{name}` of kind `{kind}` share an engine hash")
                hashes[h] = name
            types[kind] = dict(fields)
        return types

    def _canonical(self, i: int, atom: Atom) -> tuple[str, tuple[_TestKey, ...]]:
        where = f"atom {i}"
        if not isinstance(atom, Atom):
            raise EngineLimitError(f"{where}: expected Atom, got {type(atom).__name__}")
        fields = self._types.get(atom.kind) if type(atom.kind) is str else None
        if fields is None:
            raise EngineLimitError(f"{where}: unknown kind `{atom.kind!r}`")
        if len(atom.tests) > _MAX_TESTS:
            raise EngineLimitError(f"{where}: {len(atom.tests)} tests (limit {_MAX_TESTS})")
        keys: set[_TestKey] = set()
        for t in atom.tests:
            if not isinstance(t, Test):
                raise EngineLimitError(f"{where}: expected Test, got {type(t).__name__}")
            ftype = fields.get(t.field) if type(t.field) is str else None
            if ftype is None:
                raise EngineLimitError(f"{where}: unknown field `{t.field!r}` for kind `{atom.kind}`")
            if t.op not in _OPS:
                raise EngineLimitError(f"{where}: unknown operator `{t.op!r}`")
            if ftype != "int" and t.op not in _EQ_ONLY:
                raise EngineLimitError(f"{where}: {ftype} field `{t.field}` allows only eq/ne, not `{t.op}`")
            _check_value(t.value, ftype, f"{where}: constant for `{t.field}`", EngineLimitError)
            keys.add((t.field, t.op, t.value))
        tests = tuple(sorted(keys, key=lambda k: (k[0], _OP_ORDER[k[1]], k[2])))
        return atom.kind, tests

    @staticmethod
    def _path_order(
        rules: tuple[tuple[str, tuple[_TestKey, ...]], ...],
    ) -> tuple[tuple[str, tuple[_TestKey, ...]], ...]:
        """Order each rule's tests by how many distinct tests its field has within the kind.

        Fields with few distinct tests go first, so rules share long alpha-tree prefixes and
        the many-valued tests spread over several parents (more room under the child limit).
        """
        distinct: dict[tuple[str, str], set[_TestKey]] = {}
        for kind, tests in rules:
            for key in tests:
                distinct.setdefault((kind, key[0]), set()).add(key)
        return tuple(
            (kind, tuple(sorted(tests, key=lambda k: (len(distinct[kind, k[0]]), k[0], _OP_ORDER[k[1]], k[2]))))
            for kind, tests in rules
        )

    def _check_limits(self) -> None:
        if len(self._rules) + 1 > _MAX_RULES:
            raise EngineLimitError(f"{len(self._rules) + 1} rules incl. the sentinel (limit {_MAX_RULES})")
        root = _Node()
        root.children[("$s", "eq", 1)] = _Node()
        for kind, tests in self._rules:
            node = root
            for key in (("kind", "eq", kind), *tests):
                node = node.children.setdefault(key, _Node())
        self._peak(root, (), "")

    def _peak(self, node: _Node, path: tuple[_TestKey, ...], kind: str) -> int:
        """Check one node; return the worst alpha-stack height below it (events.c handleAlpha)."""
        if len(node.children) > _MAX_CHILD_TESTS:
            raise EngineLimitError(
                f"{len(node.children)} distinct tests under `{_describe(path)}` "
                f"(limit {_MAX_CHILD_TESTS}: more makes the engine hang)"
            )
        if not node.children:
            return 0
        by_field: dict[str, list[tuple[str, Scalar]]] = {}
        for f, op, v in node.children:
            by_field.setdefault(f, []).append((op, v))
        if path:
            types = self._types[kind]
            width = sum(_max_simultaneous(types[f], t) for f, t in by_field.items())
        else:
            width = 1  # root: one kind (user facts) or `$s` (the state fact)
        deepest = 0
        for key, child in node.children.items():
            deepest = max(deepest, self._peak(child, (*path, key), kind or str(key[2])))
        peak = max(width, width - 1 + deepest)
        if peak > _MAX_STACK:
            raise EngineLimitError(
                f"a fact can leave {peak} pending tests under `{_describe(path)}` "
                f"(limit {_MAX_STACK} simultaneous sibling matches)"
            )
        return peak

    def _ruleset_json(self) -> str:
        rules: dict[str, object] = {}
        for i, (kind, tests) in enumerate(self._rules):
            conds: list[object] = [{"kind": kind}]
            for field, op, value in tests:
                name = _OPS[op]
                conds.append({field: value} if name is None else {name: {field: value}})
            rules[f"a{i}"] = {"all": [{"m": {"$and": conds}}]}
        rules[_SENTINEL] = {"all": [{"m": {"$s": 1}}]}
        return orjson.dumps(rules).decode()

    def _warm_up(self) -> None:
        """Open, fire and delete a few sessions so reused state slots hold no stale pointers."""
        sids = [f"w{k}" for k in range(_WARMUP_SLOTS)]
        payloads = [orjson.dumps([{"id": "#0", "sid": sid}]).decode() for sid in sids]
        try:
            offsets = [_dre.assert_facts(self._handle, p)[1] for p in payloads]
            for off in offsets:
                fired: object = _dre.start_action_for_state(self._handle, off)
                while fired is not None:
                    fired = _dre.complete_and_start_action(self._handle, off)
            for sid in sids:
                _dre.delete_state(self._handle, sid)
        except (_dre.error, MemoryError) as exc:
            self._broken = "warm-up failed"
            raise _engine_error(exc, "while warming up the ruleset") from exc

    # --- run time -----------------------------------------------------------------------
    def _encode(self, facts: Sequence[Mapping[str, FactValue]], sid: str) -> list[dict[str, FactValue]]:
        """Check every fact strictly; keep the kinds and fields some atom tests ("id" first)."""
        out: list[dict[str, FactValue]] = []
        classes_by_kind = self._classes
        sent_by_kind = self._sent
        lo, hi = -_MAX_INT, _MAX_INT
        for i, fact in enumerate(facts):
            kind = fact.get("kind")
            if type(kind) is not str or (classes := classes_by_kind.get(kind)) is None:
                raise EncodeError(f"fact {i}: unknown kind `{kind!r}`")
            sent = sent_by_kind.get(kind)
            enc: dict[str, FactValue] = {"id": f"#{i}", "sid": sid}
            for name, value in fact.items():
                if type(value) is not classes.get(name):  # strict: bool is not int, no subclasses
                    if value is None and name in classes and name != "kind":
                        continue  # unknown values are absent
                    self._refuse(i, kind, name, value)
                if type(value) is int:
                    if not lo <= value <= hi:
                        self._refuse(i, kind, name, value)
                elif type(value) is str and not (len(value) < 4096 and value.isprintable()):
                    _check_string(value, f"fact {i}: field `{name}`", EncodeError)
                if sent is not None and name in sent:
                    enc[name] = value
            if sent is not None:
                out.append(enc)
        return out

    def _refuse(self, i: int, kind: str, name: str, value: object) -> None:
        ftype = self._types[kind].get(name, "str" if name == "kind" else None)
        if ftype is None:
            raise EncodeError(f"fact {i}: unknown field `{name}` for kind `{kind}`")
        _check_value(value, ftype, f"fact {i}: field `{name}`", EncodeError)
        raise EncodeError(f"fact {i}: field `{name}`: refused value `{value!r:.40}`")  # pragma: no cover

    def _new_sid(self, n: int) -> str:
        while True:
            sid = f"p{next(self._sids)}"
            if _ID_HASHES.first_index(_fnv1_32(f"sid-{sid}"), n) is None:
                return sid

    def match(self, facts: Sequence[Mapping[str, FactValue]]) -> list[frozenset[int]]:
        """For each atom (same order as given), the indices of the facts that satisfy it."""
        n = len(facts)
        if n > _MAX_FACTS:
            raise EngineError(f"patient has {n} facts (limit {_MAX_FACTS})")
        sid = self._new_sid(n)
        encoded = self._encode(facts, sid)
        by_rule: list[frozenset[int]] = [_EMPTY] * len(self._rules)
        if encoded:
            grouped: dict[str, list[str]] = {}
            for message in self._run(orjson.dumps(encoded).decode(), sid):
                # '{"a12":{"m":{"id":"#3",...}}}': our rule names, our field order
                head, mark, tail = message.partition(_MARK)
                if not mark or not head.startswith('{"a'):
                    raise EngineError(f"unexpected engine output `{message:.80}`")
                grouped.setdefault(head[2:], []).append(tail[: tail.find('"')])
            rule_index = self._rule_index
            for rule, ids in grouped.items():
                r = rule_index.get(rule)
                fired = frozenset(map(int, ids))
                if r is None or max(fired) >= n:
                    raise EngineError(f"engine reported unknown rule `{rule}` or fact id")
                by_rule[r] = fired
        return [by_rule[r] for r in self._atom_rule]

    def _run(self, payload: str, sid: str) -> list[str]:
        """Assert one patient, drain every action, delete the session; the action messages."""
        handle = self._handle
        messages: list[str] = []
        with self._lock:
            if self._broken:
                raise EngineError(f"engine unusable: {self._broken}")
            failed = True
            try:
                code, offset = _dre.assert_facts(handle, payload)
                if code not in (0, 1):
                    name = _ERROR_NAMES.get(code, "unknown")
                    raise EngineError(f"engine code {code} ({name}) while asserting facts")
                started = _dre.start_action_for_state(handle, offset)
                message = None if started is None else started[1]
                append = messages.append
                while message is not None:
                    append(message)
                    message = _dre.complete_and_start_action(handle, offset)
                failed = False
            except MemoryError as exc:
                self._broken = "out of memory"
                raise _engine_error(exc, "while evaluating a patient") from exc
            except _dre.error as exc:
                raise _engine_error(exc, "while evaluating a patient") from exc
            finally:
                try:
                    _dre.delete_state(handle, sid)
                except (_dre.error, MemoryError) as exc:
                    if not failed:
                        raise _engine_error(exc, "while deleting the session") from exc
        sentinels = [m for m in messages if m.startswith(_SENTINEL_PREFIX)]
        if len(sentinels) != 1:
            raise EngineError(f"session sentinel fired {len(sentinels)} times (expected 1)")
        messages.remove(sentinels[0])
        return messages


def fact_engine(atoms: Sequence[Atom], *, limits_checked: bool = False) -> Engine:
    """The engine for ``atoms`` over the fact kinds and field types of mdtflag's fact models (``limits_checked``:
    see :class:`Engine`)."""
    from mdtflag.fhir.facts.encoding import ENGINE_TYPE
    from mdtflag.fhir.facts.models import FACT_SCHEMA

    schema: dict[str, dict[str, EngineType]] = {
        k: {f: ENGINE_TYPE[t] for f, t in v.items()} for k, v in FACT_SCHEMA.items()
    }
    return Engine(atoms, schema, limits_checked=limits_checked)
