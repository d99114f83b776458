"""Rule fragments: a criteria block written once in ``fragments/<name>.yaml`` and used by name.

A criterion node ``{use: NAME}`` stands for the fragment's ``criterion``; ``id`` and the texts
(``text``, ``text_not_met``, ``text_unknown``, ``missing_text``) written beside ``use`` replace the
fragment's own. Fragments may use other fragments. Uses are expanded in the YAML data, before the
rule is validated, so the rule model, the compiler and the engine never see them.

Every node copied from a fragment keeps its own position (the fragment's file:line:col) with the
chain of places it was used (:attr:`Pos.via`, nearest first), so a problem inside a fragment is
reported where it is written and where it was used.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mdtflag.ruleset.diagnostics import Diagnostics, Pos
from mdtflag.ruleset.positions import KEYPOS_KEY, POS_KEY, PosList

__all__ = ["FRAGMENT_DIR", "NODE_KEYS", "Expander"]

FRAGMENT_DIR = "fragments"
#: Keys that may stand beside ``use``; they replace the fragment's own.
NODE_KEYS = ("id", "text", "text_not_met", "text_unknown", "missing_text")
#: Keys of a rule file that hold criteria trees.
RULE_CRITERIA_KEYS = ("applies_when", "criteria")


def _pos(raw: Any, file: str, via: tuple[Pos, ...]) -> Any:
    if isinstance(raw, tuple) and len(raw) == 2:
        return Pos(file, raw[0], raw[1], via)
    return raw


def relocate(value: Any, file: str, via: tuple[Pos, ...]) -> Any:
    """A copy of YAML data whose (line, col) positions become positions in ``file`` used ``via``."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            if k == POS_KEY:
                out[k] = _pos(v, file, via)
            elif k == KEYPOS_KEY:
                out[k] = {kk: _pos(p, file, via) for kk, p in v.items()}
            else:
                out[k] = relocate(v, file, via)
        return out
    if isinstance(value, PosList):
        lst = PosList(relocate(x, file, via) for x in value)
        lst.pos = _pos(value.pos, file, via)
        lst.item_pos = [_pos(p, file, via) for p in value.item_pos]
        return lst
    if isinstance(value, list):
        return [relocate(x, file, via) for x in value]
    return value


def node_pos(node: Mapping[str, Any], file: str) -> Pos:
    """Where a YAML mapping stands: its own position when copied from a fragment, else in ``file``."""
    raw = node.get(POS_KEY)
    if isinstance(raw, Pos):
        return raw
    if isinstance(raw, tuple) and len(raw) == 2:
        return Pos(file, raw[0], raw[1])
    return Pos(file)


@dataclass
class Expander:
    """Expands ``use`` nodes; problems go to ``diags`` (S002, S006, S007), uses are counted per fragment."""

    bodies: Mapping[str, tuple[str, Any]]  # fragment name -> (its file, the raw ``criterion`` data)
    diags: Diagnostics
    uses: dict[str, list[Pos]] = field(default_factory=dict)

    def rule(self, data: Any, file: str) -> Any:
        """A rule file's data with every ``use`` in its criteria trees replaced by the fragment."""
        if not isinstance(data, dict):
            return data
        out = dict(data)
        for key in RULE_CRITERIA_KEYS:
            if key in data:
                out[key] = self.criterion(data[key], file, ())
        return out

    def fragment(self, name: str) -> Any:
        """A fragment's criterion on its own, uses expanded (to check a fragment that no rule uses)."""
        file, body = self.bodies[name]
        return self.criterion(relocate(body, file, ()), file, (name,))

    def criterion(self, node: Any, file: str, stack: tuple[str, ...]) -> Any:
        if not isinstance(node, dict):
            return node
        if "use" in node:
            return self._use(node, file, stack)
        out = dict(node)
        for key in ("all", "any"):
            items = node.get(key)
            if isinstance(items, list):
                lst = PosList(self.criterion(x, file, stack) for x in items)
                lst.pos = getattr(items, "pos", (0, 0))
                lst.item_pos = list(getattr(items, "item_pos", []))
                out[key] = lst
        if "not" in node:
            out["not"] = self.criterion(node["not"], file, stack)
        return out

    def _use(self, node: dict[str, Any], file: str, stack: tuple[str, ...]) -> Any:
        at = node_pos(node, file)
        keypos = node.get(KEYPOS_KEY, {})
        name = node["use"]
        ok = True
        for key in node:
            if key not in NODE_KEYS and key not in ("use", POS_KEY, KEYPOS_KEY):
                kp = keypos.get(key)
                where = kp if isinstance(kp, Pos) else (Pos(at.file, kp[0], kp[1], at.via) if kp else at)
                self.diags.add(
                    "S002",
                    f"unknown key '{key}' beside 'use'",
                    where,
                    help="only id, text, text_not_met, text_unknown and missing_text may be set where a fragment is used",
                )
                ok = False
        if not isinstance(name, str) or name not in self.bodies:
            close = difflib.get_close_matches(str(name), list(self.bodies), n=1)
            self.diags.add(
                "S006",
                f"unknown fragment '{name}'",
                at,
                help=f"did you mean '{close[0]}'?"
                if close
                else f"fragments are files in {FRAGMENT_DIR}/ named <name>.yaml",
            )
            return node
        if name in stack:
            cycle = " → ".join(stack[stack.index(name) :] + (name,))
            self.diags.add("S007", f"fragments use each other in a cycle: {cycle}", at)
            return node
        if not ok:
            return node
        self.uses.setdefault(name, []).append(at)
        bfile, body = self.bodies[name]
        via = (Pos(at.file, at.line, at.col),) + at.via
        expanded = self.criterion(relocate(body, bfile, via), bfile, stack + (name,))
        if isinstance(expanded, dict):
            expanded = dict(expanded)
            kp_out = dict(expanded.get(KEYPOS_KEY, {}))
            for key in NODE_KEYS:
                if key in node:
                    expanded[key] = node[key]
                    kp = keypos.get(key)
                    kp_out[key] = kp if isinstance(kp, Pos) else (Pos(at.file, kp[0], kp[1], at.via) if kp else at)
            expanded[KEYPOS_KEY] = kp_out
        return expanded
