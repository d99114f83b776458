"""Rule files → an immutable rule model that remembers where every node came from.

A rule directory holds::

    ruleset.yaml          name, version, title of the rule set
    profiles.yaml         named threshold profiles (parameters for rules)
    valuesets/*.yaml      named code lists (value sets)
    tables/*.yaml         knowledge tables (rows with a key and a provenance tag)
    fragments/*.yaml      shared criteria blocks, used in criteria trees as ``{use: NAME}``
    criteria/**/*.yaml    one rule per file
    tests/**/*.yaml       rule test cases (see ``mdtflag rules test``)

Everything is validated by pydantic models with ``extra="forbid"``; every problem becomes a
:class:`~mdtflag.diagnostics.Diagnostic` with file:line:col.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Annotated, Any, Literal, Optional, Union

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    Tag,
    TypeAdapter,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema

from mdtflag.fhir.facts.terminology import Terminology
from mdtflag.ruleset.diagnostics import Pos
from mdtflag.ruleset.positions import KEYPOS_KEY, POS_KEY, PosList, strip

TAGS = ("SEED-004", "PUB", "DA", "VERIFY")
ProvTag = Literal["SEED-004", "PUB", "DA", "VERIFY"]
RuleKind = Literal[
    "mdk", "trial", "hereditary", "paediatric", "data-quality", "derived"
]  # derived: a helper fact other rules refer to
Status = Literal["flagged", "not_flagged", "indeterminate", "not_applicable"]
Outcome = Literal["met", "not_met", "unknown"]
RULE_ID = r"^[A-Z][A-Z0-9]*(-[A-Za-z0-9]+)*$"
FRAGMENT_ID = r"^[a-z0-9][a-z0-9_-]*$"
SEMVER = r"^\d+\.\d+\.\d+$"


class Model(BaseModel):
    """Base: frozen, unknown keys rejected, ``pos`` filled from the YAML position keys."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, defer_build=True)
    pos: SkipJsonSchema[Pos] = Field(default=Pos(""), alias=POS_KEY, exclude=True, repr=False)

    @model_validator(mode="before")
    @classmethod
    def _positions(cls, data: Any, info: ValidationInfo) -> Any:
        if isinstance(data, dict):
            data = dict(data)
            data.pop(KEYPOS_KEY, None)
            raw = data.get(POS_KEY)
            file = (info.context or {}).get("file", "")
            # a node copied from a fragment already holds its own position (file and where it was used)
            data[POS_KEY] = raw if isinstance(raw, Pos) else Pos(file, *raw) if isinstance(raw, tuple) else Pos(file)
        return data


class Text(Model):
    """A text in Swedish and English. Templates may use ``{placeholders}`` (see the rule guide)."""

    sv: str = Field(min_length=1)
    en: str = Field(min_length=1)


Scalar = Union[StrictBool, StrictInt, StrictFloat, StrictStr, dt.date]


class Lookup(Model):
    """Values of ``column`` from every row of ``table`` whose ``match`` column equals the parameter's value.

    ``{param: row.biomarker, lookup: {table: eu-labels, match: biomarker, column: drugs}}`` joins tables
    when compiling, so rule files never repeat table content.
    """

    table: str
    match: str
    column: str


class ParamRef(Model):
    """A value taken from the threshold profile (``{param: ecog_max}``) or the row (``{param: row.drugs}``)."""

    param: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_-]*)?$")
    lookup: Optional[Lookup] = None


class ValueSetRef(Model):
    valueset: str


class ValueSetsRef(Model):
    valuesets: Union[list[str], ParamRef]


Value = Union[Scalar, ParamRef]
SetValue = Union[list[Scalar], ValueSetRef, ValueSetsRef, ParamRef]
CondOp = Literal["eq", "ne", "lt", "lte", "gt", "gte", "in", "not_in"]


