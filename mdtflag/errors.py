"""Errors and data-quality notes shared by the pipeline stages.

Every exception mdtflag raises on purpose derives from one root::

    MdtflagError
    ├── InputError      an input cannot be read as one patient (this module)
    ├── RuleSetError    a rule directory has errors; carries every diagnostic (mdtflag.ruleset.diagnostics)
    └── UsageError      a bad argument: an ``as_of`` that is not a date, an unknown profile name, ...

``except mdtflag.MdtflagError`` therefore catches every expected failure; anything else is a bug.
``UsageError`` is also a ``ValueError``, as a bad argument always was.

Two kinds of trouble in the data exist and they never mix:

* :class:`InputError` -- an input (a file, a byte string, a dict, one NDJSON line) that cannot be
  read as one patient at all. It names the input, the line where that makes sense, and a stable
  ``code``. Nothing is evaluated for that input; the other inputs go on.
* :class:`DataQualityNote` -- something inside a readable patient bundle that could not be used
  (a resource that fails validation, an unknown code system or unit, a reference to a resource that
  is not in the bundle, ...). The facts that depended on it become *unknown*, and the note travels
  with the result so that nothing is silently dropped.

Both carry stable codes. They are part of mdtflag's public interface: renderers, reports and tests
match on the code, never on the wording of the message.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

__all__ = [
    "INPUT_ERROR_CODES",
    "NOTE_CODES",
    "NOT_UNDERSTOOD",
    "DataQualityNote",
    "InputError",
    "MdtflagError",
    "UsageError",
    "one_line",
]


class MdtflagError(Exception):
    """The root of every exception mdtflag raises on purpose."""


class UsageError(MdtflagError, ValueError):
    """A bad argument from the caller, e.g. ``as_of="2026-13-01"`` or an unknown profile name."""


#: Stable ``InputError.code`` values and what each means.
INPUT_ERROR_CODES: Mapping[str, str] = MappingProxyType(
    {
        "not-found": "the file or folder does not exist or cannot be read",
        "not-json": "the input is not valid JSON (syntax error or truncated input)",
        "not-utf8": "the input is not UTF-8 encoded text",
        "not-bundle": "the JSON is not a FHIR Bundle (a single resource, an array, a scalar, ...)",
        "no-patient": "the bundle (or NDJSON patient group) holds no Patient resource",
        "several-patients": "the bundle holds more than one Patient resource",
        "too-large": "the input is larger than the documented size limit",
        "too-deep": "the JSON is nested deeper than the documented depth limit",
        "too-many-resources": "the bundle (or NDJSON patient) holds more resources than the documented limit "
        "(mdtflag.fhir.load.MAX_RESOURCES, 25,000)",
    }
)


class InputError(MdtflagError):
    """An input that cannot be read as one patient.

    ``str(error)`` is ``"source[:line]: message [code]"``, e.g.
    ``"Observation.ndjson:17: not valid JSON: unexpected character [not-json]"``.
    """

    __slots__ = ("code", "line", "message", "source")

    def __init__(self, code: str, source: str, message: str, line: int | None = None) -> None:
        if code not in INPUT_ERROR_CODES:
            raise ValueError(f"unknown InputError code {code!r}")
        self.code = code
        self.source = source
        self.message = message
        self.line = line
        super().__init__(code, source, message, line)

    def __str__(self) -> str:
        where = self.source if self.line is None else f"{self.source}:{self.line}"
        return f"{where}: {self.message} [{self.code}]"

    def __repr__(self) -> str:
        return f"InputError(code={self.code!r}, source={self.source!r}, message={self.message!r}, line={self.line!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, InputError):
            return NotImplemented
        return (self.code, self.source, self.message, self.line) == (
            other.code,
            other.source,
            other.message,
            other.line,
        )

    def __hash__(self) -> int:
        return hash((self.code, self.source, self.message, self.line))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (``line`` omitted when unknown)."""
        d: dict[str, Any] = {"code": self.code, "source": self.source, "message": self.message}
        if self.line is not None:
            d["line"] = self.line
        return d


