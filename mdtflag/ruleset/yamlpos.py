"""Safe YAML reading that keeps the line and column of every mapping, key and list item.

Mappings come back as ``dict`` with two extra keys, ``__pos__`` (line, col of the mapping) and
``__keypos__`` ({key: (line, col)}); lists as ``PosList`` (a list with ``.pos`` and ``.item_pos``).
Only YAML's safe types are built (PyYAML ``SafeLoader``): no tags that construct objects.
"""

from __future__ import annotations

import math
import re
from typing import Any, Final

import yaml
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.reader import Reader
from yaml.resolver import Resolver

from mdtflag.ruleset.diagnostics import Diagnostics, Pos
from mdtflag.ruleset.positions import KEYPOS_KEY, POS_KEY, PosList, strip

__all__ = ["KEYPOS_KEY", "MAX_DEPTH", "MAX_NODES", "POS_KEY", "PosList", "locate", "locate_pos", "read_yaml", "strip"]

MAX_NODES = 200_000
MAX_DEPTH = 64


def _mark(node: yaml.Node) -> tuple[int, int]:
    return (node.start_mark.line + 1, node.start_mark.column + 1)


class _TooDeep(Exception):
    def __init__(self, mark: yaml.Mark) -> None:
        super().__init__(f"document is nested deeper than {MAX_DEPTH} levels (limit)")
        self.mark = mark


class _DepthLimit:
    """The nesting limit applied while the node tree is built (PyYAML's composer, mixed into a loader).

    PyYAML's scanner and parser are iterative but its composer recurses once per level, so a document
    nested a few hundred levels deep (``[[[[…``, ``not: {not: …}``) would end in a RecursionError before
    any check on the finished tree could run. Here the level beyond :data:`MAX_DEPTH` stops the
    composition at once, with its line and column.
    """

    _depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH + 1:
                raise _TooDeep(self.peek_event().start_mark)  # type: ignore[attr-defined]
            return super().compose_node(parent, index)  # type: ignore[misc]
        finally:
            self._depth -= 1


class _DepthLimitedLoader(_DepthLimit, yaml.SafeLoader):
    """PyYAML's pure-Python safe loader with the nesting limit: the reference reader."""


def _fast_loader() -> Any:
    """libyaml's parser (events with the same line and column marks) under PyYAML's own composer (with the
    nesting limit), safe constructor and resolver; None when PyYAML was built without libyaml."""
    try:
        from yaml.cyaml import CParser  # type: ignore[attr-defined]
    except ImportError:
        return None

    class _FastLoader(_DepthLimit, Composer, CParser, SafeConstructor, Resolver):
        def __init__(self, stream: str) -> None:
            CParser.__init__(self, stream)
            Composer.__init__(self)
            SafeConstructor.__init__(self)
            Resolver.__init__(self)

    return _FastLoader


_FAST_LOADER: Any = _fast_loader()
#: Documents read by the pure-Python loader only: characters its reader refuses, other line breaks than
#: ``\n``, a byte-order mark, tabs, tags and directives, and block scalar headers followed by a comment,
#: where libyaml accepts or reads some documents differently.
_PURE_ONLY: Final = re.compile(Reader.NON_PRINTABLE.pattern + "|[\t\r!%\x85\u2028\u2029\ufeff]|[|>][-+0-9]*#")
_FALLBACK: Final = object()


def read_yaml(text: str, file: str, diags: Diagnostics) -> Any:
    """Parse one YAML document; problems go to ``diags`` (code Y001..Y005) and ``None`` is returned.

    A file whose only content is ``null`` (or ``~``) is a diagnostic too (Y002), never an empty rule file
    skipped in silence; so is a number that is not finite (``.nan``, ``.inf``: Y003).

    With libyaml installed, a document is first read with its parser (:data:`_FAST_LOADER`); that answer
    is kept only when it is a clean read of a document without the characters where the two parsers are
    known to differ (:data:`_PURE_ONLY`). Anything else -- a syntax error, any diagnostic, any
    exception -- is read again by the pure-Python loader, whose answer and messages are the reference.
    """
    if _FAST_LOADER is not None and not _PURE_ONLY.search(text):
        got = _read_fast(text, file)
        if got is not _FALLBACK:
            return got
    return _read(text, file, diags, _DepthLimitedLoader)


def _read_fast(text: str, file: str) -> Any:
    """The document read with libyaml's parser, or :data:`_FALLBACK` when it gave any diagnostic or error."""
    assert _FAST_LOADER is not None
    sub = Diagnostics()
    try:
        data = _read(text, file, sub, _FAST_LOADER)
    except Exception:  # whatever libyaml's path raises, the pure-Python loader answers
        return _FALLBACK
    return _FALLBACK if sub.items else data


def _read(text: str, file: str, diags: Diagnostics, loader_class: Any) -> Any:
    try:
        loader = loader_class(text)
        try:
            node = loader.get_single_node()
        finally:
            loader.dispose()
    except _TooDeep as e:
        diags.add(
            "Y005",
            str(e),
            Pos(file, e.mark.line + 1, e.mark.column + 1),
            help="nest less deeply: split a long chain of all/any/not into named criteria or fragments",
        )
        return None
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        pos = Pos(file, mark.line + 1, mark.column + 1) if mark else Pos(file)
        diags.add("Y001", f"YAML syntax error: {e.problem or e.context}", pos)
        return None
    except yaml.YAMLError as e:  # e.g. reader errors (control characters)
        diags.add("Y001", f"YAML error: {e}", Pos(file))
        return None
    if node is None:
        diags.add("Y002", "file is empty", Pos(file, 1, 1))
        return None
    if isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null":
        diags.add(
            "Y002",
            f"the file holds only {node.value or 'an empty value'!s}, not a mapping",
            Pos(file, *_mark(node)),
            help="write the rule (a mapping with id, version, …) or remove the file",
        )
        return None
    budget = [MAX_NODES]
    try:
        return _convert(node, loader, file, diags, budget, 0)
    except _TooBig as e:
        diags.add("Y005", str(e), Pos(file, 1, 1), help="split the file or remove YAML aliases")
        return None