class FieldCond(Model):
    """One comparison: exactly one of the operator keys."""

    eq: Optional[Value] = None
    ne: Optional[Value] = None
    lt: Optional[Value] = None
    lte: Optional[Value] = None
    gt: Optional[Value] = None
    gte: Optional[Value] = None
    in_: Optional[SetValue] = Field(default=None, alias="in")
    not_in: Optional[SetValue] = None

    @model_validator(mode="after")
    def _one_op(self) -> FieldCond:
        if len(self.ops()) != 1:
            raise ValueError("a condition needs exactly one operator: eq, ne, lt, lte, gt, gte, in or not_in")
        return self

    def ops(self) -> list[tuple[CondOp, Any]]:
        names: tuple[CondOp, ...] = ("eq", "ne", "lt", "lte", "gt", "gte", "in", "not_in")
        out = []
        for name in names:
            v = getattr(self, "in_" if name == "in" else name)
            if v is not None:
                out.append((name, v))
        return out

    @property
    def op(self) -> CondOp:
        return self.ops()[0][0]

    @property
    def value(self) -> Any:
        return self.ops()[0][1]


class FieldTest(Model):
    field: str
    cond: FieldCond


def _fields_from_mapping(data: Any) -> Any:
    """``{gene: BRCA1, vaf: {gte: 0.3}}`` → ``{"fields": [FieldTest, ...]}`` keeping key positions."""
    if not isinstance(data, dict) or "fields" in data:
        return data
    keypos = data.get(KEYPOS_KEY, {})
    fields = PosList()
    fields.pos = data.get(POS_KEY, (0, 0))
    fields.item_pos = []
    for k, v in data.items():
        if k in (POS_KEY, KEYPOS_KEY):
            continue
        cond = v if isinstance(v, dict) else {"eq": v, POS_KEY: keypos.get(k, (0, 0))}
        fields.append({"field": k, "cond": cond, POS_KEY: keypos.get(k, (0, 0))})
        fields.item_pos.append(keypos.get(k, (0, 0)))
    return {"fields": fields, POS_KEY: data.get(POS_KEY, (0, 0))}


class Conditions(Model):
    """A conjunction of field conditions on one fact."""

    fields: tuple[FieldTest, ...] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _from_mapping(cls, data: Any) -> Any:
        return _fields_from_mapping(data)


class TestAll(Model):
    all: tuple[TestExpr, ...] = Field(min_length=1)


class TestAny(Model):
    any: tuple[TestExpr, ...] = Field(min_length=1)


class TestNot(Model):
    not_: TestExpr = Field(alias="not")


def _test_tag(v: Any) -> Optional[str]:
    if isinstance(v, dict):
        for key in ("all", "any", "not"):
            if key in v:
                return key
        return "fields"
    if isinstance(v, BaseModel):
        return {TestAll: "all", TestAny: "any", TestNot: "not"}.get(type(v), "fields")
    return None


TestExpr = Annotated[
    Union[
        Annotated[TestAll, Tag("all")],
        Annotated[TestAny, Tag("any")],
        Annotated[TestNot, Tag("not")],
        Annotated[Conditions, Tag("fields")],
    ],
    Discriminator(
        _test_tag,
        custom_error_type="test",
        custom_error_message="a test is a mapping of field conditions, or all/any/not of tests",
    ),
]


class NodeBase(Model):
    """Fields shared by every criterion node."""

    id: Optional[str] = Field(default=None, pattern=RULE_ID)
    text: Optional[Text] = None
    text_not_met: Optional[Text] = None
    text_unknown: Optional[Text] = None
    missing_text: Optional[Text] = None


class AllNode(NodeBase):
    all: tuple[Criterion, ...] = Field(min_length=1)


class AnyNode(NodeBase):
    any: tuple[Criterion, ...] = Field(min_length=1)


class NotNode(NodeBase):
    not_: Criterion = Field(alias="not")


LeafFallback = Literal["unknown", "not_met", "met"]


class FactLeaf(NodeBase):
    """∃ a fact of kind ``fact`` among the candidates (``where``, ``latest``, ``max_age_days``) passing ``test``."""

    fact: str
    where: Optional[Conditions] = None
    latest: bool = False
    max_age_days: Optional[Union[StrictInt, ParamRef]] = None
    test: Optional[TestExpr] = None
    missing: LeafFallback = "unknown"
    stale: Literal["unknown", "not_met"] = "unknown"
    min_count: Optional[int] = Field(
        default=None, ge=1, description="met when at least this many candidates pass (default 1)"
    )


