"""Rule evaluations → flags with reasons, decision groups (e.g. MDK level) and the result document."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any, NamedTuple

import orjson

import mdtflag.ruleset.model as rm
from mdtflag.compile.plan import CompiledRuleSet, PFact
from mdtflag.evaluation.field_words import field_words
from mdtflag.evaluation.kleene import MET, NOT_MET, UNKNOWN
from mdtflag.evaluation.match import id_keys
from mdtflag.evaluation.nodes import Missing, NodeResult, RuleEval
from mdtflag.evaluation.result import (
    RESULT_SCHEMA_ID,
    CohortDoc,
    DataQualityDoc,
    DecisionDoc,
    EvidenceDoc,
    FlagDoc,
    MissingDoc,
    NameVersionDoc,
    PendingDoc,
    ReasonDoc,
    Result,
    RulesetDoc,
    SuggestedDoc,
    TargetDoc,
    TextDoc,
)
from mdtflag.fhir.facts import FACT_MODELS, FactSet
from mdtflag.ruleset.model import Status

# Output objects are the typed dicts of ``result.py`` (TextDoc, FlagDoc, …), built with their keys in
# the field order of the models there: that order is the canonical JSON order (tests/test_schemas.py).

UNDETERMINED = "undetermined"
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_.]*)\}")

OUTCOME_TEXT = {
    MET: ("uppfyllt", "met"),
    NOT_MET: ("ej uppfyllt", "not met"),
    UNKNOWN: ("kan ej bedömas", "cannot be decided"),
}


def show(v: Any, lang: str = "en") -> str:
    """A value as shown in texts: decimals without trailing zeros, dates in ISO form."""
    if isinstance(v, bool):
        return ("ja" if v else "nej") if lang == "sv" else ("yes" if v else "no")
    if isinstance(v, Decimal):
        q = v.quantize(Decimal("0.001")) if v.as_tuple().exponent < -3 else v  # type: ignore[operator]
        return format(q.normalize(), "f")
    if isinstance(v, float):
        return format(Decimal(str(v)).normalize(), "f")
    if isinstance(v, (dt.date, dt.datetime)):
        return v.isoformat()
    if isinstance(v, dict) and "sv" in v and "en" in v:
        return str(v[lang])
    if isinstance(v, (list, tuple)):
        return ", ".join(show(x, lang) for x in v)
    return str(v)


_PARTS: dict[str, tuple[str, ...]] = {}


def _parts(template: str) -> tuple[str, ...]:
    """``"a {x} b"`` → ``("a ", "x", " b")``: literal text at even, placeholder names at odd positions."""
    got = _PARTS.get(template)
    if got is None:
        if len(_PARTS) > 50_000:  # templates come from rule sets; stay bounded if many are loaded
            _PARTS.clear()
        got = _PARTS[template] = tuple(_PLACEHOLDER.split(template))
    return got


def fill(template: str, ctx: Mapping[str, Any], lang: str) -> str:
    parts = _parts(template)
    if len(parts) == 1:
        return template
    out = []
    for k, part in enumerate(parts):
        if k % 2 == 0:
            out.append(part)
        else:
            value = ctx.get(part, None)
            out.append(show(value, lang) if value is not None else "{" + part + "}")
    return "".join(out)


_STATIC: dict[int, tuple[rm.Text, TextDoc]] = {}


def text_out(text: rm.Text | None, ctx: Mapping[str, Any]) -> TextDoc | None:
    if text is None:
        return None
    got = _STATIC.get(id(text))
    if got is not None and got[0] is text:
        return got[1]
    sv_parts, en_parts = _parts(text.sv), _parts(text.en)
    out = TextDoc(sv=fill(text.sv, ctx, "sv"), en=fill(text.en, ctx, "en"))
    if len(sv_parts) == 1 and len(en_parts) == 1:  # no placeholders: the same for every patient
        if len(_STATIC) > 50_000:
            _STATIC.clear()
        _STATIC[id(text)] = (text, out)
    return out


class _Layered(Mapping[str, Any]):
    """Fact fields over the base context, without copying either."""

    def __init__(self, top: Mapping[str, Any], base: Mapping[str, Any]):
        self.top, self.base = top, base

    def __getitem__(self, key: str) -> Any:
        return self.top[key] if key in self.top else self.base[key]

    def __contains__(self, key: object) -> bool:
        return key in self.top or key in self.base

    def __iter__(self) -> Any:
        return iter({**self.base, **self.top})

    def __len__(self) -> int:
        return len({**self.base, **self.top})


class Builder:
    def __init__(self, crs: CompiledRuleSet, fs: FactSet, as_of: dt.date, version: str):
        self.crs = crs
        self.fs = fs
        self.as_of = as_of
        self.version = version
        self.params = dict(crs.params)
        self.region = getattr(fs.patient, "healthcare_region", None)
        regions = crs.ruleset.tables.get("regions")
        self.region_row = regions.row(self.region) if (regions is not None and self.region) else None
        self._evidence: dict[int, list[tuple[tuple[str, str, str], EvidenceDoc]]] = {}
        # pieces that do not depend on the patient are kept with the compiled rule set (shared by all
        # patients): the output for each missing-data item that names no resource, and criterion ids of
        # constant results. An item that names a resource is the patient's own: kept for this patient only
        # (shared, a million patients' resource ids would pile up in every worker).
        self._missing: dict[Missing, MissingDoc] = crs.shared.setdefault("missing", {})
        self._own_missing: dict[Missing, MissingDoc] = {}
        self._const_ids = crs.const_ids
        self._id_lists: dict[Any, list[tuple[Any, str]]] = crs.shared.setdefault("id_lists", {})
        self._const_reasons: dict[tuple[int, int], ReasonDoc] = crs.shared.setdefault("reasons", {})
        self._fields: dict[int, dict[str, Any]] = {}
        self._pctx: dict[str, Any] | None = None

    # ---- context for templates
    def base_ctx(self, row: Mapping[str, Any] | None) -> dict[str, Any]:
        if self._pctx is None:
            self._pctx = {f"p.{k}": v for k, v in self.params.items()}
        ctx: dict[str, Any] = dict(self._pctx)
        if row is not None:
            ctx.update({f"row.{k}": v for k, v in row.items()})
        ctx["region"] = self.region_row.get("name") if self.region_row else None
        ctx["as_of"] = self.as_of
        return ctx

    def fact_ctx(self, facts: Sequence[int], ctx: Mapping[str, Any]) -> Mapping[str, Any]:
        if not facts:
            return ctx
        fields = self._fields.get(facts[0])
        if fields is None:
            f = self.fs.facts[facts[0]]
            fields = {k: v for k, v in f.__dict__.items() if k not in ("evidence", "kind")}
            fields["resource"] = f.evidence[0].resource if f.evidence else None
            self._fields[facts[0]] = fields
        return _Layered(fields, ctx)

    # ---- pieces
    def evidence(self, facts: Sequence[int]) -> list[EvidenceDoc]:
        out: list[EvidenceDoc] = []
        seen: set[tuple[str, str, str]] = set()
        for i in facts:
            for key, item in self.fact_evidence(i):
                if key not in seen:
                    seen.add(key)
                    out.append(item)
        return out

    def fact_evidence(self, i: int) -> list[tuple[tuple[str, str, str], EvidenceDoc]]:
        got = self._evidence.get(i)
        if got is None:
            got = self._evidence[i] = [
                ((e.resource, e.element, e.value), EvidenceDoc(resource=e.resource, element=e.element, value=e.value))
                for e in self.fs.facts[i].evidence
            ]
        return got

    def missing(self, items: Sequence[Missing]) -> list[MissingDoc]:
        out = []
        for m in items:
            cache = self._missing if m.resource is None and m.element is None else self._own_missing
            got = cache.get(m)
            if got is None:
                got = cache[m] = MissingDoc(
                    criterion=m.criterion,
                    fact=m.fact,
                    reason=m.reason,
                    field=m.field,
                    resource=m.resource,
                    text=self.missing_text(m),
                )
            out.append(got)
        return out

    def missing_text(self, m: Missing) -> TextDoc:
        if m.text is not None:
            what_sv, what_en = m.text.sv, m.text.en
        else:
            model = FACT_MODELS.get(m.fact)
            sv, en = model.label if model is not None else (m.fact, m.fact)
            what_sv = sv + (f" ({m.where})" if m.where else "")
            what_en = en + (f" ({m.where})" if m.where else "")
        if m.reason == "stale":
            return TextDoc(
                sv=f"Kan ej bedöma: {what_sv} äldre än {m.days} dagar",
                en=f"Cannot decide: {what_en} older than {m.days} days",
            )
        if m.reason == "field":
            if m.field == "x_uln" or m.field == "uln":
                return TextDoc(
                    sv=f"Kan ej bedöma: referensgräns (ULN) saknas för {what_sv} ({m.resource})",
                    en=f"Cannot decide: upper limit of normal (ULN) missing for {what_en} ({m.resource})",
                )
            fsv, fen = field_words(m.field, m.fact)
            return TextDoc(
                sv=f"Kan ej bedöma: {what_sv} – {fsv} saknas ({m.resource})",
                en=f"Cannot decide: {what_en} – {fen} missing ({m.resource})",
            )
        if m.reason == "unreadable":
            where = f"{m.resource}, {m.element}" if m.element else f"{m.resource}"
            if m.field:  # one field of a fact that is otherwise read
                fsv, fen = field_words(m.field, m.fact)
                what_sv, what_en = f"{what_sv} – {fsv}", f"{what_en} – {fen}"
            return TextDoc(
                sv=f"Kan ej bedöma: {what_sv} finns men kan inte läsas – se datakvalitetsanmärkningen ({where})",
                en=f"Cannot decide: {what_en} present but unreadable – see the data-quality note ({where})",
            )
        if m.reason == "rule":
            return TextDoc(
                sv=f"Kan ej bedöma: regeln {m.rule} är obestämd", en=f"Cannot decide: rule {m.rule} is indeterminate"
            )
        return TextDoc(sv=f"Kan ej bedöma: {what_sv} saknas", en=f"Cannot decide: {what_en} missing")

    def node_text(self, r: NodeResult, cid: str, ctx: Mapping[str, Any]) -> TextDoc:
        text = _chosen_text(r)
        if text is None and r.outcome == UNKNOWN and r.missing:
            return self.missing_text(r.missing[0])
        fctx = self.fact_ctx(r.facts, ctx)
        got = text_out(text, fctx)
        if got is not None:
            return got
        sv, en = OUTCOME_TEXT[r.outcome]
        detail = r.detail if isinstance(r.plan, PFact) is False and r.detail else ""
        return TextDoc(
            sv=f"{cid}: {sv}" + (f" ({detail})" if detail else ""),
            en=f"{cid}: {en}" + (f" ({detail})" if detail else ""),
        )

    def reason(self, r: NodeResult, cid: str, ctx: Mapping[str, Any]) -> ReasonDoc:
        return ReasonDoc(
            criterion=cid,
            outcome=r.outcome,
            text=self.node_text(r, cid, ctx),
            evidence=self.evidence(_own_facts(r)),
            missing=self.missing(r.missing) if r.outcome == UNKNOWN else [],
        )

    def reasons(
        self,
        results: Sequence[NodeResult],
        rule_id: str,
        ctx: Mapping[str, Any],
        blocking_only: bool = False,
        row: Mapping[str, Any] | None = None,
    ) -> list[ReasonDoc]:
        """Reasons in tree order. For a rule that did not fire, only what blocked it (criteria not met
        or unknown, and below them); ``mdtflag explain`` shows the whole tree."""
        out: list[ReasonDoc] = []

        const_ids = self._const_ids
        shared = self._const_reasons
        row_key = id(row)

        # tree order, with an explicit stack (a recursive closure would be a reference cycle that
        # keeps the whole patient alive until the garbage collector runs)
        stack = list(reversed(results))
        while stack:
            r = stack.pop()
            if blocking_only and r[1] == MET:
                continue
            cid = r[0].own
            if cid:
                if id(r) in const_ids and _row_only(_chosen_text(r)):
                    # a result that is the same for every patient, with texts that name nothing of
                    # the patient: its reason is built once (per table row)
                    key = (id(r), row_key)
                    got = shared.get(key)
                    if got is None:
                        if len(shared) > 100_000:
                            shared.clear()
                        got = shared[key] = self.reason(r, cid, ctx)
                    out.append(got)
                else:
                    out.append(self.reason(r, cid, ctx))
            if r[4]:
                stack.extend(reversed(r[4]))
        if not out and results:
            root = results[-1]
            out.append(
                ReasonDoc(
                    criterion=rule_id,
                    outcome=root.outcome,
                    text=self.node_text(root, rule_id, ctx),
                    evidence=self.evidence(root.facts),
                    missing=self.missing(root.missing) if root.outcome == UNKNOWN else [],
                )
            )
        return out

    def target(self, rule: rm.Rule) -> TargetDoc | None:
        t = rule.target
        if t is None:
            return None
        region_name = self.region_row.get("name") if self.region_row else None
        rn = TextDoc(sv=region_name["sv"], en=region_name["en"]) if isinstance(region_name, dict) else None
        if t.fixed is not None:
            centre: TextDoc | None = TextDoc(sv=t.fixed.sv, en=t.fixed.en)
        elif t.value is not None:
            table = self.crs.ruleset.tables.get(t.table or "")
            text = table.text(t.value) if table is not None else None
            centre = TextDoc(sv=text.sv, en=text.en) if text is not None else None
        else:
            table = self.crs.ruleset.tables.get(t.table or "")
            row = table.row(self.region) if (table is not None and self.region) else None
            val = row.get(t.column) if row is not None and t.column else None
            if isinstance(val, dict) and "sv" in val:
                centre = TextDoc(sv=str(val["sv"]), en=str(val.get("en", val["sv"])))
            elif val is not None:
                centre = TextDoc(sv=show(val, "sv"), en=show(val, "en"))
            else:
                centre = None
        return TargetDoc(healthcare_region=self.region, region_name=rn, centre=centre)

    def cohorts(self, ev: RuleEval) -> list[CohortDoc] | None:
        if ev.rule.for_each is None:
            return None
        # trial rules list every cohort; other per-row rules (e.g. one row per EU label) list the rows
        # that fired or are undecided
        every = ev.rule.kind == "trial"
        out = []
        for inst in ev.instances:
            if every or inst.status in ("flagged", "indeterminate"):
                out.append(self.cohort(inst.row or {}, inst.status, inst.result, ev.memo))
        if every:
            for row in ev.compiled.skipped_rows:
                out.append(self.cohort(row, "not_applicable", None))
        return sorted(out, key=lambda c: c.key)

    def row_ids(self, res: NodeResult, memo: Mapping[Any, NodeResult]) -> tuple[list[str], list[str]]:
        """Not-met and unknown criterion ids of one row's result, in tree order, from the patient's
        node results (the tree's id'd nodes are listed once per rule set)."""
        lists = self._id_lists
        keys = lists.get(res[0])
        if keys is None:
            keys = lists[res[0]] = id_keys(res[0])
        failed: dict[str, None] = {}
        unknown: dict[str, None] = {}
        for key, cid in keys:
            out = memo[key][1]
            if out == NOT_MET:
                failed[cid] = None
            elif out == UNKNOWN:
                unknown[cid] = None
        return list(failed), list(unknown)

    def cohort(
        self,
        row: Mapping[str, Any],
        status: Status,
        res: NodeResult | None,
        memo: Mapping[Any, NodeResult] | None = None,
    ) -> CohortDoc:
        failed, unknown = self.row_ids(res, memo) if res is not None and memo is not None else ([], [])
        title = row.get("title")
        enrolled = row.get("enrolled")
        return CohortDoc(
            key=str(row.get("key")),
            tag=row.get("tag"),
            title=TextDoc(sv=title["sv"], en=title["en"]) if isinstance(title, dict) else None,
            state=row.get("state"),
            enrolled=enrolled if isinstance(enrolled, int) else None,
            status=status,
            failed=failed,
            unknown=unknown,
        )

    def suggested(self, ev: RuleEval) -> list[SuggestedDoc] | None:
        s = ev.rule.suggest
        if s is None or ev.status != "flagged" or ev.best is None:
            return None
        table = self.crs.ruleset.tables.get(s.table)
        out: list[SuggestedDoc] = []
        seen: set[str] = set()
        for i in _all_facts(ev.best.result):
            key = getattr(self.fs.facts[i], s.key_field, None)
            if not isinstance(key, str) or key in seen or table is None:
                continue
            row = table.row(key)
            if row is None:
                continue
            seen.add(key)
            codes = {
                c: [str(x) for x in (row.get(c) or [])]
                if isinstance(row.get(c), list)
                else ([str(row[c])] if row.get(c) is not None else [])
                for c in s.columns
            }
            out.append(SuggestedDoc(key=key, codes=codes))
        return sorted(out, key=lambda x: x.key)

    def flag(self, ev: RuleEval) -> FlagDoc:
        rule = ev.rule
        row = ev.best.row if ev.best is not None else None
        ctx: Mapping[str, Any] = self.base_ctx(row)
        results = [r for r in (ev.applies, ev.best.result if ev.best else None) if r is not None]
        if ev.best is not None:
            ctx = self.fact_ctx(ev.best.result.facts, ctx)
        texts = rule.texts
        chosen = {
            "flagged": texts.flagged,
            "not_flagged": texts.not_flagged,
            "indeterminate": texts.indeterminate,
            "not_applicable": texts.not_applicable,
        }[ev.status]
        text = text_out(chosen, ctx) or _default_status_text(ev.status)
        missing: list[Missing] = []
        if ev.applies is not None and ev.applies.outcome == UNKNOWN:
            missing += ev.applies.missing
        if ev.status == "indeterminate" and ev.best is not None:
            missing += ev.best.result.missing
        return FlagDoc(
            rule=rule.id,
            version=rule.version,
            kind=rule.kind,
            title=TextDoc(sv=rule.title.sv, en=rule.title.en),
            tag=rule.tag,
            status=ev.status,
            text=text,
            reasons=self.reasons(
                results, rule.id, ctx, blocking_only=ev.status in ("not_flagged", "not_applicable"), row=row
            ),
            missing=_unique(self.missing(list(dict.fromkeys(missing)))),
            target=self.target(rule) if ev.status in ("flagged", "indeterminate") else None,
            cohorts=self.cohorts(ev),
            suggested_codes=self.suggested(ev),
        )

    def decisions(self, evals: Sequence[RuleEval], flags: Mapping[str, FlagDoc]) -> dict[str, DecisionDoc]:
        groups: dict[str, list[tuple[rm.Decision, RuleEval]]] = {}
        for ev in evals:
            if ev.rule.decision is not None:
                groups.setdefault(ev.rule.decision.group, []).append((ev.rule.decision, ev))
        out: dict[str, DecisionDoc] = {}
        for name in sorted(groups):
            ranked = sorted(groups[name], key=lambda de: (de[0].rank, de[1].rule.id))
            flagged = [(d, e) for d, e in ranked if e.status == "flagged"]
            best_rank = flagged[0][0].rank if flagged else None
            deciding = [(d, e) for d, e in flagged if d.rank == best_rank]
            pending = [
                (d, e) for d, e in ranked if e.status == "indeterminate" and (best_rank is None or d.rank < best_rank)
            ]
            level = deciding[0][0].level if deciding else UNDETERMINED
            target = next((flags[e.rule.id].target for _, e in deciding if flags[e.rule.id].target is not None), None)
            if deciding:
                text = TextDoc(
                    sv=" ".join(flags[e.rule.id].text.sv for _, e in deciding),
                    en=" ".join(flags[e.rule.id].text.en for _, e in deciding),
                )
            else:
                # why no level: the rules that do not apply, the undecided ones, and the default route
                # (the lowest-ranked rule that applies) with its own reason
                applicable = [d.rank for d, e in ranked if e.status != "not_applicable"]
                last = max(applicable) if applicable else None
                why = [
                    flags[e.rule.id]
                    for d, e in ranked
                    if e.status in ("not_applicable", "indeterminate") or d.rank == last
                ]
                sv_why = " ".join(dict.fromkeys(f.text.sv for f in why))
                en_why = " ".join(dict.fromkeys(f.text.en for f in why))
                text = TextDoc(
                    sv=("Ingen nivå kunde bestämmas. " + sv_why).strip(),
                    en=("No level could be decided. " + en_why).strip(),
                )
            out[name] = DecisionDoc(
                level=level,
                rules=[e.rule.id for _, e in deciding],
                target=target,
                pending=[
                    PendingDoc(rule=e.rule.id, level=d.level, missing=_unique(flags[e.rule.id].missing))
                    for d, e in pending
                ],
                text=text,
            )
        return out


def _chosen_text(r: NodeResult) -> rm.Text | None:
    """The criterion's own text for its outcome (``None``: the missing-data or default text)."""
    node = r[0].node
    out = r[1]
    if out == MET:
        return node.text
    if out == NOT_MET:
        return node.text_not_met or node.text
    if node.text_unknown is None and r[3]:
        return None
    return node.text_unknown or node.text


