"""Diagnostics as data: every problem in rule files is a Diagnostic with a stable code and a position."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from mdtflag.errors import MdtflagError

Severity = Literal["error", "warning", "info"]


@dataclass(frozen=True, order=True)
class Pos:
    """Where a node came from: file (relative to the rule directory), 1-based line and column."""

    file: str
    line: int = 0
    col: int = 0

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}" if self.line else self.file


@dataclass(frozen=True)
class Diagnostic:
    code: str
    severity: Severity
    message: str
    pos: Pos
    snippet: str = ""
    help: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "severity": self.severity,
            "file": self.pos.file,
            "line": self.pos.line,
            "col": self.pos.col,
            "message": self.message,
            "snippet": self.snippet,
            "help": self.help,
        }

    def format(self) -> str:
        out = f"{self.pos}: {self.severity}[{self.code}]: {self.message}"
        if self.snippet:
            out += "\n    | " + self.snippet
        if self.help:
            out += "\n    = help: " + self.help
        return out


@dataclass
class Diagnostics:
    """A collector; sorted output makes messages reproducible."""

    items: list[Diagnostic] = field(default_factory=list)

    def add(self, code: str, message: str, pos: Pos, *, severity: Severity = "error", help: str = "") -> None:
        self.items.append(Diagnostic(code, severity, message, pos, help=help))

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.items if d.severity == "error"]

    def sorted(self, sources: dict[str, str] | None = None) -> list[Diagnostic]:
        out = []
        for d in sorted(set(self.items), key=lambda d: (d.pos, d.code, d.message)):
            if sources is not None and not d.snippet and d.pos.line:
                text = sources.get(d.pos.file)
                if text is not None:
                    lines = text.splitlines()
                    if 0 < d.pos.line <= len(lines):
                        d = Diagnostic(d.code, d.severity, d.message, d.pos, lines[d.pos.line - 1].rstrip(), d.help)
            out.append(d)
        return out


class RuleSetError(MdtflagError):
    """Raised when a rule directory has errors; carries every diagnostic, not only the first."""

    def __init__(self, diagnostics: list[Diagnostic]):
        self.diagnostics = diagnostics
        errs = [d for d in diagnostics if d.severity == "error"]
        first = errs[0].format() if errs else "no errors"
        more = f" (and {len(errs) - 1} more)" if len(errs) > 1 else ""
        super().__init__(first + more)