class RuleRefLeaf(NodeBase):
    """The status of another rule, or the outcome of one of its criteria."""

    rule: str = Field(pattern=RULE_ID)
    criterion: Optional[str] = None
    status: Optional[tuple[Status, ...]] = None
    outcome: Optional[tuple[Outcome, ...]] = None

    @model_validator(mode="after")
    def _shape(self) -> RuleRefLeaf:
        if self.criterion is None and (self.status is None or self.outcome is not None):
            raise ValueError("a rule reference without 'criterion' needs 'status' (and no 'outcome')")
        if self.criterion is not None and (self.outcome is None or self.status is not None):
            raise ValueError("a rule reference with 'criterion' needs 'outcome' (and no 'status')")
        return self


class ParamLeaf(NodeBase):
    """Met when a profile or row parameter has one of the given values (decided when compiling)."""

    param: str
    equals: Union[Scalar, list[Optional[Scalar]], None]


def _crit_tag(v: Any) -> Optional[str]:
    if isinstance(v, dict):
        for key in ("all", "any", "not", "fact", "rule", "param"):
            if key in v:
                return key
        return None
    if isinstance(v, BaseModel):
        return {
            AllNode: "all",
            AnyNode: "any",
            NotNode: "not",
            FactLeaf: "fact",
            RuleRefLeaf: "rule",
            ParamLeaf: "param",
        }.get(type(v))
    return None


Criterion = Annotated[
    Union[
        Annotated[AllNode, Tag("all")],
        Annotated[AnyNode, Tag("any")],
        Annotated[NotNode, Tag("not")],
        Annotated[FactLeaf, Tag("fact")],
        Annotated[RuleRefLeaf, Tag("rule")],
        Annotated[ParamLeaf, Tag("param")],
    ],
    Discriminator(
        _crit_tag,
        custom_error_type="criterion",
        custom_error_message="a criterion needs one of the keys all, any, not, fact, rule or param",
    ),
]


class FragmentUse(NodeBase):
    """``{use: NAME}``: the criterion of ``fragments/NAME.yaml`` in place of this node.

    ``id`` and texts written here replace the fragment's own. Uses are expanded when the rule file is
    read (:mod:`mdtflag.ruleset.fragments`), so this model only describes the key in the JSON Schema.
    """

    use: str = Field(pattern=FRAGMENT_ID)


# The recursive models (AllNode … TestNot) name types defined after them; their schemas are built on
# first use (``defer_build``), when every name of this module is defined.


class Decision(Model):
    """Membership of a decision group; rank 1 wins over rank 2, and so on."""

    group: str = Field(pattern=r"^[a-z][a-z0-9_-]*$")
    level: str = Field(pattern=r"^[a-z][a-z0-9_-]*$")
    rank: int = Field(ge=1)


class Target(Model):
    """Where a flagged patient goes: a column of the region's row, a text of the whole table (``value``), or fixed text."""

    table: Optional[str] = None
    column: Optional[str] = None
    value: Optional[str] = None
    fixed: Optional[Text] = None

    @model_validator(mode="after")
    def _shape(self) -> Target:
        if sum(x is not None for x in (self.fixed, self.column, self.value)) != 1:
            raise ValueError("a target needs either 'fixed', 'table' + 'column' or 'table' + 'value'")
        if (self.column is not None or self.value is not None) and self.table is None:
            raise ValueError("'column' and 'value' need 'table'")
        return self


class ForEach(Model):
    """Evaluate the criteria once per table row (e.g. per trial cohort); rows with ``state: closed`` are skipped.

    ``gate``: the id of a criterion that is a conjunct of the criteria (reached through ``all`` nodes
    only). A row where it is not met is decided at once (not flagged, that criterion as the reason)
    without evaluating the rest: for tables with many rows of which few can apply to one patient.
    """

    table: str
    gate: Optional[str] = Field(default=None, pattern=RULE_ID)


class Suggest(Model):
    """Attach table rows (e.g. SNOMED/ORPHA/OMIM codes) keyed by a field of the evidence facts."""

    table: str
    key_field: str
    columns: tuple[str, ...] = Field(min_length=1)


class RuleTexts(Model):
    flagged: Text
    not_flagged: Optional[Text] = None
    indeterminate: Optional[Text] = None
    not_applicable: Optional[Text] = None


