"""How read YAML data carries positions: the keys of a mapping's positions and the list that knows its own.

Mappings read by :mod:`mdtflag.ruleset.yamlpos` come back as ``dict`` with two extra keys, ``__pos__``
(line, col of the mapping) and ``__keypos__`` ({key: (line, col)}); lists as :class:`PosList`. This module
holds only those names, so that the rule model can use them without importing the YAML reader.
"""

from __future__ import annotations

from typing import Any, Final

__all__ = ["KEYPOS_KEY", "POS_KEY", "PosList", "strip"]

POS_KEY: Final = "__pos__"
KEYPOS_KEY: Final = "__keypos__"


class PosList(list):  # type: ignore[type-arg]
    pos: tuple[int, int] = (0, 0)
    item_pos: list[tuple[int, int]]


def strip(value: Any) -> Any:
    """The same data without position keys (plain dicts and lists)."""
    if isinstance(value, dict):
        return {k: strip(v) for k, v in value.items() if k not in (POS_KEY, KEYPOS_KEY)}
    if isinstance(value, list):
        return [strip(v) for v in value]
    return value
