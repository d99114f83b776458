"""mdtflag: FHIR R4 → explained MDK routing and precision-medicine trial flags."""
from __future__ import annotations

import os
import sys
from typing import Optional

__version__ = "0.1.0"
SUPPORTED = ((3, 9), (3, 12))


def unsupported_python(version: tuple[int, ...]) -> Optional[str]:
    """A message when this Python cannot run mdtflag's engine, else None."""
    if SUPPORTED[0] <= tuple(version[:2]) <= SUPPORTED[1]:
        return None
    return (
        f"mdtflag needs Python 3.9–3.12; this is Python {version[0]}.{version[1]}. Its rule engine, "
        "durable-rules 2.0.28, is published as source only and does not build or import on Python 3.13 or "
        "later (it calls PyEval_CallObject, which 3.13 removed). Install mdtflag with python3.11 or python3.12."
    )


_problem = unsupported_python(tuple(sys.version_info))
if _problem is not None:
    if os.path.basename(sys.argv[0] if sys.argv else "") in ("mdtflag", "cli.py", "-m", "-c"):
        sys.stderr.write(f"error: {_problem}\n")  # the command line: a message, not a traceback
        raise SystemExit(1)
    raise ImportError(_problem)

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
