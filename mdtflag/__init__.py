"""mdtflag: FHIR R4 → explained MDK routing and precision-medicine trial flags."""
from __future__ import annotations

import sys

__version__ = "0.1.0"

if not ((3, 9) <= sys.version_info[:2] < (3, 13)):  # pragma: no cover - depends on the interpreter
    raise ImportError(
        f"mdtflag needs Python 3.9–3.12; this is Python {sys.version_info.major}.{sys.version_info.minor}. "
        "Its engine, durable-rules 2.0.28, ships as source only and does not build or import on Python 3.13+ "
        "(it calls PyEval_CallObject, removed in 3.13). Install with python3.11 or python3.12."
    )

_LAZY = {
    "Evaluator": "api", "evaluate": "api", "InputError": "errors", "RuleSetError": "diagnostics",
    "Diagnostic": "diagnostics", "Result": "result",
}


def __getattr__(name: str) -> object:  # lazy so that importing one stage does not import all of them
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module 'mdtflag' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f".{mod}", __name__), name)

__all__ = ["Evaluator", "evaluate", "InputError", "RuleSetError", "Diagnostic", "Result", "__version__"]
