"""mdtflag.engine: oracle equivalence, session properties, limit guards and encoder guards."""

from __future__ import annotations

import operator
import random
import threading
import time
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any, Callable

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mdtflag.compile.engine as engine_mod
from mdtflag.compile.engine import Atom, EncodeError, Engine, EngineError, EngineLimitError, Test

# --- pure-Python oracle ---------------------------------------------------------------------

_PY_OPS: dict[Any, Callable[[Any, Any], bool]] = {
    "eq": operator.eq,
    "ne": operator.ne,
    "lt": operator.lt,
    "lte": operator.le,
    "gt": operator.gt,
    "gte": operator.ge,
}


def oracle(atoms: Sequence[Atom], facts: Sequence[Mapping[str, Any]]) -> list[frozenset[int]]:
    """An atom holds for a fact of its kind when every tested field is present and passes."""
    out = []
    for a in atoms:
        hit = set()
        for i, f in enumerate(facts):
            if f["kind"] == a.kind and all(
                f.get(t.field) is not None and _PY_OPS[t.op](f[t.field], t.value) for t in a.tests
            ):
                hit.add(i)
        out.append(frozenset(hit))
    return out


# --- strategies -----------------------------------------------------------------------------

KINDS = ["lab", "dx", 'q"uote', "é-kind", "x"]
FIELDS = ["a", "b", "code", "n", "flag", "value"]
INTS = [-(2**53), -(2**53) + 1, -1000, -2, -1, 0, 1, 2, 7, 1000, 2**53 - 1, 2**53]
STRS = ["", "a", "ab", "a b", "a!", "A", "b", "é", "日本", 'q"t', "back\\slash", "1", "true", "z" * 300]
TYPES = ("str", "int", "bool")


_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "int": st.one_of(st.sampled_from(INTS), st.integers(-3, 3), st.integers(-(2**53), 2**53)),
    "str": st.sampled_from(STRS),
    "bool": st.booleans(),
}


def values(ftype: str) -> st.SearchStrategy[Any]:
    return _VALUES[ftype]


@st.composite
def schemas(draw: st.DrawFn) -> dict[str, dict[str, Any]]:
    kinds = draw(st.lists(st.sampled_from(KINDS), min_size=1, max_size=3, unique=True))
    return {
        k: draw(st.dictionaries(st.sampled_from(FIELDS), st.sampled_from(TYPES), min_size=1, max_size=4)) for k in kinds
    }


@st.composite
def atoms_for(draw: st.DrawFn, schema: dict[str, dict[str, str]]) -> Atom:
    kind = draw(st.sampled_from(sorted(schema)))
    fields = schema[kind]
    tests = []
    for _ in range(draw(st.integers(0, 3))):
        field = draw(st.sampled_from(sorted(fields)))
        ftype = fields[field]
        ops = list(_PY_OPS) if ftype == "int" else ["eq", "ne"]
        tests.append(Test(field, draw(st.sampled_from(ops)), draw(values(ftype))))
    return Atom(kind, tuple(tests))


@st.composite
def facts_for(draw: st.DrawFn, schema: dict[str, dict[str, str]]) -> dict[str, Any]:
    kind = draw(st.sampled_from(sorted(schema)))
    fact: dict[str, Any] = {"kind": kind}
    for field, ftype in schema[kind].items():
        presence = draw(st.sampled_from(["value", "value", "absent", "none"]))
        if presence == "value":
            fact[field] = draw(values(ftype))
        elif presence == "none":
            fact[field] = None
    return fact


