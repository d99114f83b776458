"""The result format ``mdtflag.result/1`` (and ``mdtflag.error/1`` for inputs that could not be read)."""
from __future__ import annotations

from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field

RESULT_SCHEMA_ID = "mdtflag.result/1"
ERROR_SCHEMA_ID = "mdtflag.error/1"


class Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


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
    reason: Literal["absent", "stale", "field", "rule"]
    field: Optional[str] = None
    resource: Optional[str] = None
    text: TextOut


class ReasonOut(Out):
    criterion: str
    outcome: Literal["met", "not_met", "unknown"]
    text: TextOut
    evidence: list[EvidenceOut]
    missing: list[MissingOut]


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
    schema_: Literal["mdtflag.result/1"] = Field(default=RESULT_SCHEMA_ID, alias="schema")
    patient: str
    as_of: str
    engine: NameVersion
    ruleset: RulesetOut
    decisions: dict[str, DecisionOut]
    flags: list[FlagOut]
    data_quality: list[DataQualityOut]

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

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
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, mode="json")


# --------------------------------------------------------------------------------------------
# Run-time documents. The models above define the format (and its JSON Schema); evaluation builds
# the same documents as plain dicts, which orjson writes directly. Keys are in model field order.


class Doc(dict):  # type: ignore[type-arg]
    """One object of a result document: a dict with read-only attribute access (``flag.status``)."""

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("result documents are read-only")


class Result(Doc):
    """A ``mdtflag.result/1`` document: ``patient``, ``decisions``, ``flags``, … (see :class:`ResultModel`)."""

    __slots__ = ()

    def to_dict(self) -> dict[str, Any]:
        return self

    def flag(self, rule_id: str) -> Optional[Doc]:
        for f in self["flags"]:
            if f["rule"] == rule_id:
                return f
        return None


ResultDoc = Result  # the name modules used before the document type became ``Result``


def result_json_schema() -> dict[str, Any]:
    schema = ResultModel.model_json_schema(by_alias=True)
    schema["$id"] = RESULT_SCHEMA_ID
    schema["title"] = "mdtflag result"
    return schema
