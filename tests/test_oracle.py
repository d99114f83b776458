"""The durable-rules path (compile → engine → Kleene plan) agrees with an independent evaluator.

The oracle below reads the raw rule dictionaries and the facts' Python values directly: it shares no
code with ``compile``/``engine``/``match``. Each hypothesis example builds a random rule set and
evaluates it on many random patients, for well over 10,000 (rule set, patient) cases per run.
"""

from __future__ import annotations

import datetime as dt
import itertools
import random
from decimal import Decimal
from typing import Any, Optional

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mdtflag.ruleset.model as rm
from mdtflag.compile.compiler import compile_or_raise
from mdtflag.evaluation.match import evaluate_facts
from mdtflag.fhir.facts import EcogFact, Evidence, FactSet, LabFact, PatientFact, VariantFact

AS_OF = dt.date(2026, 11, 1)
PATIENTS_PER_RULESET = 30
EXAMPLES = 400  # × 30 patients = 12,000 cases

FIELDS: dict[str, dict[str, str]] = {
    "lab": {"analyte": "str", "value": "decimal", "x_uln": "decimal", "age_days": "int"},
    "variant": {"gene": "str", "present": "bool", "vaf": "decimal"},
    "ecog": {"value": "int", "age_days": "int"},
    "patient": {"age": "int", "deceased": "bool"},
}
STRS = {"analyte": ["anc", "hb", "plt"], "gene": ["BRAF", "KRAS", "NTRK1", "BRCA2"]}
OPS = {
    "str": ["eq", "ne", "in", "not_in"],
    "bool": ["eq", "ne"],
    "int": ["eq", "ne", "lt", "lte", "gt", "gte", "in", "not_in"],
    "decimal": ["eq", "ne", "lt", "lte", "gt", "gte", "in", "not_in"],
}
PROFILE = {"lim": 2, "dlim": 1.5, "mode": "x"}

# ------------------------------------------------------------------ random rules (as raw dicts)


def _const(draw: Any, ftype: str, field: str) -> Any:
    if ftype == "str":
        return draw(st.sampled_from(STRS[field] + ["OTHER"]))
    if ftype == "bool":
        return draw(st.booleans())
    if ftype == "int":
        return draw(st.integers(-3, 60))
    return float(Decimal(draw(st.integers(-500, 5000))) / 1000)


@st.composite
def conds(draw: Any, kind: str, n_max: int = 2) -> dict[str, Any]:
    fields = FIELDS[kind]
    chosen = draw(st.lists(st.sampled_from(sorted(fields)), min_size=1, max_size=n_max, unique=True))
    out: dict[str, Any] = {}
    for f in chosen:
        ftype = fields[f]
        op = draw(st.sampled_from(OPS[ftype]))
        if op in ("in", "not_in"):
            out[f] = {op: [_const(draw, ftype, f) for _ in range(draw(st.integers(1, 3)))]}
        elif op == "eq" and draw(st.booleans()):
            out[f] = _const(draw, ftype, f)
        elif ftype == "int" and op in ("lt", "lte", "gt", "gte") and draw(st.integers(0, 4)) == 0:
            out[f] = {op: {"param": "lim"}}
        elif ftype == "decimal" and op in ("lt", "lte", "gt", "gte") and draw(st.integers(0, 4)) == 0:
            out[f] = {op: {"param": "dlim"}}
        else:
            out[f] = {op: _const(draw, ftype, f)}
    return out


@st.composite
def gen_test_expr(draw: Any, kind: str, depth: int = 0) -> dict[str, Any]:
    if depth < 2 and draw(st.integers(0, 3)) == 0:
        op = draw(st.sampled_from(["all", "any", "not"]))
        if op == "not":
            return {"not": draw(gen_test_expr(kind, depth + 1))}
        return {op: draw(st.lists(gen_test_expr(kind, depth + 1), min_size=1, max_size=3))}
    return draw(conds(kind))