class Rule(Model):
    id: str = Field(pattern=RULE_ID)
    version: str = Field(pattern=SEMVER)
    title: Text
    kind: RuleKind
    tag: ProvTag
    sources: tuple[str, ...] = Field(min_length=1)
    description: Optional[Text] = None
    decision: Optional[Decision] = None
    target: Optional[Target] = None
    applies_when: Optional[Criterion] = None
    for_each: Optional[ForEach] = None
    suggest: Optional[Suggest] = None
    texts: RuleTexts
    criteria: Criterion


class Fragment(Model):
    """A shared criteria block (``fragments/<id>.yaml``); its criterion is validated where it is used."""

    id: str = Field(pattern=FRAGMENT_ID)
    title: Text
    description: Optional[Text] = None
    criterion: dict[str, Any]


_CRITERION: TypeAdapter[Any] = TypeAdapter(Criterion, config=ConfigDict(defer_build=True))


class RulesetMeta(Model):
    name: str = Field(pattern=r"^[a-z][a-z0-9_-]*$")
    version: str = Field(pattern=SEMVER)
    title: Text
    description: Optional[Text] = None


class KnowledgeBase(Model):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    title: Text
    date: dt.date
    sources: tuple[str, ...] = Field(min_length=1)
    tag: ProvTag


class ValueSet(KnowledgeBase):
    field: str
    values: tuple[Union[StrictStr, StrictInt], ...] = Field(min_length=1)
    display: Optional[dict[str, str]] = None
    tags: Optional[dict[str, ProvTag]] = None

    @field_validator("display", "tags", mode="before")
    @classmethod
    def _plain(cls, v: Any) -> Any:
        return strip(v)


class Table(KnowledgeBase):
    rows: tuple[dict[str, Any], ...] = Field(min_length=1)
    national_mdk: Optional[Text] = None

    def text(self, name: str) -> Optional[Text]:
        """A text of the table itself (not of a row), e.g. ``national_mdk``; ``None`` if it has none by that name."""
        value = getattr(self, name, None) if name in type(self).model_fields else None
        return value if isinstance(value, Text) else None

    @field_validator("rows", mode="before")
    @classmethod
    def _rows(cls, v: Any) -> Any:
        rows = strip(v)
        if isinstance(rows, list):
            for i, row in enumerate(rows):
                if not isinstance(row, dict) or not isinstance(row.get("key"), str) or row.get("tag") not in TAGS:
                    raise ValueError(f"row {i + 1}: every row needs a text 'key' and a 'tag' ({', '.join(TAGS)})")
        return rows

    def row(self, key: str) -> Optional[dict[str, Any]]:
        for r in self.rows:
            if r["key"] == key:
                return r
        return None


class Profiles(KnowledgeBase):
    default: str
    profiles: dict[str, dict[str, Any]] = Field(min_length=1)

    @field_validator("profiles", mode="before")
    @classmethod
    def _plain(cls, v: Any) -> Any:
        return strip(v)

    @model_validator(mode="after")
    def _default_exists(self) -> Profiles:
        if self.default not in self.profiles:
            raise ValueError(f"default profile '{self.default}' is not defined")
        return self


class RuleSet(BaseModel):
    """A loaded rule directory: immutable, with a content digest over every file read."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True, defer_build=True)
    root: str
    meta: RulesetMeta
    digest: str
    rules: tuple[Rule, ...]
    valuesets: Mapping[str, ValueSet]
    tables: Mapping[str, Table]
    profiles: Profiles
    sources: Mapping[str, str] = Field(repr=False)
    test_files: tuple[str, ...] = ()
    fragments: Mapping[str, Fragment] = Field(default_factory=dict)
    #: where each fragment is used (fragments no rule uses are absent)
    fragment_uses: Mapping[str, tuple[Pos, ...]] = Field(default_factory=dict)
    #: the code maps, value sets and code properties of terminology/ (FHIR JSON), read by the fact readers
    terminology: Terminology = Field(default_factory=Terminology, repr=False)

    @property
    def name(self) -> str:
        return self.meta.name

    @property
    def version(self) -> str:
        return self.meta.version

    def rule(self, rule_id: str) -> Optional[Rule]:
        for r in self.rules:
            if r.id == rule_id:
                return r
        return None


# --------------------------------------------------------------------------- loading