def random_fact(rng: random.Random, schema: dict[str, dict[str, str]], atoms: Sequence[Atom]) -> dict[str, Any]:
    """A fact that often reuses the atoms' constants, so boundaries are hit."""
    kind = rng.choice(sorted(schema))
    consts: dict[str, list[Any]] = {}
    for a in atoms:
        if a.kind == kind:
            for t in a.tests:
                consts.setdefault(t.field, []).append(t.value)
    fact: dict[str, Any] = {"kind": kind}
    for field, ftype in schema[kind].items():
        r = rng.random()
        if r < 0.15:
            continue
        if r < 0.2:
            fact[field] = None
        elif ftype == "bool":
            fact[field] = rng.random() < 0.5
        elif ftype == "str":
            fact[field] = rng.choice(consts.get(field, []) + STRS)
        else:
            base = rng.choice(consts.get(field, []) + INTS)
            fact[field] = max(-(2**53), min(2**53, base + rng.choice([-1, 0, 0, 1])))
    return fact


CASES = {"n": 0}


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def _check_oracle(data: st.DataObject) -> None:
    schema = data.draw(schemas(), label="schema")
    atoms = data.draw(st.lists(atoms_for(schema), min_size=1, max_size=12), label="atoms")
    patients = data.draw(st.lists(st.lists(facts_for(schema), max_size=8), min_size=3, max_size=5), label="facts")
    rng = random.Random(data.draw(st.integers(0, 2**32), label="seed"))
    patients += [[random_fact(rng, schema, atoms) for _ in range(rng.randrange(0, 13))] for _ in range(22)]
    eng = Engine(atoms, schema)
    for facts in patients:
        assert eng.match(facts) == oracle(atoms, facts), (atoms, facts)
        CASES["n"] += 1


def test_oracle_equivalence_random_rulesets() -> None:
    CASES["n"] = 0
    _check_oracle()
    assert CASES["n"] >= 10_000


# Wider rulesets: many atoms sharing alpha-tree prefixes, realistic patient sizes.
WIDE_SCHEMA: dict[str, dict[str, Any]] = {
    "lab": {"analyte": "str", "value": "int", "age_days": "int", "derived": "bool"},
    "variant": {"gene": "str", "present": "bool", "protein": "str", "vaf": "int"},
    "patient": {"age": "int", "sex": "str", "deceased": "bool"},
}
ANALYTES = ["neutrophils", "platelets", "alt", "ast", "bilirubin"]
GENES = ["BRAF", "EGFR", "KRAS", "ALK", "ROS1", "NTRK1", "BRCA1", "BRCA2"]


def wide_atoms(rng: random.Random, n: int) -> list[Atom]:
    atoms = []
    for _ in range(n):
        kind = rng.choice(sorted(WIDE_SCHEMA))
        if kind == "lab":
            tests = [
                Test("analyte", "eq", rng.choice(ANALYTES)),
                Test("value", rng.choice(["lt", "lte", "gt", "gte"]), rng.randrange(0, 2000, 50)),
            ]
            if rng.random() < 0.5:
                tests.append(Test("age_days", "lte", rng.choice([14, 28, 90])))
        elif kind == "variant":
            tests = [Test("gene", rng.choice(["eq", "eq", "ne"]), rng.choice(GENES)), Test("present", "eq", True)]
            if rng.random() < 0.4:
                tests.append(Test("protein", "eq", rng.choice(["p.V600E", "p.G12C", "p.L858R"])))
        else:
            tests = [Test("age", rng.choice(["gte", "lt", "eq", "ne"]), rng.randrange(15, 95, 5))]
        rng.shuffle(tests)
        atoms.append(Atom(kind, tuple(tests)))
    return atoms


def wide_fact(rng: random.Random) -> dict[str, Any]:
    kind = rng.choice(sorted(WIDE_SCHEMA))
    if kind == "lab":
        f = {
            "kind": kind,
            "analyte": rng.choice(ANALYTES),
            "value": rng.randrange(-50, 2100, 25),
            "age_days": rng.choice([None, 0, 14, 15, 28, 90, 91]),
            "derived": rng.random() < 0.5,
        }
    elif kind == "variant":
        f = {
            "kind": kind,
            "gene": rng.choice(GENES),
            "present": rng.random() < 0.8,
            "protein": rng.choice([None, "p.V600E", "p.G12C", "p.X"]),
            "vaf": 10,
        }
    else:
        f = {"kind": kind, "age": rng.randrange(15, 96, 5), "sex": "female", "deceased": False}
    return {k: v for k, v in f.items() if v is not None}