@st.composite
def criterion(draw: Any, counter: list[int], depth: int = 0) -> dict[str, Any]:
    counter[0] += 1
    cid = f"N-{counter[0]}"
    r = draw(st.integers(0, 9))
    if depth < 3 and r <= 3:
        op = draw(st.sampled_from(["all", "any", "not"]))
        if op == "not":
            return {"id": cid, "not": draw(criterion(counter, depth + 1))}
        return {"id": cid, op: draw(st.lists(criterion(counter, depth + 1), min_size=1, max_size=3))}
    if r == 4:
        return {"id": cid, "param": "mode", "equals": draw(st.sampled_from(["x", "y", ["x", "y"]]))}
    kind = draw(st.sampled_from(sorted(FIELDS)))
    leaf: dict[str, Any] = {"id": cid, "fact": kind}
    if kind == "lab" and draw(st.booleans()):
        leaf["where"] = {"analyte": draw(st.sampled_from(STRS["analyte"]))}
    elif draw(st.integers(0, 3)) == 0:
        leaf["where"] = draw(conds(kind, 1))
    if kind in ("lab", "ecog") and draw(st.booleans()):
        leaf["latest"] = True
    if kind in ("lab", "ecog") and draw(st.integers(0, 2)) == 0:
        leaf["max_age_days"] = draw(st.integers(0, 40))
    if draw(st.integers(0, 5)) > 0:
        leaf["test"] = draw(gen_test_expr(kind))
    leaf["missing"] = draw(st.sampled_from(["unknown", "unknown", "not_met", "met"]))
    leaf["stale"] = draw(st.sampled_from(["unknown", "not_met"]))
    return leaf


@st.composite
def rulesets(draw: Any) -> list[dict[str, Any]]:
    rules = []
    for i in range(draw(st.integers(1, 4))):
        counter = [0]
        rule: dict[str, Any] = {
            "id": f"R-{i}",
            "version": "1.0.0",
            "title": {"sv": "t", "en": "t"},
            "kind": "trial",
            "tag": "DA",
            "sources": ["test"],
            "texts": {"flagged": {"sv": "f", "en": "f"}},
            "criteria": draw(criterion(counter)),
        }
        if draw(st.integers(0, 3)) == 0:
            rule["applies_when"] = draw(criterion([100]))
        rules.append(rule)
    return rules


def build_ruleset(rules: list[dict[str, Any]]) -> rm.RuleSet:
    ctx = {"file": "mem.yaml"}
    profiles = rm.Profiles.model_validate(
        {
            "id": "profiles",
            "title": {"sv": "p", "en": "p"},
            "date": AS_OF,
            "sources": ["t"],
            "tag": "DA",
            "default": "P",
            "profiles": {"P": PROFILE},
        },
        context=ctx,
    )
    meta = rm.RulesetMeta.model_validate(
        {"name": "oracle", "version": "0.0.1", "title": {"sv": "o", "en": "o"}}, context=ctx
    )
    return rm.RuleSet(
        root="mem",
        meta=meta,
        digest="sha256:0",
        rules=tuple(rm.Rule.model_validate(r, context=ctx) for r in rules),
        valuesets={},
        tables={},
        profiles=profiles,
        sources={},
    )


# ------------------------------------------------------------------ random patients


def _dec(rng: random.Random) -> Decimal:
    return Decimal(rng.randint(-500, 5000)) / 1000


def _maybe(rng: random.Random, v: Any) -> Any:
    return None if rng.random() < 0.2 else v


def random_patient(rng: random.Random) -> FactSet:
    ev = (Evidence(resource="Patient/x", element="birthDate", value="x"),)
    patient = PatientFact(age=_maybe(rng, rng.randint(0, 60)), deceased=rng.random() < 0.2, evidence=ev)
    facts: list[Any] = [patient]
    # fields a reader found present but could not read (e.g. a unit not accepted): the field is unknown
    unread: list[tuple[str, str, str, str]] = []
    for i in range(rng.randint(0, 6)):
        d = _maybe(rng, AS_OF - dt.timedelta(days=rng.randint(0, 60)))
        analyte = rng.choice(STRS["analyte"])
        if rng.random() < 0.3:  # a value present but not understood
            unread.append(("lab", "x_uln", f"Observation/l{i}", "referenceRange"))
        facts.append(
            LabFact(
                analyte=analyte,
                value=_dec(rng),
                unit="u",
                x_uln=_maybe(rng, _dec(rng)),
                date=d,
                age_days=(AS_OF - d).days if d else None,
                evidence=(Evidence(resource=f"Observation/l{i}", element="valueQuantity", value="v"),),
            )
        )
    for i in range(rng.randint(0, 4)):
        gene = rng.choice(STRS["gene"])
        if rng.random() < 0.3:  # a value of the resource present but not understood: its unknown fields may be anything
            unread.append(("variant", "vaf", f"Observation/v{i}", "component"))
        facts.append(
            VariantFact(
                gene=gene,
                present=rng.random() < 0.8,
                vaf=_maybe(rng, _dec(rng)),
                evidence=(Evidence(resource=f"Observation/v{i}", element="component", value="v"),),
            )
        )
    for i in range(rng.randint(0, 3)):
        d = _maybe(rng, AS_OF - dt.timedelta(days=rng.randint(0, 60)))
        facts.append(
            EcogFact(
                value=rng.randint(0, 5),
                date=d,
                age_days=(AS_OF - d).days if d else None,
                evidence=(Evidence(resource=f"Observation/e{i}", element="valueInteger", value="v"),),
            )
        )
    return FactSet(patient=patient, facts=tuple(facts), unreadable_fields=tuple(unread))


