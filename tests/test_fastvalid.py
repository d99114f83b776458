"""Soundness of the validation fast path (mdtflag.fastvalid): its verdict must always be
fhir.resources' verdict -- on the example and real FHIR data, cold and warm, and for hypothesis
mutations of primitive values and of structure -- and it must actually skip the full validation."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable, Optional

import orjson
import pydantic
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mdtflag.fhir.fastvalid as fastvalid
from mdtflag.fhir.validation import model_class

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "fhir_examples"
REAL = ROOT.parent / "shared" / "real-fhir"

Path_ = tuple[Any, ...]


# ---------------------------------------------------------------------------------------------
# helpers


def verdict_full(cls: Any, resource: dict) -> Optional[str]:
    """fhir.resources' verdict: ``None`` when valid, else the error (type and text)."""
    try:
        cls.model_validate(resource)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def verdict_fast(cls: Any, resource: dict) -> Optional[str]:
    try:
        fastvalid.validate(cls, resource)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def collect(obj: Any, out: list[dict]) -> None:
    """Every dict with a string ``resourceType``, at any depth (bundles, entries, contained)."""
    if isinstance(obj, dict):
        if isinstance(obj.get("resourceType"), str):
            out.append(obj)
        for v in obj.values():
            collect(v, out)
    elif isinstance(obj, list):
        for v in obj:
            collect(v, out)


def parse_any(data: bytes) -> list[Any]:
    try:
        return [orjson.loads(data)]
    except orjson.JSONDecodeError:  # NDJSON
        return [orjson.loads(line) for line in data.splitlines() if line.strip()]


@functools.cache
def example_resources() -> tuple[dict, ...]:
    out: list[dict] = []
    for f in sorted(EXAMPLES.glob("*.json")):
        for obj in parse_any(f.read_bytes()):
            collect(obj, out)
    return tuple(out)


@functools.cache
def real_resources() -> tuple[dict, ...]:
    out: list[dict] = []
    if REAL.is_dir():
        for f in sorted(REAL.rglob("*.json")):
            try:
                objs = parse_any(f.read_bytes())
            except orjson.JSONDecodeError:
                continue
            for obj in objs:
                collect(obj, out)
    return tuple(out)


def with_class(resources: tuple[dict, ...]) -> list[tuple[Any, dict]]:
    return [(cls, r) for r in resources if (cls := model_class(r["resourceType"])) is not None]


def copy(resource: dict) -> dict:
    return orjson.loads(orjson.dumps(resource))