def test_oracle_equivalence_wide_rulesets() -> None:
    for seed in range(12):
        rng = random.Random(seed)
        atoms = wide_atoms(rng, rng.choice([40, 150, 300]))
        eng = Engine(atoms, WIDE_SCHEMA)
        for _ in range(25):
            facts = [wide_fact(rng) for _ in range(rng.randrange(0, 60))]
            assert eng.match(facts) == oracle(atoms, facts)


# --- session properties ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def wide() -> tuple[Engine, list[Atom], list[list[dict[str, Any]]]]:
    rng = random.Random(99)
    atoms = wide_atoms(rng, 200)
    patients = [[wide_fact(rng) for _ in range(rng.randrange(1, 40))] for _ in range(60)]
    return Engine(atoms, WIDE_SCHEMA), atoms, patients


def test_fact_order_independence(wide: tuple[Engine, list[Atom], list[list[dict[str, Any]]]]) -> None:
    eng, _, patients = wide
    rng = random.Random(5)
    for facts in patients:
        base = eng.match(facts)
        perm = list(range(len(facts)))
        rng.shuffle(perm)  # shuffled[j] = facts[perm[j]]
        shuffled = eng.match([facts[p] for p in perm])
        assert [frozenset(perm[j] for j in s) for s in shuffled] == base


def test_session_isolation_reverse_order(wide: tuple[Engine, list[Atom], list[list[dict[str, Any]]]]) -> None:
    eng, atoms, patients = wide
    forward = [eng.match(p) for p in patients]
    backward = [eng.match(p) for p in reversed(patients)][::-1]
    assert forward == backward == [oracle(atoms, p) for p in patients]


def test_threads_share_one_engine(wide: tuple[Engine, list[Atom], list[list[dict[str, Any]]]]) -> None:
    eng, atoms, patients = wide
    expected = [oracle(atoms, p) for p in patients]
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(3):
                assert [eng.match(p) for p in patients] == expected
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


def test_empty_patient_does_not_call_the_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    eng = Engine([Atom("patient", ()), Atom("lab", (Test("value", "gt", 1),))], WIDE_SCHEMA)

    def boom(*_: object) -> None:
        raise AssertionError("engine called")

    monkeypatch.setattr(engine_mod._dre, "assert_facts", boom)
    assert eng.match([]) == [frozenset(), frozenset()]
    # facts of kinds no atom uses are validated but never sent
    assert eng.match([{"kind": "variant", "gene": "BRAF"}]) == [frozenset(), frozenset()]


def test_engine_without_atoms() -> None:
    eng = Engine([], WIDE_SCHEMA)
    assert eng.atoms == () and eng.match([{"kind": "patient", "age": 3}]) == []


def test_patient_matching_nothing() -> None:
    atoms = [Atom("lab", (Test("analyte", "eq", "alt"), Test("value", "gt", 100)))]
    eng = Engine(atoms, WIDE_SCHEMA)
    facts: list[dict[str, Any]] = [
        {"kind": "lab", "analyte": "alt", "value": 100},
        {"kind": "lab", "analyte": "ast", "value": 500},
        {"kind": "lab", "analyte": "alt"},
        {"kind": "patient", "age": 50},
    ]
    for _ in range(50):
        assert eng.match(facts) == [frozenset()]


def test_results_follow_atom_order_and_duplicates() -> None:
    t1, t2 = Test("value", "gt", 1), Test("analyte", "eq", "alt")
    atoms = [Atom("lab", (t1, t2)), Atom("lab", ()), Atom("lab", (t2, t1, t1)), Atom("patient", ())]
    eng = Engine(atoms, WIDE_SCHEMA)
    assert eng.atoms == tuple(atoms)
    assert len(set(eng._atom_rule)) == 3  # (t1, t2) and (t2, t1, t1) are one rule
    same = {"kind": "lab", "analyte": "alt", "value": 5}
    facts: list[dict[str, Any]] = [same, dict(same), {"kind": "patient", "age": 3}]  # identical facts stay distinct
    assert eng.match(facts) == [frozenset({0, 1}), frozenset({0, 1}), frozenset({0, 1}), frozenset({2})]


