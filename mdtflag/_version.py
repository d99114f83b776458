"""The package version and the Python versions mdtflag runs on (imported before anything else)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

__all__ = ["SUPPORTED", "__version__", "unsupported_python"]

__version__ = "0.1.0"

#: Oldest and newest (major, minor) Python release mdtflag's rule engine runs on.
SUPPORTED = ((3, 9), (3, 12))


def unsupported_python(version: Sequence[int]) -> Optional[str]:
    """A message when this Python cannot run mdtflag's engine, else None."""
    major_minor = (version[0], version[1])
    if SUPPORTED[0] <= major_minor <= SUPPORTED[1]:
        return None
    return (
        f"mdtflag needs Python 3.9–3.12; this is Python {version[0]}.{version[1]}. Its rule engine, "
        "durable-rules 2.0.28, is published as source only and does not build or import on Python 3.13 or "
        "later (it calls PyEval_CallObject, which 3.13 removed). Install mdtflag with python3.11 or python3.12."
    )
