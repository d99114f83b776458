"""durable-rules 2.0.28 does not work on Python 3.13+: mdtflag says so clearly instead of failing deep inside.

Importing the package on such a Python raises ImportError with the reason (never exits the process,
whatever ``sys.argv`` holds); ``python -m mdtflag`` then prints that reason on one line, without a traceback.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import ROOT

from mdtflag._version import unsupported_python


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


def test_library_import_raises_import_error_with_the_reason() -> None:
    r = _as_if(
        "(3, 13, 0, 'final', 0)",
        "sys.argv = ['app.py']\ntry:\n import mdtflag\nexcept ImportError as e:\n print('IE', e)",
    )
    assert r.returncode == 0 and r.stdout.startswith("IE mdtflag needs Python 3.9–3.12"), r.stderr


def test_import_never_exits_whatever_argv_holds() -> None:
    for argv0 in ("mdtflag", "-m", "-c", "cli.py"):
        code = f"sys.argv = [{argv0!r}]\ntry:\n import mdtflag.cli.main\nexcept ImportError as e:\n print('IE', e)"
        r = _as_if("(3, 13, 0, 'final', 0)", code)
        assert r.returncode == 0 and r.stdout.startswith("IE mdtflag needs Python 3.9–3.12"), (argv0, r.stderr)


def test_python_m_mdtflag_gives_a_message_not_a_traceback(tmp_path: Path) -> None:
    # sitecustomize runs before `-m` looks the package up, as if this interpreter were Python 3.13
    (tmp_path / "sitecustomize.py").write_text("import sys\nsys.version_info = (3, 13, 0, 'final', 0)\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}
    r = subprocess.run(
        [sys.executable, "-m", "mdtflag", "--help"], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=60
    )
    assert r.returncode == 1 and r.stdout == ""
    assert "ImportError: mdtflag needs Python 3.9–3.12" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