def leaf_paths(obj: Any, path: Path_ = ()) -> Iterator[Path_]:
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from leaf_paths(v, path + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from leaf_paths(v, path + (i,))
    else:
        yield path


def node_paths(obj: Any, path: Path_ = ()) -> Iterator[Path_]:
    """Paths to every value (containers and leaves), the root excluded."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield path + (k,)
            yield from node_paths(v, path + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield path + (i,)
            yield from node_paths(v, path + (i,))


def get_at(obj: Any, path: Path_) -> Any:
    for p in path:
        obj = obj[p]
    return obj


def set_at(obj: Any, path: Path_, value: Any) -> None:
    get_at(obj, path[:-1])[path[-1]] = value


RICH: list[dict] = [
    {
        "resourceType": "Patient",
        "id": "rich1",
        "meta": {
            "lastUpdated": "2024-01-01T10:00:00.123+01:00",
            "versionId": "1",
            "profile": ["http://example.org/StructureDefinition/p"],
        },
        "text": {"status": "generated", "div": '<div xmlns="http://www.w3.org/1999/xhtml">Hi</div>'},
        "extension": [
            {"url": "http://example.org/ext/a", "valueDecimal": 1.5},
            {"url": "http://example.org/ext/b", "valueInteger": 3},
            {"url": "http://example.org/ext/c", "valueBoolean": True},
            {"url": "http://example.org/ext/d", "valueUrl": "http://example.org"},
            {"url": "http://example.org/ext/e", "valueInstant": "2024-01-01T10:00:00Z"},
            {"url": "http://example.org/ext/f", "valueTime": "10:00:00"},
            {"url": "http://example.org/ext/g", "valueDate": "2024-02"},
            {"url": "http://example.org/ext/h", "valuePositiveInt": 5},
            {"url": "http://example.org/ext/i", "valueUnsignedInt": 0},
            {"url": "http://example.org/ext/j", "valueOid": "urn:oid:1.2.3"},
            {"url": "http://example.org/ext/k", "valueUuid": "urn:uuid:c757873d-ec9a-4326-a141-556f43239520"},
            {"url": "http://example.org/ext/l", "valueBase64Binary": "aGVsbG8="},
            {"url": "http://example.org/ext/m", "valueCanonical": "http://example.org/x|1.0"},
            {"url": "http://example.org/ext/n", "valueMarkdown": "**x**"},
            {"url": "http://example.org/ext/o", "valueId": "a-b.c"},
            {"url": "http://example.org/ext/p", "valueCode": "a b"},
            {"url": "http://example.org/ext/q", "valueDateTime": "2024-01-01T10:00:00+01:00"},
            {"url": "http://example.org/ext/r", "valueString": "text"},
            {"url": "http://example.org/ext/s", "valueUri": "urn:x"},
            {"url": "http://example.org/ext/t", "valueDecimal": 2},
            {"url": "http://example.org/ext/u", "valueDateTime": "2024"},
        ],
        "identifier": [
            {"system": "urn:oid:1.2.36.146.595.217.0.1", "value": "12345", "period": {"start": "2001-05-06"}}
        ],
        "active": True,
        "name": [
            {
                "use": "official",
                "family": "Chalmers",
                "given": ["Peter", "James"],
                "_given": [None, {"extension": [{"url": "http://example.org/x", "valueString": "y"}]}],
            }
        ],
        "gender": "male",
        "_gender": {"id": "g1"},
        "birthDate": "1974-12-25",
        "deceasedBoolean": False,
        "multipleBirthInteger": 2,
        "photo": [
            {
                "contentType": "image/png",
                "data": "aGVsbG8=",
                "size": 5,
                "url": "http://example.org/p.png",
                "creation": "2020-01-01T00:00:00+00:00",
            }
        ],
        "contained": [{"resourceType": "Organization", "id": "org1", "name": "Org"}],
        "managingOrganization": {"reference": "#org1"},
        "fhir_comments": ["a comment", "another"],
    },
    {
        "resourceType": "Observation",
        "id": "rich2",
        "status": "final",
        "code": {"text": "x"},
        "issued": "2024-01-01T10:00:00Z",
        "effectivePeriod": {"start": "2024-01-01", "end": "2024-01-02T10:00:00+02:00"},
        "valueQuantity": {"value": 6.3, "unit": "mmol/l", "system": "http://unitsofmeasure.org", "code": "mmol/L"},
        "referenceRange": [{"low": {"value": 3.1}, "high": {"value": 6}}],
        "component": [
            {"code": {"text": "a"}, "valueInteger": 7},
            {"code": {"text": "b"}, "valueTime": "23:59:60"},
            {"code": {"text": "c"}, "valueDateTime": "2016-12-31T23:59:60Z"},
            {
                "code": {"text": "d"},
                "valueSampledData": {"origin": {"value": 0}, "period": 1.5, "dimensions": 1, "data": "1 2 3"},
            },
            {"code": {"text": "e"}, "valueRatio": {"numerator": {"value": 1}, "denominator": {"value": 2}}},
            {"code": {"text": "f"}, "valueBoolean": False},
            {"code": {"text": "g"}, "valueString": "s"},
        ],
    },
    {
        "resourceType": "Bundle",
        "id": "rich3",
        "type": "collection",
        "total": 2,
        "timestamp": "2024-01-01T10:00:00Z",
        "entry": [
            {
                "fullUrl": "urn:uuid:c757873d-ec9a-4326-a141-556f43239520",
                "resource": {
                    "resourceType": "Condition",
                    "id": "c1",
                    "subject": {"reference": "Patient/p"},
                    "onsetAge": {"value": 50, "unit": "a"},
                    "recordedDate": "2024-01-01",
                },
            },
            {
                "resource": {
                    "resourceType": "Encounter",
                    "id": "e1",
                    "status": "finished",
                    "class": {"code": "AMB"},
                    "length": {"value": 1.25},
                }
            },
        ],
    },
]


def _n_leaves(r: dict) -> int:
    return sum(1 for _ in leaf_paths(r))


@functools.cache
def mutation_pool() -> tuple[tuple[Any, dict], ...]:
    """Valid resources of distinct shapes: handmade ones, the examples, small real ones."""
    pool: list[tuple[Any, dict]] = []
    seen = set()
    for cls, r in with_class(tuple(RICH) + example_resources() + real_resources()):
        if _n_leaves(r) > 400 or verdict_full(cls, r) is not None:
            continue
        sk = fastvalid.skeleton(cls, r)
        key = sk[0] if sk is not None else id(r)
        if key in seen:
            continue
        seen.add(key)
        pool.append((cls, r))
        if len(pool) >= 400:
            break
    return tuple(pool)


# ---------------------------------------------------------------------------------------------
# the data sets, cold and warm


def _agree_cold_and_warm(pairs: list[tuple[Any, dict]]) -> None:
    reference = [verdict_full(cls, r) for cls, r in pairs]
    fastvalid.clear_cache()
    for run in ("cold", "warm"):
        for (cls, r), want in zip(pairs, reference):
            got = verdict_fast(cls, r)
            assert got == want, (run, r.get("resourceType"), r.get("id"), got, want)


def test_examples_agree_cold_and_warm():
    pairs = with_class(example_resources())
    assert len(pairs) > 500
    _agree_cold_and_warm(pairs)
    _agree_cold_and_warm(with_class(tuple(RICH)))


@pytest.mark.skipif(not REAL.is_dir(), reason=f"{REAL} not present")
def test_real_fhir_agrees_cold_and_warm():
    pairs = with_class(real_resources())
    assert len(pairs) > 1000
    _agree_cold_and_warm(pairs)
    # most shapes get a plan
    plans = list(fastvalid._PLANS.values())
    assert sum(p is not fastvalid._NO_PLAN for p in plans) >= 0.9 * len(plans)


def test_threads_agree():
    from concurrent.futures import ThreadPoolExecutor

    pairs = with_class(example_resources() + tuple(RICH)) * 3
    reference = [verdict_full(cls, r) for cls, r in pairs]
    fastvalid.clear_cache()
    with ThreadPoolExecutor(max_workers=4) as pool:
        got = list(pool.map(lambda pair: verdict_fast(*pair), pairs))
    assert got == reference


# ---------------------------------------------------------------------------------------------
# the fast path really skips the full validation


def test_same_shape_is_fully_validated_once(monkeypatch):
    calls: list[str] = []
    real_full = fastvalid._full

    def counting(cls: Any, resource: Any) -> Any:
        calls.append(resource.get("id"))
        return real_full(cls, resource)

    monkeypatch.setattr(fastvalid, "_full", counting)
    fastvalid.clear_cache()
    cls = model_class("Observation")
    a = copy(RICH[1])
    b = copy(RICH[1])
    b["id"] = "other"
    b["valueQuantity"]["value"] = 7.25
    b["component"][0]["valueInteger"] = -3
    b["issued"] = "2023-05-06T07:08:09.5-03:00"
    fastvalid.validate(cls, a)
    fastvalid.validate(cls, b)
    fastvalid.validate(cls, a)
    assert calls == ["rich2"]
    # a bad value on the same shape: the plan check fails, the full validation decides
    c = copy(b)
    c["issued"] = "2023-05-06"
    with pytest.raises(pydantic.ValidationError):
        fastvalid.validate(cls, c)
    assert calls == ["rich2", "other"]
    # every example shape: one full validation each, then none
    calls.clear()
    fastvalid.clear_cache()
    pairs = with_class(example_resources())
    for cls, r in pairs:
        fastvalid.validate(cls, r)
    first = len(calls)
    assert first < len(pairs) / 5
    for cls, r in pairs:
        fastvalid.validate(cls, r)
    assert len(calls) == first


def test_load_uses_the_fast_path(monkeypatch):
    from mdtflag.fhir.load import load_bundle

    resources = [{"resourceType": "Patient", "id": "p1"}] + [
        {
            "resourceType": "Observation",
            "id": f"o{i}",
            "status": "final",
            "code": {"text": "ECOG"},
            "subject": {"reference": "Patient/p1"},
            "valueInteger": i,
        }
        for i in range(10)
    ]
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": r} for r in resources]}
    fastvalid.clear_cache()
    before = dict(fastvalid.stats)
    loaded = load_bundle(bundle)
    assert loaded.notes == () and len(loaded.resources) == 11
    assert fastvalid.stats["full"] - before["full"] == 2  # one Patient, one Observation shape
    assert fastvalid.stats["hits"] - before["hits"] == 9


# ---------------------------------------------------------------------------------------------
# targeted cases: everything value dependent that is not a primitive leaf


def _same(cls: Any, r: dict) -> None:
    want = verdict_full(cls, r)
    assert verdict_fast(cls, r) == want
    assert verdict_fast(cls, r) == want


@pytest.mark.parametrize(
    "twins",
    [
        # a string where an object is expected is parsed as JSON by fhir_core: never a plan
        ({"code": '{"text": "x"}'}, {"code": "not json"}),
        ({"code": '{"text": "x"}'}, {"code": '{"txt": "x"}'}),
        # bool is not int
        ({"valueInteger": 1}, {"valueInteger": True}),
        ({"valueBoolean": True}, {"valueBoolean": 1}),
        # 1.0 for an integer, ints and floats for decimals
        ({"valueInteger": 1}, {"valueInteger": 1.0}),
        ({"valueInteger": 1.0}, {"valueInteger": 1.5}),
        ({"valueQuantity": {"value": 1}}, {"valueQuantity": {"value": 1.0}}),
        ({"valueQuantity": {"value": 1.0}}, {"valueQuantity": {"value": float("nan")}}),
        ({"valueQuantity": {"value": 1.0}}, {"valueQuantity": {"value": float("inf")}}),
        ({"valueQuantity": {"value": 0.0}}, {"valueQuantity": {"value": -0.0}}),
        # null anywhere
        ({"category": [{"text": "a"}]}, {"category": [None]}),
        ({"category": [{"text": "a"}, {"text": "b"}]}, {"category": [{"text": "a"}, None]}),
        ({"valueString": "x"}, {"valueString": None}),
        # one-of-many choice fields
        ({"valueString": "x"}, {"valueString": "x", "valueInteger": 1}),
        # an int for a dateTime (pydantic reads a timestamp)
        ({"effectiveDateTime": 1700000000}, {"effectiveDateTime": 10**30}),
        # fhir_comments as a list is checked whole
        ({"fhir_comments": ["a", "b"]}, {"fhir_comments": ["a", 5]}),
        ({"fhir_comments": ["a", "b"]}, {"fhir_comments": ["a", None]}),
        ({"fhir_comments": "a"}, {"fhir_comments": ""}),
        # resource_type / resourceType values inside nested objects
        ({"code": {"resourceType": "CodeableConcept", "text": "x"}}, {"code": {"resourceType": "Coding", "text": "x"}}),
        (
            {"code": {"resource_type": "CodeableConcept", "text": "x"}},
            {"code": {"resource_type": "Patient", "text": "x"}},
        ),
        # contained resources choose their model by resourceType
        (
            {"contained": [{"resourceType": "Patient", "id": "a", "gender": "male"}]},
            {"contained": [{"resourceType": "Organization", "id": "a", "gender": "male"}]},
        ),
        (
            {"contained": [{"resourceType": "Patient", "id": "a"}]},
            {"contained": [{"resourceType": "Coding", "id": "a"}]},
        ),
        (
            {"contained": [{"resourceType": "Patient", "id": "a"}]},
            {"contained": [{"resourceType": "NoSuchThing", "id": "a"}]},
        ),
        ({"contained": [{"id": "a"}]}, {"contained": [{"id": "a b"}]}),
        # primitive extensions, by alias and by field name
        ({"_status": {"id": "x"}}, {"_status": {"id": None}}),
        ({"_status": {"id": "x"}}, {"status__ext": {"id": "x"}}),
        ({"_status": {"extension": [{"url": "u", "valueString": "v"}]}}, {"_status": {"extension": []}}),
        # names and aliases
        ({"valueString": "a"}, {"valueString": "a", "zz_unknown": "a"}),
        # whitespace, empty and long strings, ids
        ({"id": "abc"}, {"id": "a" * 65}),
        ({"id": "abc"}, {"id": "a" * 256}),
        ({"valueString": "x"}, {"valueString": " "}),
        ({"valueString": "x"}, {"valueString": ""}),
        ({"status": "final"}, {"status": "final "}),
        ({"status": "final"}, {"status": "a  b"}),
        # dates
        ({"effectiveDateTime": "2024-01-01"}, {"effectiveDateTime": "2024-13-01"}),
        ({"effectiveDateTime": "2024-01"}, {"effectiveDateTime": "2024-02-30"}),
        ({"effectiveDateTime": "2024-01-01T10:00:00Z"}, {"effectiveDateTime": "2024-01-01T10:00:00"}),
        ({"effectiveDateTime": "2016-12-31T23:59:60Z"}, {"effectiveDateTime": "2016-12-32T23:59:60Z"}),
        ({"issued": "2024-01-01T10:00:00Z"}, {"issued": "2024-01-01"}),
        ({"valueTime": "10:00:00"}, {"valueTime": "24:00:00"}),
    ],
)
def test_value_dependent_cases(twins):
    cls = model_class("Observation")
    base = {"resourceType": "Observation", "id": "t", "status": "final", "code": {"text": "t"}}
    fastvalid.clear_cache()
    for extra in twins:
        r = dict(base)
        r.update(extra)
        _same(cls, r)
    for extra in reversed(twins):
        r = dict(base)
        r.update(extra)
        _same(cls, r)


def test_non_json_values_are_left_to_the_full_validation():
    cls = model_class("Observation")
    fastvalid.clear_cache()
    base = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "t"},
        "category": [{"text": "a"}, {"text": "b"}],
    }
    _same(cls, base)
    odd = dict(base, category=({"text": "a"}, None))  # a tuple is not a JSON array
    assert fastvalid.skeleton(cls, odd) is None
    _same(cls, odd)
    assert fastvalid.skeleton(cls, {1: "x"}) is None


def test_skeleton_distinguishes_what_matters():
    sk = functools.partial(fastvalid.skeleton, None)
    key = lambda r: sk(r)[0]  # noqa: E731
    assert key({"a": 1}) != key({"a": True})
    assert key({"a": 1}) != key({"a": 1.0})
    assert key({"a": 1}) != key({"a": None})
    assert key({"a": 1}) != key({"a": "1"})
    assert key({"a": [1]}) != key({"a": [1, 2]})
    assert key({"a": [1]}) != key({"a": 1})
    assert key({"a": {"b": 1}}) != key({"a": {"c": 1}})
    assert key({"a": {"b": 1}, "c": 1}) != key({"a": {"b": 1, "c": 1}})
    assert key({"a": 1, "b": 2}) != key({"b": 2, "a": 1})  # order-sensitive: more misses, fine
    assert key({"resourceType": "Patient"}) != key({"resourceType": "Group"})
    assert key({"x": {"resource_type": "A"}}) != key({"x": {"resource_type": "B"}})
    assert key({"a": "x"}) == key({"a": "y"})
    assert key({"a": [1, 2.5, True, None, "s"]}) == key({"a": [7, -0.0, False, None, ""]})
    assert sk({"a": [1, {"b": "x"}], "c": False})[1] == [1, "x", False]


# ---------------------------------------------------------------------------------------------
# hypothesis: mutate primitive values (type kept) and structure


STRINGS = [
    "",
    " ",
    "  ",
    "x y",
    "x  y",
    " x",
    "x ",
    "\t",
    "\n",
    "x\ny",
    "abc",
    "ABC",
    "a-b.c",
    "a_b",
    "2024-13-45",
    "2024-02-30",
    "2024-02-29",
    "2023-02-29",
    "2024",
    "0000",
    "2024-01",
    "2024-00",
    "2024-1-01",
    "2024-01-01",
    "2024-01-01T10:00:00Z",
    "2024-01-01T10:00:00",
    "2024-01-01T10:00Z",
    "2024-01-01T24:00:00Z",
    "2016-12-31T23:59:60Z",
    "2024-01-01T10:00:00.123+14:00",
    "2024-01-01T10:00:00+15:00",
    "2024-01-01T10:00:00.5-03:30",
    "10:00:00",
    "25:00:00",
    "23:59:60",
    "10:00",
    "10:00:00.25",
    "10:00:00Z",
    "0",
    "-0",
    "1.5",
    "1e400",
    "+1",
    "1,5",
    "NaN",
    "Patient/123",
    "/Patient/1",
    "Patient/ 1",
    "http://example.org/x",
    "https://x.org/a b",
    "urn:uuid:c757873d-ec9a-4326-a141-556f43239520",
    "urn:uuid:not-a-uuid",
    "urn:oid:1.2.3",
    "urn:oid:1.02",
    "mailto:a@b.c",
    "#org1",
    "string",
    "dateTime",
    "code",
    "aGVsbG8=",
    "aGVsbG8",
    "not base64!",
    "====",
    '<div xmlns="http://www.w3.org/1999/xhtml">x</div>',
    "<div>",
    "true",
    "null",
    "{}",
    "[]",
    '{"text": "x"}',
    "é漢字",
    "\x00",
    "\x07",
    "\u2028",
    "\U0001f600",
    "a" * 64,
    "a" * 65,
    "a" * 255,
    "a" * 256,
    "x " * 3000,
]
INTS = [
    0,
    -1,
    1,
    2,
    2**31 - 1,
    2**31,
    -(2**31),
    -(2**31) - 1,
    2**40,
    2**63 - 1,
    2**63,
    2**64,
    -(2**70),
    1700000000,
    10**30,
]
FLOATS = [
    1e308,
    0.1,
    -0.0,
    0.0,
    1.0,
    1.5,
    -2.5,
    1e-300,
    5e-324,
    float("inf"),
    float("-inf"),
    float("nan"),
    2.0**53,
    1e20,
    1700000000.0,
    123.456789,
]


@st.composite
def same_type_value(draw: Callable, old: Any) -> Any:
    if isinstance(old, bool):
        return draw(st.sampled_from([not old, old]))
    if isinstance(old, int):
        return draw(st.one_of(st.sampled_from(INTS), st.integers()))
    if isinstance(old, float):
        return draw(st.one_of(st.sampled_from(FLOATS), st.floats()))
    if isinstance(old, str):
        return draw(
            st.one_of(
                st.sampled_from(STRINGS),
                st.text(max_size=12),
                st.sampled_from(
                    [
                        old + " ",
                        " " + old,
                        old[:-1],
                        old.upper(),
                        old + "x",
                        old + "-1",
                        old.replace("-", ""),
                        old.replace(":", ""),
                        old[:4],
                        old + "Z",
                    ]
                ),
            )
        )
    return None


def draw_base(draw: Callable) -> tuple[Any, dict]:
    """A valid resource from the pool; half the time one of RICH (every primitive type)."""
    pool = mutation_pool()
    assert [r for _, r in pool[: len(RICH)]] == RICH
    return pool[draw(st.one_of(st.integers(0, len(RICH) - 1), st.integers(0, len(pool) - 1)))]


@st.composite
def value_mutation(draw: Callable) -> tuple[Any, dict, dict]:
    cls, base = draw_base(draw)
    paths = list(leaf_paths(base))
    mutated = copy(base)
    for path in draw(st.lists(st.sampled_from(paths), min_size=1, max_size=3)):
        old = get_at(mutated, path)
        if old is None:
            continue
        set_at(mutated, path, draw(same_type_value(old)))
    return cls, base, mutated


STRUCTURAL = [
    "drop",
    "unknown",
    "int_to_str",
    "str_to_int",
    "to_none",
    "wrap",
    "unwrap",
    "null_in_list",
    "dict_to_json_str",
    "swap_resource_type",
    "empty_list",
    "empty_dict",
]


@st.composite
def structure_mutation(draw: Callable) -> tuple[Any, dict, dict]:
    cls, base = draw_base(draw)
    mutated = copy(base)
    for _ in range(draw(st.integers(1, 2))):
        paths = list(node_paths(mutated))
        if not paths:
            break
        op = draw(st.sampled_from(STRUCTURAL))
        path = draw(st.sampled_from(paths))
        value = get_at(mutated, path)
        parent = get_at(mutated, path[:-1])
        if op == "drop" and isinstance(parent, dict):
            del parent[path[-1]]
        elif op == "unknown":
            target = value if isinstance(value, dict) else parent
            if isinstance(target, dict):
                target[
                    draw(st.sampled_from(["zzUnknown", "_zz", "fhir_comments", "id", "extension", "resource_type"]))
                ] = "x"
        elif op == "int_to_str" and isinstance(value, (int, float)) and not isinstance(value, bool):
            set_at(mutated, path, str(value))
        elif op == "str_to_int" and isinstance(value, str):
            set_at(mutated, path, draw(st.sampled_from([0, 1, 1.5, True])))
        elif op == "to_none":
            set_at(mutated, path, None)
        elif op == "wrap":
            set_at(mutated, path, [value])
        elif op == "unwrap" and isinstance(value, list):
            set_at(mutated, path, value[0] if value else None)
        elif op == "null_in_list" and isinstance(value, list):
            value.insert(draw(st.integers(0, len(value))), None)
        elif op == "dict_to_json_str" and isinstance(value, dict):
            set_at(mutated, path, orjson.dumps(value).decode())
        elif op == "swap_resource_type" and path[-1] == "resourceType":
            set_at(
                mutated,
                path,
                draw(st.sampled_from(["Patient", "Observation", "Organization", "Coding", "Bundle", "Nope", ""])),
            )
        elif op == "empty_list" and isinstance(value, list):
            set_at(mutated, path, [])
        elif op == "empty_dict" and isinstance(value, dict):
            set_at(mutated, path, {})
    return cls, base, mutated


def _check_mutation(cls: Any, base: dict, mutated: dict) -> None:
    fastvalid.validate(cls, base)  # warm: the base is valid, its plan stored
    want = verdict_full(cls, mutated)
    assert verdict_fast(cls, mutated) == want
    assert verdict_fast(cls, mutated) == want  # again: now possibly a hit on its own plan


@settings(max_examples=450, deadline=None, suppress_health_check=list(HealthCheck))
@given(value_mutation())
def test_value_mutations_agree(case):
    _check_mutation(*case)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(structure_mutation())
def test_structure_mutations_agree(case):
    _check_mutation(*case)


def test_pool_is_varied():
    pool = mutation_pool()
    assert len(pool) >= 40
    assert {cls.__name__ for cls, _ in pool} >= {"Patient", "Observation", "Bundle", "Condition"}
