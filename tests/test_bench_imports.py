"""The benchmark scripts in bench/ are not run by the tests (they measure, they do not assert), so a moved module
would break them silently: every ``mdtflag`` name they import must exist."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

BENCH = sorted((Path(__file__).resolve().parent.parent / "bench").glob("*.py"))


def _imports(path: Path) -> list[tuple[str, str]]:
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "mdtflag":
            out += [(node.module, a.name) for a in node.names]
        elif isinstance(node, ast.Import):
            out += [(a.name, "") for a in node.names if a.name.split(".")[0] == "mdtflag"]
    return out


def test_there_are_bench_scripts_importing_mdtflag() -> None:
    assert sum(len(_imports(p)) for p in BENCH) >= 5


@pytest.mark.parametrize("path", BENCH, ids=lambda p: p.name)
def test_bench_script_imports_resolve(path: Path) -> None:
    for module, name in _imports(path):
        if module.startswith(("mdtflag.cohort.spark", "mdtflag.service")):
            pytest.importorskip("pyspark" if "spark" in module else "starlette")
        mod = importlib.import_module(module)
        if name and not hasattr(mod, name):
            importlib.import_module(f"{module}.{name}")  # a submodule imported by name