#: Stable ``DataQualityNote.code`` values and what each means.
NOTE_CODES: Mapping[str, str] = MappingProxyType(
    {
        "invalid-resource": "the resource fails FHIR R4 validation; it was removed and the facts it "
        "would have given are unknown (a failing Patient is kept)",
        "invalid-entry": "a Bundle entry holds no usable resource (not an object, or no resourceType)",
        "wrong-type": "an element has the wrong JSON type (e.g. a string where a number is required)",
        "missing-element": "an element needed for the fact is absent, so the fact is unknown",
        "invalid-date": "a date or dateTime cannot be read",
        "partial-date": "a date is only a year or year-month; it is read as the interval of days it can "
        "mean, and a test is decided only when the whole interval agrees",
        "unknown-code-system": "no coding is from a code system mdtflag reads for this element",
        "unknown-code": "the code system is known but the code is not one mdtflag maps",
        "invalid-code": "the code does not have the form its code system requires",
        "unknown-unit": "the unit is not one of the units accepted for this value (no guessing)",
        "unmapped-code": "the code system is read but this code is in none of the terminology maps or value "
        "sets: the facts that depend on it are unknown",
        "conflicting-code": "two codings of one element disagree (e.g. an HGNC id and a gene symbol); the note "
        "says which was used",
        "unread-latest": "the newest value of an analyte could not be read, so the analyte is unknown (an "
        "older value is not used in its place)",
        "unread-marker": "a tumour-marker code is recognised but gives no fact the rules read",
        "censored-value": "the value carries a comparator (<, >, ...) so the exact value is unknown",
        "out-of-range": "the value lies outside the range allowed for it",
        "unresolved-reference": "a reference points to a resource that is not in the bundle",
        "ignored-status": "the resource's status (refuted, entered-in-error, cancelled, ...) means it is not used",
        "other-patient": "the resource refers to a different patient than the bundle's Patient and was not used",
        "unresolved-subject": "the resource's subject/patient reference cannot be resolved to this bundle's "
        "Patient; it was not attributed to the patient",
        "duplicate-id": "the same resource type and id (or, without an id, the same fullUrl) is given twice "
        "with different content",
        "conflicting-values": "two values at the same time (or from a duplicated resource, or one with a partial "
        "date that may be the later) disagree, so the value is unknown",
        "after-as-of": "the data is dated after the evaluation date (as_of) and was not used",
        "impossible-date": "a date cannot be true (birth after as_of, onset before birth, age over "
        "130 years, death after as_of); what depends on it is unknown",
        "implausible-value": "the value lies outside the plausible range for the analyte or score, so it is unknown",
        "duplicate-key": "a JSON object holds the same key twice; the resource was not used",
        "invalid-element": "an element fails FHIR R4 validation; the resource was kept because no fact is "
        "read from that element",
        "assumed-value": "a value was absent and was read in the way the note says",
        "several-genes": "a variant names several genes without being coded as a fusion; only the first gene was used",
        "unknown-region": "the county or municipality could not be mapped to a Swedish healthcare region",
        "extraction-error": "an unexpected error while reading this resource; its facts are unknown "
        "(this is a bug in mdtflag: please report it)",
    }
)


#: Note codes that say a value is present but not understood (as opposed to absent): a fact of such a
#: resource whose field is unknown may still satisfy a rule's ``where`` test on that field.
NOT_UNDERSTOOD: frozenset[str] = frozenset(
    {
        "wrong-type",
        "invalid-date",
        "unknown-code-system",
        "unknown-code",
        "invalid-code",
        "unknown-unit",
        "unmapped-code",
        "conflicting-code",
        "censored-value",
        "out-of-range",
        "conflicting-values",
        "impossible-date",
        "implausible-value",
        "invalid-element",
        "several-genes",
        "extraction-error",
    }
)


@dataclass(frozen=True)
class DataQualityNote:
    """Something in a readable bundle that could not be used.

    ``resource`` is ``"Type/id"`` when the note is about one resource, ``element`` the FHIR path
    (e.g. ``"Observation.valueQuantity.code"``).
    """

    code: str
    message: str
    resource: str | None = None
    element: str | None = None

    def to_dict(self) -> dict[str, str]:
        """JSON-ready form; absent ``resource``/``element`` are left out."""
        d = {"code": self.code, "message": self.message}
        if self.resource is not None:
            d["resource"] = self.resource
        if self.element is not None:
            d["element"] = self.element
        return d

    def __str__(self) -> str:
        where = " ".join(p for p in (self.resource, self.element) if p)
        return f"{where + ': ' if where else ''}{self.message} [{self.code}]"


#: Characters that must not reach a terminal or a text report as they are: C0 controls (newline, carriage
#: return, tab, escape, ...), DEL, C1 controls, the Unicode line and paragraph separators and the
#: bidirectional formatting characters (which reorder what is shown around them).
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_SHORT = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(m: re.Match[str]) -> str:
    c = m.group()
    short = _SHORT.get(c)
    if short is not None:
        return short
    n = ord(c)
    return f"\\x{n:02x}" if n < 0x100 else f"\\u{n:04x}"


def one_line(text: str) -> str:
    """``text`` safe to print as (part of) one line: every control, separator and bidi character escaped.

    A newline becomes ``\\n``, an escape character ``\\x1b``, a right-to-left override ``\\u202e``; all
    other text is unchanged. Text renderings pass every line through it, so data (a patient id, a
    resource id, a rule text) can neither start a line of its own nor send terminal control sequences.
    """
    return _UNSAFE.sub(_escape, text) if _UNSAFE.search(text) else text
