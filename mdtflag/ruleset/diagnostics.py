"""Diagnostics as data: every problem in rule files is a Diagnostic with a stable code and a position.

:data:`CODES` is the one registry of diagnostic codes: every code the reader, the compiler, the lint
pass and the test-file checks emit is registered here with its severity and a one-line meaning, and
``docs/authoring.md`` lists exactly these codes (a test compares them).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NamedTuple

from mdtflag.errors import MdtflagError

Severity = Literal["error", "warning", "info"]


class Code(NamedTuple):
    severity: Severity
    meaning: str


#: code → (severity, meaning). Y: YAML · S: schema · F: files · C: compilation · L: lint · T: test files.
CODES: dict[str, Code] = {
    "Y001": Code("error", "YAML syntax error"),
    "Y002": Code("error", "empty file"),
    "Y003": Code("error", "a value that cannot be read (e.g. an impossible date)"),
    "Y004": Code("error", "duplicate key, merge key (<<) or a key that is not text"),
    "Y005": Code("error", "file too large or nested too deeply"),
    "S001": Code("error", "invalid value"),
    "S002": Code("error", "unknown key"),
    "S003": Code("error", "missing required key"),
    "S004": Code("error", "id differs from the file name"),
    "S005": Code("error", "duplicate id or row key"),
    "S006": Code("error", "`use` names an unknown fragment"),
    "S007": Code("error", "fragments use each other in a cycle"),
    "F001": Code("error", "missing rule directory or file"),
    "F002": Code("error", "unreadable file"),
    "F003": Code("error", "no rule files"),
    "C001": Code("error", "unknown fact kind"),
    "C002": Code("error", "unknown fact field"),
    "C003": Code("error", "a value of the wrong type, or an empty list of values"),
    "C004": Code("error", "unknown value set"),
    "C005": Code("error", "unknown parameter, profile or row column"),
    "C006": Code("error", "reference to an unknown rule"),
    "C007": Code("error", "rules refer to each other in a cycle"),
    "C008": Code("error", "reference to an unknown criterion of a rule"),
    "C009": Code("error", "an operator that cannot compare the field (text fields: eq, ne, in, not_in)"),
    "C010": Code("error", "the rules exceed an engine limit"),
    "C011": Code("error", "unknown table, or a table without the column used"),
    "C012": Code("error", "a value set of another field than the one compared"),
    "C013": Code("error", "`latest` or `max_age_days` on a fact kind without a date"),
    "C014": Code("error", "a for_each gate that is not a criterion reached through `all` nodes only"),
    "C015": Code("error", "`latest` with `min_count` above 1 (never met)"),
    "L001": Code("warning", "unknown placeholder in a text"),
    "L002": Code("warning", "a placeholder that stays as written where it stands (another fact kind, a missing profile "
                            "parameter or row column, a fact field in a text shown when the fact is absent, a text never filled)"),
    "L003": Code("warning", "a criterion with an id but no text"),
    "L004": Code("info", "a rule without not_flagged / indeterminate / not_applicable text"),
    "L005": Code("warning", "a blank source"),
    "L006": Code("error", "a criterion id used twice in one rule"),
    "L007": Code("warning", "a value set that no rule uses"),
    "L008": Code("warning", "a table that no rule uses"),
    "L009": Code("warning", "contradictory conditions: one leaf's conditions, or two leaves on the same single fact "
                            "(patient, latest ECOG, latest lab of one analyte…) under one `all`, that can never all hold"),
    "L010": Code("warning", "`not` of `not`"),
    "L011": Code("warning", "criteria that never matter: a parameter criterion decides the enclosing `all` / `any` "
                            "for every profile and row"),
    "L012": Code("info", "a rule, value set, code, table, row, profile or parameter tagged DA or VERIFY"),
    "L013": Code("info", "a criterion with `text` but no `text_not_met`"),
    "L014": Code("info", "a text on a criterion without id (never shown)"),
    "L015": Code("warning", "a fragment that no rule uses"),
    "T001": Code("error", "test file: unknown rule, criterion, row or decision group"),
    "T002": Code("error", "test file: unknown profile"),
    "T003": Code("error", "test file: a case without `as_of`"),
    "T004": Code("error", "test file: bundle missing or unreadable"),
    "T005": Code("error", "test file: cohorts, targets or suggestions of a rule without them"),
    "T006": Code("error", "test file: unknown fact kind or decision level"),
    "T007": Code("error", "coverage file: ignored outcomes without a reason"),
}


def code_info(code: str) -> Code:
    """The registered severity and meaning of a code; an unregistered code is a programming error."""
    try:
        return CODES[code]
    except KeyError:
        raise ValueError(f"diagnostic code {code} is not registered in mdtflag.ruleset.diagnostics.CODES") from None


@dataclass(frozen=True, order=True)
class Pos:
    """Where a node came from: file (relative to the rule directory), 1-based line and column.

    ``via``: for a node that comes from a fragment, where that fragment was used (nearest first).
    """

    file: str
    line: int = 0
    col: int = 0
    via: tuple[Pos, ...] = ()

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}" if self.line else self.file

    def relative_to(self, root: str) -> Pos:
        """The position with its file (and those of ``via``) shown under ``root``."""
        if not self.file or Path(self.file).is_absolute() or self.file == root:
            return self
        return Pos((Path(root) / self.file).as_posix(), self.line, self.col, tuple(v.relative_to(root) for v in self.via))


@dataclass(frozen=True)
class Diagnostic:
    code: str
    severity: Severity
    message: str
    pos: Pos
    snippet: str = ""
    help: str = ""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "code": self.code,
            "severity": self.severity,
            "file": self.pos.file,
            "line": self.pos.line,
            "col": self.pos.col,
            "message": self.message,
            "snippet": self.snippet,
            "help": self.help,
        }
        if self.pos.via:
            out["used_at"] = [str(v) for v in self.pos.via]
        return out

    def format(self) -> str:
        out = f"{self.pos}: {self.severity}[{self.code}]: {self.message}"
        if self.snippet:
            out += "\n    | " + self.snippet
        for v in self.pos.via:
            out += f"\n    = used at {v}"
        if self.help:
            out += "\n    = help: " + self.help
        return out


def prefixed(d: Diagnostic, root: str) -> Diagnostic:
    """The diagnostic with its file shown relative to the working directory (``rules/criteria/x.yaml``)."""
    pos = d.pos.relative_to(root)
    return d if pos is d.pos else Diagnostic(d.code, d.severity, d.message, pos, d.snippet, d.help)


@dataclass
class Diagnostics:
    """A collector; sorted output makes messages reproducible."""

    items: list[Diagnostic] = field(default_factory=list)

    def add(self, code: str, message: str, pos: Pos, *, severity: Severity | None = None, help: str = "") -> None:
        """Add a diagnostic; its severity is the registered one (a different one given here is a programming error)."""
        info = code_info(code)
        if severity is not None and severity != info.severity:
            raise ValueError(f"diagnostic {code} is registered as {info.severity}, not {severity}")
        self.items.append(Diagnostic(code, info.severity, message, pos, help=help))

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