def test_absent_and_none_fields_fail_every_test() -> None:
    atoms = [Atom("lab", (Test("value", op, 3),)) for op in _PY_OPS] + [Atom("lab", (Test("analyte", "ne", "x"),))]
    eng = Engine(atoms, WIDE_SCHEMA)
    assert eng.match([{"kind": "lab"}, {"kind": "lab", "value": None, "analyte": None}]) == [frozenset()] * 7


def test_boundaries_and_strings() -> None:
    big = 2**53
    atoms = [
        Atom("lab", (Test("value", "gte", big),)),
        Atom("lab", (Test("value", "lt", -big + 1),)),
        Atom("lab", (Test("analyte", "eq", "a"),)),
        Atom("lab", (Test("analyte", "eq", 'a"b\\c é'),)),
        Atom("lab", (Test("analyte", "ne", "a"),)),
    ]
    eng = Engine(atoms, WIDE_SCHEMA)
    facts: list[dict[str, Any]] = [
        {"kind": "lab", "value": big},
        {"kind": "lab", "value": big - 1},
        {"kind": "lab", "value": -big},
        {"kind": "lab", "analyte": "a b"},
        {"kind": "lab", "analyte": 'a"b\\c é'},
        {"kind": "lab", "analyte": "a"},
        {"kind": "lab", "analyte": "x" * 65535},
        {"kind": "lab", "analyte": "ab"},
    ]
    assert eng.match(facts) == oracle(atoms, facts)


def test_ruleset_json_is_canonical() -> None:
    atoms = [Atom("lab", (Test("value", op, 3), Test("analyte", "eq", "alt"))) for op in _PY_OPS]
    eng = Engine(atoms + [Atom("patient", ())], WIDE_SCHEMA)
    rules = orjson.loads(eng._ruleset_json())
    assert rules.pop("__session__") == {"all": [{"m": {"$s": 1}}]}
    for rule in rules.values():
        assert list(rule) == ["all"] and len(rule["all"]) == 1
        conds = rule["all"][0]["m"]["$and"]
        assert list(conds[0]) == ["kind"]
        for cond in conds:
            assert len(cond) == 1  # one key per condition object (P17)
            ((key, val),) = cond.items()
            name = next(iter(val)) if isinstance(val, dict) else key
            assert len(val) == 1 if isinstance(val, dict) else True
            assert name not in ("id", "sid", "pad") and not name.startswith("$")  # P5, P19


def test_payload_holds_only_tested_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    eng = Engine([Atom("lab", (Test("value", "gt", 1),)), Atom("patient", ())], WIDE_SCHEMA)
    sent: list[str] = []
    real = engine_mod._dre.assert_facts

    def spy(handle: int, payload: str) -> Any:
        sent.append(payload)
        return real(handle, payload)

    monkeypatch.setattr(engine_mod._dre, "assert_facts", spy)
    facts: list[dict[str, Any]] = [
        {"kind": "lab", "analyte": "alt", "value": 5, "age_days": 3},
        {"kind": "variant", "gene": "BRAF"},
        {"kind": "patient", "age": 40, "sex": "male"},
    ]
    assert eng.match(facts) == [frozenset({0}), frozenset({2})]
    payload = orjson.loads(sent[0])
    assert [{k: v for k, v in f.items() if k != "sid"} for f in payload] == [
        {"id": "#0", "kind": "lab", "value": 5},
        {"id": "#2", "kind": "patient"},
    ]


