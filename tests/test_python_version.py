"""durable-rules 2.0.28 does not work on Python 3.13+: mdtflag says so clearly instead of a traceback."""
from __future__ import annotations

import subprocess
import sys

from mdtflag import unsupported_python

from conftest import ROOT


def test_supported_versions() -> None:
    assert unsupported_python((3, 11, 7)) is None
    assert unsupported_python((3, 9, 0)) is None and unsupported_python((3, 12, 4)) is None


def test_unsupported_versions_named() -> None:
    msg = unsupported_python((3, 13, 0))
    assert msg is not None and "3.13" in msg and "PyEval_CallObject" in msg and "3.9–3.12" in msg
    assert unsupported_python((3, 8, 10)) is not None


def _as_if(version: str, code: str) -> subprocess.CompletedProcess[str]:
    prog = f"import sys; sys.version_info = {version}; {code}"
    return subprocess.run([sys.executable, "-c", prog], capture_output=True, text=True, cwd=ROOT, timeout=60)


def test_command_line_gets_a_message_not_a_traceback() -> None:
    r = _as_if("(3, 13, 0, 'final', 0)", "sys.argv = ['mdtflag']; import mdtflag.cli.main")
    assert r.returncode == 1
    assert r.stderr.startswith("error: mdtflag needs Python 3.9–3.12") and "Traceback" not in r.stderr


def test_library_import_raises_import_error_with_the_reason() -> None:
    r = _as_if("(3, 13, 0, 'final', 0)", "sys.argv = ['app.py']\ntry:\n import mdtflag\nexcept ImportError as e:\n print('IE', e)")
    assert r.returncode == 0 and r.stdout.startswith("IE mdtflag needs Python 3.9–3.12")
