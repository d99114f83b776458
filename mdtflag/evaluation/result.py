"""The result format ``mdtflag.result/1`` (and ``mdtflag.error/1`` for inputs that could not be read).

Two views of one format. The pydantic models (:class:`ResultModel` and its parts, ``…Out``) define it and
its published JSON Schema, and validate documents read back. Evaluation builds the documents themselves
as the typed, read-only dicts below (:class:`Result` and its parts, ``…Doc``), which orjson writes
directly: their keys are in the models' field order, which is the canonical JSON order.
"""

# (no ``from __future__ import annotations``: pydantic evaluates the models' annotations when the module is
# imported, and ``X | None`` cannot be evaluated on Python 3.9, which mdtflag supports)
from typing import TYPE_CHECKING, Any, Callable, Final, Literal, NoReturn, Optional, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from mdtflag.ruleset.model import Outcome, RuleKind, Status

if TYPE_CHECKING:
    from typing_extensions import dataclass_transform
else:
    _C = TypeVar("_C")

    def dataclass_transform(**_: Any) -> Callable[[_C], _C]:
        """Only the type checker reads it: the document classes' constructors are those of ``dict``."""
        return lambda cls: cls


RESULT_SCHEMA_ID: Final = "mdtflag.result/1"
#: Most evidence items one reason lists; the rest are counted in ``evidence_omitted``. A reason met by
#: thousands of resources (58,000 copies of one Condition) would otherwise fill hundreds of megabytes.
MAX_EVIDENCE: Final = 100
ERROR_SCHEMA_ID: Final = "mdtflag.error/1"


class Out(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)


class TextOut(Out):
    sv: str
    en: str


class EvidenceOut(Out):
    resource: str = Field(description="ResourceType/id the value was read from")
    element: str = Field(description="FHIR element path read")
    value: str = Field(description="the value seen, as text")


class MissingOut(Out):
    criterion: Optional[str] = Field(description="the criterion that stays unknown")
    fact: str = Field(description="fact kind that would decide it")
    reason: Literal["absent", "stale", "field", "rule", "unreadable"]
    field: Optional[str] = None
    resource: Optional[str] = None
    text: TextOut


class ReasonOut(Out):
    criterion: str
    outcome: Literal["met", "not_met", "unknown"]
    text: TextOut
    evidence: list[EvidenceOut] = Field(description=f"at most {MAX_EVIDENCE} items, the first in evidence order")
    missing: list[MissingOut]
    evidence_omitted: Optional[int] = Field(
        default=None,
        ge=1,
        description=f"present only when the reason had more than {MAX_EVIDENCE} evidence items: how many are "
        "left out of `evidence`",
    )


class TargetOut(Out):
    healthcare_region: Optional[str] = Field(description="sjukvårdsregion slug, null when unknown")
    region_name: Optional[TextOut] = None
    centre: Optional[TextOut] = Field(description="where to route; null when the region is unknown")


class CohortOut(Out):
    key: str
    tag: Optional[str] = Field(default=None, description="provenance of the table row: SEED-004, PUB, DA or VERIFY")
    title: Optional[TextOut] = None
    state: Optional[str] = None
    enrolled: Optional[int] = None
    status: Literal["flagged", "not_flagged", "indeterminate", "not_applicable"]
    failed: list[str] = Field(description="criteria not met")
    unknown: list[str] = Field(description="criteria that could not be decided")


class SuggestedOut(Out):
    key: str
    codes: dict[str, list[str]]


class FlagOut(Out):
    rule: str
    version: str
    kind: Literal["mdk", "trial", "hereditary", "paediatric", "data-quality", "derived"]
    title: TextOut
    tag: str = Field(description="provenance: SEED-004, PUB, DA or VERIFY")
    status: Literal["flagged", "not_flagged", "indeterminate", "not_applicable"]
    text: TextOut
    reasons: list[ReasonOut]
    missing: list[MissingOut]
    target: Optional[TargetOut] = None
    cohorts: Optional[list[CohortOut]] = None
    suggested_codes: Optional[list[SuggestedOut]] = None


class PendingOut(Out):
    rule: str
    level: str
    missing: list[MissingOut]


class DecisionOut(Out):
    level: str = Field(description="the decided level, or 'undetermined'")
    rules: list[str]
    target: Optional[TargetOut]
    pending: list[PendingOut]
    text: TextOut


class DataQualityOut(Out):
    code: str
    message: str
    resource: Optional[str] = None
    element: Optional[str] = None


class NameVersion(Out):
    name: str
    version: str


class RulesetOut(Out):
    name: str
    version: str
    digest: str
    profile: str