_ROW_ONLY: dict[int, tuple[Any, bool]] = {}


def _row_only(text: rm.Text | None) -> bool:
    """Whether a text names only table-row values and parameters (``{row.…}``, ``{p.…}``), so that
    it reads the same for every patient."""
    if text is None:
        return True
    got = _ROW_ONLY.get(id(text))
    if got is not None and got[0] is text:
        return got[1]
    names = [name for template in (text.sv, text.en) for name in _parts(template)[1::2]]
    ok = all(n.startswith(("row.", "p.")) for n in names)
    if len(_ROW_ONLY) > 50_000:
        _ROW_ONLY.clear()
    _ROW_ONLY[id(text)] = (text, ok)
    return ok


def _own_facts(r: NodeResult) -> tuple[int, ...]:
    """The facts behind a result that no reported (id'd) descendant already shows as evidence."""
    if not r.children:
        return r.facts
    shown: set[int] = set()
    for ch in r.children:
        if ch.plan.own:
            shown.update(_all_facts(ch))
    return tuple(i for i in r.facts if i not in shown)


def _unique(items: Sequence[MissingDoc]) -> list[MissingDoc]:
    seen: set[bytes] = set()
    out = []
    for m in items:
        key = orjson.dumps(m)
        if key not in seen:
            seen.add(key)
            out.append(m)
    return out


