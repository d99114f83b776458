"""A pytest plugin: every YAML document a test reads is read by both loaders and the answers compared.

``python -m pytest -p yaml_crosscheck …`` (with ``tests/`` on ``sys.path``) replaces the libyaml path of
:func:`mdtflag.ruleset.yamlpos.read_yaml` by one that also reads the document with the pure-Python
loader. A document the libyaml path keeps must give the same data and positions and no diagnostic with
the pure loader; one it hands over is read by the pure loader as before. Counts and any difference go to
the JSON file named by ``MDTFLAG_YAML_CROSSCHECK_OUT`` at the end of the session (a difference is not
raised where it is found, where a caller's ``except`` could hide it).
"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

from mdtflag.ruleset import yamlpos
from mdtflag.ruleset.diagnostics import Diagnostics

_seen: dict[str, Any] = {"fast": 0, "handed_over": 0, "differences": []}


def shape(x: Any) -> Any:
    """Data with every position, in a form that compares equal only when data and positions are equal."""
    if isinstance(x, yamlpos.PosList):
        return ("list", x.pos, tuple(x.item_pos), [shape(i) for i in x])
    if isinstance(x, dict):
        return ("map", [(k, shape(v)) for k, v in x.items()])
    return (type(x).__name__, repr(x))


def _both(text: str, file: str) -> Any:
    got = _original(text, file)
    if got is yamlpos._FALLBACK:
        _seen["handed_over"] += 1
        return got
    _seen["fast"] += 1
    diags = Diagnostics()
    pure = yamlpos._read(text, file, diags, yamlpos._DepthLimitedLoader)
    if diags.items or shape(pure) != shape(got):
        _seen["differences"].append(
            {"file": file, "text": text[:2000], "pure_diagnostics": [repr(d) for d in diags.items]}
        )
    return got


_original = yamlpos._read_fast


def pytest_configure(config: pytest.Config) -> None:
    yamlpos._read_fast = _both


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    out = os.environ.get("MDTFLAG_YAML_CROSSCHECK_OUT")
    if out:
        with open(out, "w", encoding="utf-8") as f:
            json.dump(_seen, f)
