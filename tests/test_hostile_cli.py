"""CLI paths and arguments: a bad output path, an unknown profile or a worker count below 1 is a usage error
(exit 64) raised before any work starts, never a traceback and never output lost after a run."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from conftest import ROOT
from test_authoring import run_cli

from mdtflag.cli.common import EXIT_USAGE, check_output_path

EXAMPLE = str(ROOT / "fhir_examples" / "01-cholangio-braf-v600e-focuse-eligible.json")
AS_OF = "2026-11-01"


def _usage(code: int, err: str, *words: str) -> None:
    assert code == EXIT_USAGE, err
    assert "Traceback" not in err
    for w in words:
        assert w in err


def test_check_output_path_accepts_files_and_stdout(tmp_path: Path) -> None:
    check_output_path(None)
    check_output_path("-")
    check_output_path(str(tmp_path / "new.json"))
    (tmp_path / "old.json").write_text("x", encoding="utf-8")
    check_output_path(str(tmp_path / "old.json"))


@pytest.mark.parametrize("make", ["missing-folder", "directory", "folder-is-a-file"])
def test_check_output_path_refuses(tmp_path: Path, make: str) -> None:
    if make == "missing-folder":
        path = tmp_path / "nope" / "out.json"
    elif make == "directory":
        path = tmp_path
    else:
        (tmp_path / "file").write_text("x", encoding="utf-8")
        path = tmp_path / "file" / "out.json"
    with pytest.raises(click.BadParameter) as e:
        check_output_path(str(path), "--summary")
    assert e.value.param_hint == "--summary"


@pytest.mark.parametrize("target", ["missing", "directory"])
def test_evaluate_output_path_is_checked_first(tmp_path: Path, capsys: pytest.CaptureFixture[str], target: str) -> None:
    out = tmp_path / "nope" / "r.json" if target == "missing" else tmp_path
    code, stdout, err = run_cli(["evaluate", EXAMPLE, "--as-of", AS_OF, "-o", str(out)], capsys)
    _usage(code, err, "-o/--output", "does not exist" if target == "missing" else "is a directory")
    assert stdout == ""
    # also when the bundle cannot be read: the path is refused first, nothing is half written
    code, stdout, err = run_cli(["evaluate", str(tmp_path / "no-such.json"), "-o", str(out)], capsys)
    _usage(code, err, "-o/--output")


@pytest.mark.parametrize(
    ("option", "bad"),
    [("-o", "nope/r.ndjson"), ("-o", "."), ("--summary", "nope/s.csv"), ("--summary", ".")],
)
def test_batch_paths_are_checked_before_the_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], option: str, bad: str
) -> None:
    other = {"-o": "--summary", "--summary": "-o"}[option]
    good = tmp_path / ("s.csv" if other == "--summary" else "r.ndjson")
    args = ["batch", EXAMPLE, "--as-of", AS_OF, option, str(tmp_path / bad), other, str(good)]
    code, stdout, err = run_cli(args, capsys)
    _usage(code, err, "--summary" if option == "--summary" else "-o/--output")
    assert not good.exists(), "the run started although an output path was bad"
    assert stdout == "" and "inputs:" not in err


def test_batch_with_good_paths_writes_both(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, summary = tmp_path / "r.ndjson", tmp_path / "s.csv"
    code, _, err = run_cli(["batch", EXAMPLE, "--as-of", AS_OF, "-o", str(out), "--summary", str(summary)], capsys)
    assert code == 0, err
    assert len(out.read_bytes().splitlines()) == 1 and len(summary.read_text(encoding="utf-8").splitlines()) == 2


@pytest.mark.parametrize("workers", ["0", "-1", "-8"])
def test_batch_workers_below_one_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str], workers: str) -> None:
    out = tmp_path / "r.ndjson"
    code, _, err = run_cli(["batch", EXAMPLE, "--as-of", AS_OF, "--workers", workers, "-o", str(out)], capsys)
    _usage(code, err, "--workers")
    assert not out.exists()


@pytest.mark.parametrize(
    "args",
    [
        ["evaluate", EXAMPLE, "--as-of", AS_OF],
        ["batch", EXAMPLE, "--as-of", AS_OF],
        ["explain", EXAMPLE, "--as-of", AS_OF],
        ["rules", "check", str(ROOT / "rules")],
        ["rules", "diff", str(ROOT / "rules"), str(ROOT / "rules"), EXAMPLE, "--as-of", AS_OF],
    ],
    ids=lambda a: " ".join(a[:2]),
)
def test_unknown_profile_is_a_usage_error(capsys: pytest.CaptureFixture[str], args: list[str]) -> None:
    code, _, err = run_cli([*args, "--profile", "NOPE"], capsys)
    _usage(code, err, "unknown profile 'NOPE'", "FOCUSE_PROXY_MEGALIT")
    assert "invalid" not in err