def _all_facts(r: NodeResult) -> list[int]:
    out = list(r.facts)
    for ch in r.children:
        out += [i for i in _all_facts(ch) if i not in out]
    return out


def _default_status_text(status: str) -> TextDoc:
    sv = {
        "flagged": "Flaggad",
        "not_flagged": "Ej flaggad",
        "indeterminate": "Obestämd – data saknas",
        "not_applicable": "Ej tillämplig",
    }[status]
    en = {
        "flagged": "Flagged",
        "not_flagged": "Not flagged",
        "indeterminate": "Indeterminate – data missing",
        "not_applicable": "Not applicable",
    }[status]
    return TextDoc(sv=sv, en=en)


class CriterionTexts(NamedTuple):
    """What a result shows for one criterion outcome: its text, the evidence behind it, the missing data."""

    text: TextDoc | None  # as in a reason; None for a criterion without id
    evidence: list[EvidenceDoc]
    missing: list[TextDoc]  # one text per missing-data item


def criterion_texts(
    crs: CompiledRuleSet, fs: FactSet, as_of: dt.date
) -> Callable[[NodeResult, Mapping[str, Any] | None], CriterionTexts]:
    """For one patient: criterion result and table row (or None) → its texts, filled as in the result document."""
    b = Builder(crs, fs, as_of, "")

    def texts(r: NodeResult, row: Mapping[str, Any] | None) -> CriterionTexts:
        cid = getattr(r.node, "id", None)
        text = b.node_text(r, cid, b.base_ctx(row)) if cid else None
        return CriterionTexts(text, b.evidence(r.facts), [b.missing_text(m) for m in r.missing])

    return texts


def build_result(
    crs: CompiledRuleSet,
    fs: FactSet,
    evals: Sequence[RuleEval],
    as_of: dt.date,
    version: str,
    notes: Sequence[Any] = (),
    patient_ref: str | None = None,
) -> Result:
    b = Builder(crs, fs, as_of, version)
    flags = {ev.rule.id: b.flag(ev) for ev in evals}
    rs = crs.ruleset
    pid = patient_ref or (fs.patient.evidence[0].resource if fs.patient.evidence else "Patient/")
    dq = []
    seen: set[tuple[Any, ...]] = set()
    for n in list(notes) + list(fs.notes):
        key = (n.code, n.message, n.resource, n.element)
        if key not in seen:
            seen.add(key)
            dq.append(DataQualityDoc(code=n.code, message=n.message, resource=n.resource, element=n.element))
    return Result(
        schema=RESULT_SCHEMA_ID,
        patient=pid,
        as_of=as_of.isoformat(),
        engine=NameVersionDoc(name="mdtflag", version=version),
        ruleset=RulesetDoc(name=rs.name, version=rs.version, digest=rs.digest, profile=crs.profile),
        decisions=b.decisions(evals, flags),
        flags=[flags[k] for k in sorted(flags)],
        data_quality=dq,
    )