class ResultModel(Out):
    # no docstring: it would become the published schema's description
    schema_: Literal["mdtflag.result/1"] = Field(default=RESULT_SCHEMA_ID, alias="schema")
    patient: str
    as_of: str
    engine: NameVersion
    ruleset: RulesetOut
    decisions: dict[str, DecisionOut]
    flags: list[FlagOut]
    data_quality: list[DataQualityOut]

    model_config = ConfigDict(extra="forbid", populate_by_name=True, defer_build=True)

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, mode="json")

    def flag(self, rule_id: str) -> Optional[FlagOut]:
        for f in self.flags:
            if f.rule == rule_id:
                return f
        return None


class ErrorBody(Out):
    code: str
    message: str
    line: Optional[int] = None


class ErrorResult(Out):
    schema_: Literal["mdtflag.error/1"] = Field(default=ERROR_SCHEMA_ID, alias="schema")
    source: str
    error: ErrorBody
    model_config = ConfigDict(extra="forbid", populate_by_name=True, defer_build=True)

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, mode="json")


# --------------------------------------------------------------------------------------------
# Run-time documents. Each class below is a dict (orjson writes it as one) whose keys are exactly the
# fields of the model of the same name above, in the same order: the constructors are called with
# every key, in that order (tests/test_schemas.py checks both). For a type checker the classes are
# read-only records whose constructors take exactly those keys; values are also read as attributes
# (``flag.status``). Parts that are the same for every patient are built once and shared between results,
# so documents are deeply read-only: every mapping refuses changes, and every list in a document is a
# ReadOnlyList (a list that refuses changes) or a ReadOnlyDict, made when the document is built. A caller
# that wants to change a result works on a copy: ``thaw(result)`` gives plain dicts and lists.


def _read_only(*_: Any, **__: Any) -> NoReturn:
    raise TypeError("result documents are read-only (shared between results); change a copy: thaw(result)")


class ReadOnlyList(list[Any]):
    """A list in a result document: reads like a list (and equals one), refuses every change."""

    __slots__ = ()

    if not TYPE_CHECKING:  # the list interface for a type checker; each change raises TypeError
        __setitem__ = __delitem__ = __iadd__ = __imul__ = _read_only
        append = extend = insert = remove = pop = clear = sort = reverse = _read_only

        def __reduce__(self):
            return (ReadOnlyList, (list(self),))

    def __copy__(self) -> "ReadOnlyList":
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> "ReadOnlyList":
        return self


class ReadOnlyDict(dict[str, Any]):
    """A mapping in a result document that refuses every change (``decisions``, suggested ``codes``)."""

    __slots__ = ()

    if not TYPE_CHECKING:  # the dict interface for a type checker; each change raises TypeError
        __setitem__ = __delitem__ = __ior__ = _read_only
        clear = pop = popitem = setdefault = update = _read_only

        def __reduce__(self):
            return (type(self), (dict(self),))

    def __copy__(self) -> "ReadOnlyDict":
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> "ReadOnlyDict":
        return self


def _frozen(value: Any) -> Any:
    """``value`` read-only: a list (of documents or text) as a ReadOnlyList, a plain dict as a ReadOnlyDict."""
    cls = value.__class__
    if cls is list:
        return ReadOnlyList(value)
    if cls is dict:
        return ReadOnlyDict({k: _frozen(v) for k, v in value.items()})
    return value


def thaw(doc: Any) -> Any:
    """A deep copy of a result document (or any part of it) as plain, changeable dicts and lists."""
    if isinstance(doc, dict):
        return {k: thaw(v) for k, v in doc.items()}
    if isinstance(doc, list):
        return [thaw(v) for v in doc]
    return doc


def _init_with_containers(self: "Doc", *args: Any, **kw: Any) -> None:
    """The constructor of a document class with list or mapping fields: those become read-only."""
    if args:
        kw = {**dict(*args), **kw}
    for name in self._containers:
        v = kw.get(name)
        cls = v.__class__
        if cls is list or cls is dict:
            kw[name] = _frozen(v)
    dict.__init__(self, kw)


@dataclass_transform(kw_only_default=True, frozen_default=True)
class Doc(ReadOnlyDict):
    """One object of a result document: a read-only dict with attribute access (``flag.status``)."""

    __slots__ = ()
    #: the fields that hold lists or mappings, made read-only when the document is built
    _containers = ()  # type: tuple[str, ...]  # (a comment, not an annotation: the annotations are the fields)

    if not TYPE_CHECKING:  # for a type checker, only the declared fields are attributes

        def __getattr__(self, name: str) -> Any:
            try:
                return self[name]
            except KeyError:
                raise AttributeError(name) from None

        def __init_subclass__(cls, **kw):
            super().__init_subclass__(**kw)
            if cls._containers and "__init__" not in cls.__dict__:  # the others keep dict's own constructor
                cls.__init__ = _init_with_containers

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("result documents are read-only")


class TextDoc(Doc):
    __slots__ = ()
    sv: str
    en: str


class EvidenceDoc(Doc):
    __slots__ = ()
    resource: str
    element: str
    value: str


class MissingDoc(Doc):
    __slots__ = ()
    criterion: Optional[str]
    fact: str
    reason: Literal["absent", "stale", "field", "rule", "unreadable"]
    field: Optional[str]
    resource: Optional[str]
    text: TextDoc