def test_fact_and_state_ids_never_share_a_hash() -> None:
    hashes = {engine_mod._fnv1_32(f"#{i}") for i in range(20_000)}
    assert len(hashes) == 20_000
    eng = Engine([Atom("patient", ())], WIDE_SCHEMA)
    for _ in range(200):
        sid = eng._new_sid(20_000)
        assert engine_mod._fnv1_32(f"sid-{sid}") not in hashes


def test_fnv_matches_engine_constants() -> None:
    assert engine_mod._fnv1_32("id") == 926444256  # state.h HASH_ID
    assert engine_mod._fnv1_32("sid") == 3593476751  # state.h HASH_SID
    assert engine_mod._fnv1_32("$and") == 3746487396  # rete.c HASH_AND


# --- limit guards: all refused before create_ruleset -----------------------------------------


@pytest.fixture
def no_create(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_: object) -> None:
        raise AssertionError("create_ruleset reached")

    monkeypatch.setattr(engine_mod._dre, "create_ruleset", refuse)


CODES: dict[str, dict[str, Any]] = {"lab": {"code": "str", "value": "int", "flag": "bool", "b": "int"}}


def _limit(atoms: Sequence[Atom], match: str, schema: Mapping[str, Mapping[str, Any]] = CODES) -> None:
    t0 = time.perf_counter()
    with pytest.raises(EngineLimitError, match=match):
        Engine(atoms, schema)  # type: ignore[arg-type]
    assert time.perf_counter() - t0 < 5


def test_512_siblings_refused_quickly(no_create: None) -> None:
    # 513 hang create_ruleset (P10); 512 compile but fill the child table, so assert_facts hangs
    _limit([Atom("lab", (Test("code", "eq", f"c{i}"),)) for i in range(513)], "513 distinct tests.*limit 511")
    _limit([Atom("lab", (Test("code", "eq", f"c{i}"),)) for i in range(512)], "512 distinct tests.*limit 511")


def test_sibling_limit_follows_path_sharing(no_create: None) -> None:
    deep = [Atom("lab", (Test("code", "eq", f"c{i}"), Test("flag", "eq", True))) for i in range(512)]
    _limit(deep, r"512 distinct tests under `kind eq 'lab' & flag eq True`")
    with pytest.raises(EngineLimitError, match="512 distinct tests under `root`"):
        Engine([Atom(f"k{i}", ()) for i in range(511)], {f"k{i}": {} for i in range(511)})  # + sentinel


def test_511_siblings_and_split_parents_accepted() -> None:
    eng = Engine([Atom("lab", (Test("code", "eq", f"c{i}"),)) for i in range(511)], CODES)
    assert eng.match([{"kind": "lab", "code": "c510"}])[510] == frozenset({0})
    # 600 distinct codes under one kind fit: the two-valued `flag` test goes first in every path
    split = [
        Atom("lab", (Test("code", "eq", f"c{i}"), Test("flag", "eq", f))) for f in (True, False) for i in range(300)
    ]
    eng = Engine(split, CODES)
    assert eng.match([{"kind": "lab", "code": "c7", "flag": False}]) == [
        frozenset({0}) if a.tests == (Test("code", "eq", "c7"), Test("flag", "eq", False)) else frozenset()
        for a in split
    ]


def test_more_than_64_simultaneous_siblings_refused(no_create: None) -> None:
    _limit([Atom("lab", (Test("value", "gt", i),)) for i in range(65)], "65 pending tests.*limit 64")
    _limit([Atom("lab", (Test("code", "ne", f"c{i}"),)) for i in range(65)], "65 pending tests")


def test_64_simultaneous_siblings_accepted_and_match() -> None:
    eng = Engine([Atom("lab", (Test("value", "gt", i),)) for i in range(64)], CODES)
    assert all(s == frozenset({0}) for s in eng.match([{"kind": "lab", "value": 10**6}]))