class _TooBig(Exception):
    pass


def _convert(node: yaml.Node, loader: Any, file: str, diags: Diagnostics, budget: list[int], depth: int) -> Any:
    budget[0] -= 1
    if budget[0] < 0:
        raise _TooBig(f"document has more than {MAX_NODES} nodes (limit)")
    if depth > MAX_DEPTH:
        raise _TooBig(f"document is nested deeper than {MAX_DEPTH} levels (limit)")
    if isinstance(node, yaml.ScalarNode):
        try:
            value = loader.construct_object(node, deep=True)
            if isinstance(value, float) and not math.isfinite(value):
                diags.add(
                    "Y003",
                    f"'{node.value}' is not a finite number",
                    Pos(file, *_mark(node)),
                    help="thresholds, ages and counts must be ordinary numbers",
                )
                return None
            return value
        except yaml.YAMLError as e:
            diags.add("Y003", f"cannot read value: {getattr(e, 'problem', e)}", Pos(file, *_mark(node)))
            return None
        except (ValueError, OverflowError) as e:  # e.g. an impossible date such as 2026-13-45
            diags.add("Y003", f"cannot read value {node.value!r}: {e}", Pos(file, *_mark(node)))
            return None
    if isinstance(node, yaml.SequenceNode):
        out = PosList()
        out.pos = _mark(node)
        out.item_pos = []
        for item in node.value:
            out.append(_convert(item, loader, file, diags, budget, depth + 1))
            out.item_pos.append(_mark(item))
        return out
    if isinstance(node, yaml.MappingNode):
        result: dict[Any, Any] = {POS_KEY: _mark(node), KEYPOS_KEY: {}}
        for knode, vnode in node.value:
            if knode.tag == "tag:yaml.org,2002:merge":
                diags.add("Y004", "YAML merge keys (<<) are not allowed in rule files", Pos(file, *_mark(knode)))
                continue
            key = _convert(knode, loader, file, diags, budget, depth + 1)
            if not isinstance(key, str):
                diags.add("Y004", f"mapping keys must be text, got {key!r}", Pos(file, *_mark(knode)))
                continue
            if key in result[KEYPOS_KEY]:
                diags.add(
                    "Y004",
                    f"duplicate key '{key}'",
                    Pos(file, *_mark(knode)),
                    help="each key may appear once in a mapping",
                )
                continue
            result[KEYPOS_KEY][key] = _mark(knode)
            result[key] = _convert(vnode, loader, file, diags, budget, depth + 1)
        return result
    diags.add("Y003", "unsupported YAML node", Pos(file, *_mark(node)))
    return None


def locate(data: Any, path: tuple[Any, ...]) -> tuple[int, int]:
    """Best position for a path of keys/indexes (e.g. from a pydantic error ``loc``).

    Path parts that do not exist in the data (union tags, model names) are skipped, so the deepest
    existing node wins; an integer index into a mapping means its n-th key (field conditions).
    """
    got = _locate(data, path)
    return (got.line, got.col) if isinstance(got, Pos) else got


def locate_pos(data: Any, path: tuple[Any, ...], file: str) -> Pos:
    """:func:`locate` as a :class:`Pos` in ``file``, or where a node copied from a fragment came from."""
    got = _locate(data, path)
    return got if isinstance(got, Pos) else Pos(file, *got)


def _locate(data: Any, path: tuple[Any, ...]) -> Any:
    pos: Any = (1, 1)
    cur = data
    if isinstance(cur, dict):
        pos = cur.get(POS_KEY, pos)
    parts = list(path)
    for n, part in enumerate(parts):
        nxt = parts[n + 1] if n + 1 < len(parts) else None
        if isinstance(cur, dict):
            keys = [k for k in cur if k not in (POS_KEY, KEYPOS_KEY)]
            if isinstance(part, int) and 0 <= part < len(keys):
                part = keys[part]
            if isinstance(part, str) and part in keys:
                child = cur[part]
                # a union tag that equals a key ("fact", "all"): skip it when the next part lives here
                if nxt is not None and isinstance(nxt, str) and nxt in keys and not _has(child, nxt):
                    continue
                pos = cur[KEYPOS_KEY].get(part, pos)
                cur = child
                if nxt is None:
                    break  # point at the key itself
                if isinstance(cur, dict):
                    pos = cur.get(POS_KEY, pos)
                elif isinstance(cur, PosList):
                    pos = cur.pos
        elif isinstance(cur, PosList) and isinstance(part, int) and 0 <= part < len(cur):
            pos = cur.item_pos[part]
            cur = cur[part]
            if isinstance(cur, dict):
                pos = cur.get(POS_KEY, pos)
    return pos


def _has(node: Any, part: Any) -> bool:
    if isinstance(node, dict):
        return part in node
    if isinstance(node, list):
        return isinstance(part, int) and 0 <= part < len(node)
    return False
