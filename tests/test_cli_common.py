"""The command line's shared set-up: one exit mechanism, the same exit codes and profile checks everywhere."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import click
import pytest
from conftest import ROOT
from test_authoring import run_cli

from mdtflag._version import __version__
from mdtflag.api import example_bundle
from mdtflag.cli.common import (
    EXIT_INPUT,
    EXIT_OK,
    EXIT_RULES,
    EXIT_USAGE,
    leave,
    run,
)
from mdtflag.cli.main import EXAMPLES, cli
from mdtflag.errors import InputError, UsageError
from mdtflag.ruleset.diagnostics import Diagnostic, Pos, RuleSetError

MINI = str(ROOT / "tests" / "data" / "rules_min")
EXAMPLE = str(ROOT / "fhir_examples" / "01-cholangio-braf-v600e-focuse-eligible.json")
AS_OF = "2026-11-01"


def _exit_code(group: click.Group, argv: list[str]) -> int:
    with pytest.raises(SystemExit) as e:
        run(group, argv)
    assert isinstance(e.value.code, int)
    return e.value.code


def _group_raising(exc: BaseException) -> click.Group:
    @click.group()
    def g() -> None:
        pass

    @g.command()
    def go() -> None:
        raise exc

    return g


def test_leave_is_the_way_out_with_any_code() -> None:
    @click.group()
    def g() -> None:
        pass

    @g.command()
    @click.argument("code", type=int)
    def go(code: int) -> None:
        leave(code)

    @g.command()
    def fine() -> None:
        pass

    assert [_exit_code(g, ["go", str(c)]) for c in (0, 1, 2, 3, 5)] == [0, 1, 2, 3, 5]
    assert _exit_code(g, ["fine"]) == EXIT_OK
    assert _exit_code(g, ["--help"]) == EXIT_OK
    assert _exit_code(g, ["nosuch"]) == EXIT_USAGE
    assert _exit_code(g, ["go", "notanumber"]) == EXIT_USAGE


def test_mdtflag_errors_map_to_their_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    diag = Diagnostic("R001", "error", "broken", Pos("ruleset.yaml", 1, 1))
    cases = [
        (UsageError("as_of must be a date"), EXIT_USAGE, "Error: as_of must be a date"),
        (InputError("not-json", "p.json", "not valid JSON"), EXIT_INPUT, "error: p.json: not valid JSON [not-json]"),
        (RuleSetError([diag]), EXIT_RULES, "ruleset.yaml:1:1: error[R001]: broken"),
        (BrokenPipeError(), EXIT_OK, ""),
    ]
    for exc, code, message in cases:
        capsys.readouterr()
        assert _exit_code(_group_raising(exc), ["go"]) == code
        assert message in capsys.readouterr().err


@pytest.mark.parametrize("command", ["evaluate", "batch", "explain"])
def test_unknown_profile_is_a_usage_error(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    args = [command, EXAMPLE, "--rules", MINI, "--as-of", AS_OF, "--profile", "NOPE"]
    code, out, err = run_cli(args, capsys)
    assert code == EXIT_USAGE and out == ""
    assert "unknown profile 'NOPE'; choose from A, B" in err and f"Usage: mdtflag {command}" in err


@pytest.mark.parametrize("command", ["evaluate", "batch", "explain"])
def test_bad_as_of_is_a_usage_error(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli([command, EXAMPLE, "--rules", MINI, "--as-of", "2026-13-01"], capsys)
    assert code == EXIT_USAGE and "as_of must be a date YYYY-MM-DD, got '2026-13-01'" in err


@pytest.mark.parametrize("command", ["evaluate", "batch", "explain"])
def test_invalid_rule_set_exits_3_with_every_diagnostic(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli([command, EXAMPLE, "--rules", str(tmp_path), "--as-of", AS_OF], capsys)
    assert code == EXIT_RULES
    assert "error: the rule set is invalid" in err and "run `mdtflag rules check` for details" in err


def test_example_prints_the_shipped_bundle(capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    with pytest.raises(SystemExit) as e:
        run(cli, ["example"])
    assert e.value.code == 0 and capsysbinary.readouterr().out == example_bundle().read_bytes()
    with pytest.raises(SystemExit):
        run(cli, ["example", "--path"])
    assert capsysbinary.readouterr().out.decode().strip() == str(example_bundle())


def test_help_examples_name_real_commands() -> None:
    lines = [line.strip() for line in EXAMPLES.splitlines() if line.strip().startswith("mdtflag ")]
    assert lines
    for line in lines:
        for part in line.replace("&&", "|").split("|"):
            words = shlex.split(part)
            if words and words[0] == "mdtflag":
                group: click.Command = cli
                for word in words[1:]:
                    ctx = click.Context(group)
                    sub = group.get_command(ctx, word) if isinstance(group, click.Group) else None
                    if sub is None:
                        break
                    group = sub
                assert group is not cli, f"help example uses an unknown command: {part.strip()}"


def test_evaluate_imports_no_other_command_and_help_lists_them_all() -> None:
    """The commands other than evaluate, schema and example are imported when used (a shorter start)."""
    others = ("mdtflag.cli.authoring", "mdtflag.cli.batch", "mdtflag.cli.facts", "mdtflag.service.command")
    code = (
        "import sys\n"
        "from mdtflag.cli.main import cli\n"
        f"print(sorted(m for m in {others!r} if m in sys.modules))\n"
        "import click, json\n"
        "print(json.dumps(cli.list_commands(click.Context(cli))))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120, check=True
    ).stdout.splitlines()
    assert out[0] == "[]"
    listed = set(json.loads(out[1]))
    assert {"batch", "evaluate", "example", "explain", "facts", "rules", "schema", "serve"} <= listed
    ctx = click.Context(cli)
    for name in listed:
        cmd = cli.get_command(ctx, name)
        assert isinstance(cmd, click.Command) and cmd.name == name


def test_python_m_mdtflag_runs_the_help_example_from_another_folder(tmp_path: Path) -> None:
    # no ./rules here: the rule set shipped with the package is used
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("MDTFLAG_RULES", None)
    env_cmd = [sys.executable, "-m", "mdtflag"]
    example = subprocess.run([*env_cmd, "example"], capture_output=True, cwd=tmp_path, env=env, timeout=120, check=True)
    text = subprocess.run(
        [*env_cmd, "evaluate", "-", "--as-of", AS_OF, "--format", "text"],
        input=example.stdout,
        capture_output=True,
        cwd=tmp_path,
        env=env,
        timeout=120,
    )
    assert text.returncode == 0, text.stderr
    # the text format is Swedish by default (English with --lang en)
    assert text.stdout.decode().startswith(f"Patient/p01 — per {AS_OF} — mdtflag-se")
    version = subprocess.run(
        [*env_cmd, "--version"], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120
    )
    assert version.returncode == 0 and version.stdout.strip() == f"mdtflag, version {__version__}"