def test_equality_and_disjoint_ranges_count_once() -> None:
    eq = [Atom("lab", (Test("value", "eq", i),)) for i in range(300)]
    disjoint = [Atom("lab", (Test("value", "lt", i),)) for i in range(40)] + [
        Atom("lab", (Test("value", "gt", 1000 + i),)) for i in range(40)
    ]
    for atoms in (eq, disjoint):
        eng = Engine(atoms, CODES)
        for v in (-5, 0, 20, 39, 500, 1020, 10**6):
            facts: list[dict[str, Any]] = [{"kind": "lab", "value": v}]
            assert eng.match(facts) == oracle(atoms, facts)


def test_pending_tests_accumulate_across_levels(no_create: None) -> None:
    # 40 matching siblings, each with 26 matching children: 39 + 26 = 65 pending (engine error 303)
    atoms = [Atom("lab", (Test("value", "gt", i), Test("b", "gt", j))) for i in range(40) for j in range(26)]
    _limit(atoms, "65 pending tests")


def test_pending_tests_at_the_limit_across_levels() -> None:
    atoms = [Atom("lab", (Test("value", "gt", i), Test("b", "gt", j))) for i in range(40) for j in range(25)]
    eng = Engine(atoms, CODES)
    assert all(s == frozenset({0}) for s in eng.match([{"kind": "lab", "value": 10**6, "b": 10**6}]))


def test_more_than_4096_rules_refused(no_create: None) -> None:
    schema = {f"k{i}": {"code": "str"} for i in range(9)}
    atoms = [Atom(f"k{i % 9}", (Test("code", "eq", f"c{i // 9}"),)) for i in range(4096)]
    _limit(atoms, "4097 rules incl. the sentinel", schema)


def test_duplicate_atoms_collapse_into_one_rule() -> None:
    schema: dict[str, dict[str, Any]] = {f"k{i}": {"code": "str"} for i in range(8)}
    many = [Atom(f"k{i % 8}", ()) for i in range(8000)]
    assert [len(s) for s in Engine(many, schema).match([{"kind": "k3"}])] == [int(i % 8 == 3) for i in range(8000)]


@pytest.mark.parametrize(
    ("field", "op", "value", "match"),
    [
        ("value", "eq", "1", "expected int, got str"),
        ("value", "gt", True, "expected int, got bool"),
        ("value", "eq", 1.0, "expected int, got float"),
        ("value", "lt", 2**53 + 1, "outside"),
        ("flag", "eq", 1, "expected bool, got int"),
        ("code", "eq", 1, "expected str, got int"),
        ("code", "lt", "m", "allows only eq/ne"),
        ("flag", "gt", False, "allows only eq/ne"),
        ("code", "eq", "a\nb", "control character"),
        ("code", "eq", "x" * 65536, "longer than"),
        ("code", "eq", "\ud800", "surrogate"),
        ("nope", "eq", 1, "unknown field"),
        ("code", "like", "a", "unknown operator"),
    ],
)
def test_bad_tests_refused(no_create: None, field: str, op: str, value: Any, match: str) -> None:
    _limit([Atom("lab", (Test(field, op, value),))], match)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("schema", "match"),
    [
        ({"lab": {"id": "str"}}, "reserved"),
        ({"lab": {"sid": "str"}}, "reserved"),
        ({"lab": {"kind": "str"}}, "reserved"),
        ({"lab": {"pad": "int"}}, "reserved"),
        ({"lab": {"a.b": "int"}}, r"contains `\.` or `\$`"),
        ({"lab": {"$s": "int"}}, r"contains `\.` or `\$`"),
        ({"lab": {"a b": "int"}}, "not an identifier"),
        ({"lab": {"x": "float"}}, "unknown type"),
        ({"lab": {f"f{i}": "int" for i in range(240)}}, "241 properties"),
        ({"lab": {"f6059": "int", "f264602": "int"}}, "share an engine hash"),
        ({"": {"x": "int"}}, "non-empty string"),
        ({"a\tb": {"x": "int"}}, "control character"),
    ],
)
def test_bad_schemas_refused(no_create: None, schema: dict[str, dict[str, str]], match: str) -> None:
    _limit([], match, schema)


