"""mdtflag: FHIR R4 → explained MDK routing and precision-medicine trial flags.

The public API, importable from here with its real types::

    from mdtflag import Evaluator, Result, MdtflagError

Every exception mdtflag raises on purpose is an :class:`MdtflagError`: :class:`InputError` (a patient
input that cannot be read), :class:`RuleSetError` (a rule directory with errors, carrying every
:class:`Diagnostic`) and :class:`UsageError` (a bad argument; :class:`UnknownProfileError` for a profile
the rule set does not define).

Importing mdtflag on a Python its rule engine cannot run on raises :class:`ImportError` saying so.
"""

from __future__ import annotations

import sys

from mdtflag._version import __version__, unsupported_python

_problem = unsupported_python(sys.version_info[:2])
if _problem is not None:
    # name= marks the package itself as what cannot be imported: `python -m mdtflag` then prints this
    # message on one line instead of a traceback.
    raise ImportError(_problem, name=__name__)

from mdtflag.api import Evaluator, UnknownProfileError, evaluate  # noqa: E402
from mdtflag.errors import InputError, MdtflagError, UsageError  # noqa: E402
from mdtflag.evaluation.result import ErrorResult, Result  # noqa: E402
from mdtflag.ruleset.diagnostics import Diagnostic, RuleSetError  # noqa: E402

__all__ = [
    "Diagnostic",
    "ErrorResult",
    "Evaluator",
    "InputError",
    "MdtflagError",
    "Result",
    "RuleSetError",
    "UnknownProfileError",
    "UsageError",
    "__version__",
    "evaluate",
]