# ------------------------------------------------------------------ the oracle


def _cmp(fv: Any, op: str, c: Any) -> bool:
    if isinstance(c, dict):
        c = PROFILE[c["param"]]
    norm = (lambda x: Decimal(str(x))) if isinstance(fv, Decimal) else (lambda x: x)
    if op in ("in", "not_in"):
        hit = any(fv == norm(x) for x in c)
        return hit if op == "in" else not hit
    c = norm(c)
    return {"eq": fv == c, "ne": fv != c, "lt": fv < c, "lte": fv <= c, "gt": fv > c, "gte": fv >= c}[op]


def _cond(fact: Any, field: str, spec: Any) -> str:
    fv = getattr(fact, field)
    if fv is None:
        return "unknown"
    if isinstance(spec, dict):
        ((op, c),) = spec.items()
    else:
        op, c = "eq", spec
    return "met" if _cmp(fv, op, c) else "not_met"


def k_and(xs: list[str]) -> str:
    return "not_met" if "not_met" in xs else "unknown" if "unknown" in xs else "met"


def k_or(xs: list[str]) -> str:
    return "met" if "met" in xs else "unknown" if "unknown" in xs else "not_met"


NEG = {"met": "not_met", "not_met": "met", "unknown": "unknown"}


def o_test(fact: Any, t: dict[str, Any]) -> str:
    if "all" in t:
        return k_and([o_test(fact, x) for x in t["all"]])
    if "any" in t:
        return k_or([o_test(fact, x) for x in t["any"]])
    if "not" in t:
        return NEG[o_test(fact, t["not"])]
    return k_and([_cond(fact, f, s) for f, s in t.items()])


def o_const(c: dict[str, Any]) -> Optional[str]:
    """Outcome of a node decided by parameters alone (no fact leaf below it), else None."""
    if "param" in c:
        want = c["equals"] if isinstance(c["equals"], list) else [c["equals"]]
        return "met" if PROFILE[c["param"]] in want else "not_met"
    if "not" in c:
        inner = o_const(c["not"])
        return None if inner is None else NEG[inner]
    if "all" in c or "any" in c:
        op = "all" if "all" in c else "any"
        outs = [o_const(x) for x in c[op]]
        deciding = "not_met" if op == "all" else "met"
        if deciding in outs:
            return deciding
        if all(o is not None for o in outs):
            return NEG[deciding]
    return None


def o_crit(c: dict[str, Any], fs: FactSet, out: dict[str, str]) -> str:
    """Kleene evaluation, recording the outcome of every reported node.

    Documented pruning: under all/any, a branch decided by parameters alone that decides the node
    hides its siblings; one that cannot change the node is hidden (unless every branch is).
    """
    if "all" in c or "any" in c:
        op = "all" if "all" in c else "any"
        deciding = "not_met" if op == "all" else "met"
        kids = c[op]
        consts = [o_const(x) for x in kids]
        if deciding in consts:
            shown = [kids[consts.index(deciding)]]
        else:
            shown = [x for x, k in zip(kids, consts) if k is None] or kids[:1]
        vals = [o_crit(x, fs, out) for x in shown]
        res = k_and(vals) if op == "all" else k_or(vals)
    elif "not" in c:
        res = NEG[o_crit(c["not"], fs, out)]
    elif "param" in c:
        res = o_const(c)  # type: ignore[assignment]
    else:
        res = o_leaf(c, fs)
    out[c["id"]] = res
    return res


