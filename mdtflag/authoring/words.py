"""Small wording helpers shared by the authoring reporters."""
from __future__ import annotations

from typing import Optional


def count(n: int, one: str, many: Optional[str] = None) -> str:
    """``1 rule``, ``2 rules``, ``3 criteria`` (``many`` for irregular plurals)."""
    return f"{n} {one if n == 1 else (many or one + 's')}"