def test_unknown_kind_refused(no_create: None) -> None:
    _limit([Atom("nope", ())], "unknown kind")


# --- encoder guards -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def enc_engine() -> Engine:
    return Engine(
        [
            Atom("lab", (Test("value", "gte", 0),)),
            Atom("lab", (Test("code", "ne", "z"),)),
            Atom("lab", (Test("flag", "eq", True),)),
        ],
        CODES,
    )


@pytest.mark.parametrize(
    ("fact", "match"),
    [
        ({"kind": "lab", "value": 1.0}, "expected int, got float"),
        ({"kind": "lab", "value": float("nan")}, "expected int, got float"),
        ({"kind": "lab", "value": float("inf")}, "expected int, got float"),
        ({"kind": "lab", "value": True}, "expected int, got bool"),
        ({"kind": "lab", "flag": 1}, "expected bool, got int"),
        ({"kind": "lab", "code": 5}, "expected str, got int"),
        ({"kind": "lab", "value": 2**53 + 1}, "outside"),
        ({"kind": "lab", "value": -(2**53) - 1}, "outside"),
        ({"kind": "lab", "value": 2**64}, "outside"),
        ({"kind": "lab", "code": "x" * 65536}, "longer than"),
        ({"kind": "lab", "code": '"' * 40000}, "longer than"),
        ({"kind": "lab", "code": "é" * 40000}, "longer than"),
        ({"kind": "lab", "code": "a\nb"}, "control character"),
        ({"kind": "lab", "code": "a\x00b"}, "control character"),
        ({"kind": "lab", "code": "\udc80"}, "surrogate"),
        ({"kind": "lab", "unknown": 1}, "unknown field"),
        ({"kind": "lab", "unknown": None}, "unknown field"),
        ({"kind": "lab", "id": "obs-1"}, "unknown field"),
        ({"kind": "lab", "sid": "1"}, "unknown field"),
        ({"kind": "nope"}, "unknown kind"),
        ({"code": "a"}, "unknown kind"),
        ({"kind": None}, "unknown kind"),
    ],
)
def test_encoder_refuses(enc_engine: Engine, fact: dict[str, Any], match: str) -> None:
    good: dict[str, Any] = {"kind": "lab", "value": 3}
    with pytest.raises(EncodeError, match=match):
        enc_engine.match([good, fact, good])
    assert enc_engine.match([good]) == [frozenset({0}), frozenset(), frozenset()]  # still usable


def test_encoder_drops_none_and_accepts_edges(enc_engine: Engine) -> None:
    facts: list[Mapping[str, Any]] = [
        {"kind": "lab", "value": None, "code": None, "flag": None},
        {"kind": "lab", "value": 2**53, "code": "x" * 65535, "flag": True},
        MappingProxyType({"kind": "lab", "value": -(2**53), "code": "é" * 30000 + '"\\'}),
    ]
    assert enc_engine.match(facts) == [frozenset({1}), frozenset({1, 2}), frozenset({1})]


def test_encoder_refuses_str_subclass(enc_engine: Engine) -> None:
    class S(str):
        pass

    with pytest.raises(EncodeError, match="expected str, got S"):
        enc_engine.match([{"kind": "lab", "code": S("a")}])


def test_too_many_facts(enc_engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine_mod, "_MAX_FACTS", 10)
    with pytest.raises(EngineError, match="11 facts"):
        enc_engine.match([{"kind": "lab"}] * 11)


def test_engine_error_names_the_code(monkeypatch: pytest.MonkeyPatch, enc_engine: Engine) -> None:
    def fail(*_: object) -> None:
        raise engine_mod._dre.error("Could not assert facts, error code: 303")

    monkeypatch.setattr(engine_mod._dre, "assert_facts", fail)
    with pytest.raises(EngineError, match=r"engine error 303 \(alpha stack overflow\)"):
        enc_engine.match([{"kind": "lab", "value": 1}])