class ReasonDoc(Doc):
    """A reason; built with more than :data:`MAX_EVIDENCE` evidence items it keeps the first ones and counts
    the rest in ``evidence_omitted`` (a key present only then)."""

    __slots__ = ()
    _containers = ("evidence", "missing")
    criterion: str
    outcome: Outcome
    text: TextDoc
    evidence: list[EvidenceDoc]
    missing: list[MissingDoc]
    if TYPE_CHECKING:
        evidence_omitted: Optional[int] = None
    else:
        __annotations__["evidence_omitted"] = Optional[int]

        def __getattr__(self, name):
            if name == "evidence_omitted":
                return self.get(name)
            return Doc.__getattr__(self, name)

        def __init__(self, *args, **kw):  # one function: reasons are the most numerous documents
            if args:
                kw = {**dict(*args), **kw}
            evidence = kw.get("evidence")
            if evidence.__class__ is list:
                if len(evidence) > MAX_EVIDENCE and "evidence_omitted" not in kw:
                    kw["evidence_omitted"] = len(evidence) - MAX_EVIDENCE
                    evidence = evidence[:MAX_EVIDENCE]
                kw["evidence"] = ReadOnlyList(evidence)
            missing = kw.get("missing")
            if missing.__class__ is list:
                kw["missing"] = ReadOnlyList(missing)
            dict.__init__(self, kw)


class TargetDoc(Doc):
    __slots__ = ()
    healthcare_region: Optional[str]
    region_name: Optional[TextDoc]
    centre: Optional[TextDoc]


class CohortDoc(Doc):
    __slots__ = ()
    _containers = ("failed", "unknown")
    key: str
    tag: Optional[str]
    title: Optional[TextDoc]
    state: Optional[str]
    enrolled: Optional[int]
    status: Status
    failed: list[str]
    unknown: list[str]


class SuggestedDoc(Doc):
    __slots__ = ()
    _containers = ("codes",)
    key: str
    codes: dict[str, list[str]]


class FlagDoc(Doc):
    __slots__ = ()
    _containers = ("reasons", "missing", "cohorts", "suggested_codes")
    rule: str
    version: str
    kind: RuleKind
    title: TextDoc
    tag: str
    status: Status
    text: TextDoc
    reasons: list[ReasonDoc]
    missing: list[MissingDoc]
    target: Optional[TargetDoc]
    cohorts: Optional[list[CohortDoc]]
    suggested_codes: Optional[list[SuggestedDoc]]


class PendingDoc(Doc):
    __slots__ = ()
    _containers = ("missing",)
    rule: str
    level: str
    missing: list[MissingDoc]


class DecisionDoc(Doc):
    __slots__ = ()
    _containers = ("rules", "pending")
    level: str
    rules: list[str]
    target: Optional[TargetDoc]
    pending: list[PendingDoc]
    text: TextDoc


class DataQualityDoc(Doc):
    __slots__ = ()
    code: str
    message: str
    resource: Optional[str]
    element: Optional[str]


class NameVersionDoc(Doc):
    __slots__ = ()
    name: str
    version: str


class RulesetDoc(Doc):
    __slots__ = ()
    name: str
    version: str
    digest: str
    profile: str


class Result(Doc):
    """A ``mdtflag.result/1`` document: ``patient``, ``decisions``, ``flags``, … (see :class:`ResultModel`)."""

    __slots__ = ()
    _containers = ("decisions", "flags", "data_quality")
    schema: Literal["mdtflag.result/1"]
    patient: str
    as_of: str
    engine: NameVersionDoc
    ruleset: RulesetDoc
    decisions: dict[str, DecisionDoc]
    flags: list[FlagDoc]
    data_quality: list[DataQualityDoc]

    def to_dict(self) -> dict[str, Any]:
        return self

    def flag(self, rule_id: str) -> Optional[FlagDoc]:
        for f in self.flags:
            if f.rule == rule_id:
                return f
        return None


#: document class → the model that defines its format
DOC_MODELS: dict[type[Doc], type[Out]] = {
    TextDoc: TextOut,
    EvidenceDoc: EvidenceOut,
    MissingDoc: MissingOut,
    ReasonDoc: ReasonOut,
    TargetDoc: TargetOut,
    CohortDoc: CohortOut,
    SuggestedDoc: SuggestedOut,
    FlagDoc: FlagOut,
    PendingDoc: PendingOut,
    DecisionDoc: DecisionOut,
    DataQualityDoc: DataQualityOut,
    NameVersionDoc: NameVersion,
    RulesetDoc: RulesetOut,
    Result: ResultModel,
}


def result_json_schema() -> dict[str, Any]:
    schema = ResultModel.model_json_schema(by_alias=True)
    schema["$id"] = RESULT_SCHEMA_ID
    schema["title"] = "mdtflag result"
    return schema
