"""docs/authoring.md runs as written: its files are written, its commands run, their output compared.

Conventions in the guide: a fenced block whose first line is ``# file: PATH`` is written to PATH (the
line itself is dropped); a ``console`` block holds ``$ command`` lines, each followed by its expected
standard output, with an optional ``# exit N`` at the end of the command (default 0). ``mdtflag`` runs
in-process; other commands (``cp``) run in a shell. With ``MDTFLAG_UPDATE_GOLDEN=1`` the expected
outputs in the guide are rewritten from the actual ones.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import ROOT, UPDATE
from test_authoring import run_cli

GUIDE = ROOT / "docs" / "authoring.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```\n", re.S | re.M)


@dataclass
class Step:
    kind: str  # file | command
    start: int  # offsets of the block body in the guide (for updates)
    end: int
    path: str = ""
    text: str = ""
    commands: tuple = ()


def parse(guide: str) -> list[Step]:
    steps = []
    for m in FENCE.finditer(guide):
        lang, body = m.group(1), m.group(2)
        first, _, rest = body.partition("\n")
        if first.startswith("# file: "):
            steps.append(Step("file", m.start(2), m.end(2), path=first[len("# file: ") :].strip(), text=rest))
        elif lang == "console":
            cmds: list[list[str]] = []
            for line in body.splitlines():
                if line.startswith("$ "):
                    cmds.append([line[2:], ""])
                elif cmds:
                    cmds[-1][1] += line + "\n"
            steps.append(Step("command", m.start(2), m.end(2), commands=tuple((c, out) for c, out in cmds)))
    return steps


def run_command(line: str, cwd: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    cmd, _, comment = line.partition("  # ")
    want_exit = int(comment.split()[1]) if comment.startswith("exit ") else 0
    if cmd.startswith("mdtflag "):
        code, out, _err = run_cli(shlex.split(cmd)[1:], capsys)
    else:
        proc = subprocess.run(cmd, shell=True, cwd=cwd, capture_output=True, text=True, timeout=60)
        code, out = proc.returncode, proc.stdout
    assert code == want_exit, f"`{cmd}` exited {code}, the guide says {want_exit}:\n{out}"
    return code, out


def test_guide_runs_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    guide = GUIDE.read_text(encoding="utf-8")
    steps = parse(guide)
    assert sum(s.kind == "file" for s in steps) >= 8 and sum(s.kind == "command" for s in steps) >= 4
    monkeypatch.chdir(tmp_path)
    updates: list[tuple[int, int, str]] = []
    mismatches = []
    for step in steps:
        if step.kind == "file":
            target = tmp_path / step.path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(step.text, encoding="utf-8")
            continue
        body = ""
        for line, expected in step.commands:
            _code, out = run_command(line, tmp_path, capsys)
            body += f"$ {line}\n{out}"
            if out != expected:
                mismatches.append(f"$ {line}\n--- the guide says:\n{expected}--- it printed:\n{out}")
        updates.append((step.start, step.end, body))
    if UPDATE and mismatches:
        for start, end, body in reversed(updates):
            guide = guide[:start] + body + guide[end:]
        GUIDE.write_text(guide, encoding="utf-8")
        return
    assert not mismatches, "docs/authoring.md is out of date (MDTFLAG_UPDATE_GOLDEN=1 rewrites it):\n" + "\n".join(
        mismatches
    )


def test_guide_yaml_examples_are_valid_yaml() -> None:
    """Every YAML block of the guide parses (the reference snippets too, not only the worked example)."""
    import yaml

    for m in FENCE.finditer(GUIDE.read_text(encoding="utf-8")):
        if m.group(1) == "yaml":
            yaml.safe_load(m.group(2))