def o_leaf(c: dict[str, Any], fs: FactSet) -> str:
    """Open world: a fact whose ``where`` is unknown because a field it tests is present but unreadable
    (``unreadable_fields``) may or may not be a candidate; the leaf is decided only when every choice agrees."""
    unread = {(k, f, r) for k, f, r, _e in fs.unreadable_fields}
    idx = [i for i, f in enumerate(fs.facts) if f.kind == c["fact"]]
    sure: list[int] = []
    unsure: list[int] = []
    for i in idx:
        w = k_and([_cond(fs.facts[i], field, spec) for field, spec in (c.get("where") or {}).items()])
        if w == "met":
            sure.append(i)
        elif w == "unknown" and any(
            getattr(fs.facts[i], f) is None and (c["fact"], f, fs.facts[i].evidence[0].resource) in unread
            for f in c.get("where") or {}
        ):
            unsure.append(i)
    outs = set()
    for k in range(len(unsure) + 1):
        for extra in itertools.combinations(unsure, k):
            outs.add(_o_leaf_on(c, fs, sorted([*sure, *extra])))
    return outs.pop() if len(outs) == 1 else "unknown"


def _o_leaf_on(c: dict[str, Any], fs: FactSet, idx: list[int]) -> str:
    if not idx:
        return str(c["missing"])
    if c.get("latest"):
        idx = [max(idx, key=lambda i: (fs.facts[i].date or dt.date.min, i))]
    if "max_age_days" in c:
        fresh = [i for i in idx if fs.facts[i].age_days is not None and fs.facts[i].age_days <= c["max_age_days"]]
        if not fresh:
            return str(c["stale"])
        idx = fresh
    if "test" not in c:
        return "met"
    return k_or([o_test(fs.facts[i], c["test"]) for i in idx])


def o_rule(rule: dict[str, Any], fs: FactSet) -> tuple[str, dict[str, str]]:
    out: dict[str, str] = {}
    if "applies_when" in rule:
        app = o_crit(rule["applies_when"], fs, {})
        if app == "not_met":
            return "not_applicable", {}
    else:
        app = "met"
    res = o_crit(rule["criteria"], fs, out)
    status = {"met": "flagged", "not_met": "not_flagged", "unknown": "indeterminate"}[res]
    if app == "unknown" and status == "flagged":
        status = "indeterminate"
    return status, out


def _collect(r: Any, out: dict[str, str]) -> None:
    cid = getattr(r.node, "id", None)
    if cid:
        out[cid] = r.outcome
    for ch in r.children:
        _collect(ch, out)


@settings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
@given(rulesets(), st.integers(0, 2**32 - 1))
def test_engine_path_agrees_with_oracle(rules: list[dict[str, Any]], seed: int) -> None:
    crs = compile_or_raise(build_ruleset(rules))
    rng = random.Random(seed)
    for _ in range(PATIENTS_PER_RULESET):
        fs = random_patient(rng)
        got = {ev.rule.id: ev for ev in evaluate_facts(crs, fs)}
        for rule in rules:
            want_status, want_nodes = o_rule(rule, fs)
            ev = got[rule["id"]]
            assert ev.status == want_status, (rule, fs)
            if want_status != "not_applicable":
                have: dict[str, str] = {}
                _collect(ev.best.result, have)
                assert have == want_nodes, (rule, fs)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rulesets(), st.integers(0, 2**32 - 1))
def test_fact_order_never_changes_results(rules: list[dict[str, Any]], seed: int) -> None:
    """Permuting the facts (same dates, so 'latest' is well defined by date) gives the same outcomes."""
    crs = compile_or_raise(build_ruleset(rules))
    rng = random.Random(seed)
    for _ in range(10):
        fs = random_patient(rng)
        # distinct dates, so that 'latest' is decided by date and not by position
        facts = [fs.facts[0]] + [
            f.model_copy(update={"date": AS_OF - dt.timedelta(days=k), "age_days": k}) if hasattr(f, "age_days") else f
            for k, f in enumerate(fs.facts[1:])
        ]
        shuffled = [facts[0]] + rng.sample(facts[1:], len(facts) - 1)
        fs2 = FactSet(patient=fs.patient, facts=tuple(shuffled), unreadable_fields=fs.unreadable_fields)
        a = {
            ev.rule.id: (ev.status, _outs(ev))
            for ev in evaluate_facts(
                crs, FactSet(patient=fs.patient, facts=tuple(facts), unreadable_fields=fs.unreadable_fields)
            )
        }
        b = {ev.rule.id: (ev.status, _outs(ev)) for ev in evaluate_facts(crs, fs2)}
        assert a == b


def _outs(ev: Any) -> Optional[dict[str, str]]:
    if ev.best is None:
        return None
    out: dict[str, str] = {}
    _collect(ev.best.result, out)
    return out
