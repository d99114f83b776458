"""Small wording helpers shared by the authoring reporters."""

from __future__ import annotations


def count(n: int, one: str, many: str | None = None) -> str:
    """``1 rule``, ``2 rules``, ``3 criteria`` (``many`` for irregular plurals)."""
    return f"{n} {one if n == 1 else (many or one + 's')}"
