"""Validation plans kept between processes (mdtflag.compile.plan_store): a new process validates resources
of known shapes without importing fhir.resources' models, gives the same verdicts and the same result
bytes, and reads nothing it cannot authenticate."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mdtflag.fhir.fastvalid as fastvalid
from mdtflag.api import Evaluator
from mdtflag.compile import plan_store
from mdtflag.compile.cache import CompiledCache
from mdtflag.fhir.skeleton import skeleton
from mdtflag.fhir.validation import model_class
from mdtflag.output.render import to_json

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "fhir_examples").glob("*.json"))
REAL = ROOT.parent / "shared" / "real-fhir"
AS_OF = "2026-11-01"

# what a new process imports of fhir.resources when every resource has a stored plan
ALLOWED_MODULES = {"fhir.resources", "fhir.resources.R4B", "fhir.resources.R4B.fhirtypes"}

_CHILD = r"""
import json, sys, hashlib
from mdtflag.api import cached_evaluator
from mdtflag.fhir import fastvalid
from mdtflag.output.render import to_json
ev = cached_evaluator(sys.argv[1])
out = [hashlib.sha256(to_json(ev.evaluate(p, as_of=sys.argv[2]))).hexdigest() for p in sys.argv[3:]]
models = sorted(m for m in sys.modules if m.startswith("fhir.resources"))
print(json.dumps({"digests": out, "models": models, "stats": fastvalid.stats}))
"""


@pytest.fixture
def fresh() -> Iterator[None]:
    """No store and no plan in memory before and after the test."""
    plan_store.detach()
    fastvalid.clear_cache()
    yield
    plan_store.detach()
    fastvalid.clear_cache()


def _run(code: str, cache_dir: Path, args: list[str], no_cache: bool = False) -> Any:
    """Run ``code`` in a new interpreter with its own cache folder; the JSON of its last output line."""
    env = {k: v for k, v in os.environ.items() if k != "MDTFLAG_NO_CACHE"}
    env["MDTFLAG_CACHE_DIR"] = str(cache_dir)
    if no_cache:
        env["MDTFLAG_NO_CACHE"] = "1"
    proc = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, cwd=ROOT, timeout=300, check=True
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _child(cache_dir: Path, paths: list[Path], no_cache: bool = False) -> dict[str, Any]:
    return dict(_run(_CHILD, cache_dir, [str(ROOT / "rules"), AS_OF, *map(str, paths)], no_cache))


def _plans_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.plans"))


def test_a_new_process_validates_known_shapes_without_importing_models(tmp_path: Path) -> None:
    paths = EXAMPLES[:6]
    first = _child(tmp_path, paths)
    assert first["stats"]["misses"] > 0 and first["stats"]["stored"] == 0
    assert len(_plans_files(tmp_path)) == 1
    second = _child(tmp_path, paths)
    assert second["digests"] == first["digests"]  # the same result bytes
    assert second["stats"]["misses"] == 0 and second["stats"]["full"] == 0
    assert second["stats"]["stored"] > 0 and second["stats"]["hits"] >= second["stats"]["stored"]
    assert set(second["models"]) <= ALLOWED_MODULES, second["models"]
    assert not set(first["models"]) <= ALLOWED_MODULES  # the first process did need the models
    # and the same bytes as without any cache
    plain = _child(tmp_path / "unused", paths, no_cache=True)
    assert plain["digests"] == first["digests"]
    assert not (tmp_path / "unused").exists()  # MDTFLAG_NO_CACHE: nothing written


def test_new_shapes_are_added_to_the_file(tmp_path: Path) -> None:
    _child(tmp_path, EXAMPLES[:2])
    before = _read_plans(tmp_path)
    got = _child(tmp_path, EXAMPLES[:4])
    after = _read_plans(tmp_path)
    assert got["stats"]["stored"] > 0 and got["stats"]["misses"] > 0
    assert set(before) < set(after)


def _read_plans(folder: Path) -> dict[str, Any]:
    (path,) = _plans_files(folder)
    blob = path.read_bytes()
    head_end = blob.index(b"\n", len(plan_store.FORMAT)) + 1
    return dict(orjson.loads(blob[head_end + 32 :]))


def _store(folder: Path) -> plan_store.PlanStore:
    fastvalid.clear_cache()
    return plan_store.attach(CompiledCache(folder))


def _evaluate(path: Path | bytes) -> bytes:
    return to_json(_evaluator().evaluate(path, as_of=AS_OF))


_EV: list[Evaluator] = []


def _evaluator() -> Evaluator:
    if not _EV:
        _EV.append(Evaluator(ROOT / "rules"))
    return _EV[0]


def _fill(folder: Path, paths: list[Path]) -> None:
    store = _store(folder)
    for p in paths:
        _evaluate(p)
    assert store.save()
    plan_store.detach()
    fastvalid.clear_cache()


def _bad_date_twin(path: Path) -> bytes:
    """The bundle with one Observation's effectiveDateTime made invalid (same shape: a string)."""
    doc = json.loads(path.read_bytes())
    for entry in doc["entry"]:
        r = entry["resource"]
        if r["resourceType"] == "Observation" and isinstance(r.get("effectiveDateTime"), str):
            r["effectiveDateTime"] = "2024-13-45"
            return json.dumps(doc).encode()
    raise AssertionError("no Observation with effectiveDateTime")


def test_an_invalid_value_on_a_known_shape_gets_the_models_verdict(tmp_path: Path, fresh: None) -> None:
    path = next(p for p in EXAMPLES if b'"effectiveDateTime"' in p.read_bytes())
    bad = _bad_date_twin(path)
    want = _evaluate(bad)  # no store: the models decide
    assert b"invalid" in want
    _fill(tmp_path, [path])
    _store(tmp_path)
    before = dict(fastvalid.stats)
    got = _evaluate(bad)
    assert got == want
    assert fastvalid.stats["stored"] > before["stored"]
    assert fastvalid.stats["fallbacks"] > before["fallbacks"]  # the stored plan's check failed: full validation


def test_a_file_that_fails_authentication_is_ignored(tmp_path: Path, fresh: None) -> None:
    _fill(tmp_path, EXAMPLES[:3])
    (path,) = _plans_files(tmp_path)
    good = path.read_bytes()
    assert _store(tmp_path).plans()
    plan_store.detach()
    for bad in (good[:-5] + b"12345", good[:40] + b"x" + good[41:], b"", good[: len(good) // 2]):
        path.write_bytes(bad)
        assert _store(tmp_path).plans() == {}
        plan_store.detach()
    # a file written with another user's key: ignored
    path.write_bytes(good)
    (tmp_path / f"key-{os.getuid()}").write_bytes(b"k" * 32)
    assert CompiledCache(tmp_path).secret() == b"k" * 32
    assert _store(tmp_path).plans() == {}
    # and the evaluation is unchanged
    assert _evaluate(EXAMPLES[0]) == _plain(EXAMPLES[0])


def _plain(path: Path) -> bytes:
    plan_store.detach()
    fastvalid.clear_cache()
    return _evaluate(path)


def test_the_store_is_bounded(tmp_path: Path, fresh: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(plan_store, "MAX_PLANS", 5)
    _fill(tmp_path, EXAMPLES[:4])
    assert len(_read_plans(tmp_path)) == 5


# ---------------------------------------------------------------------------------------------
# what is written stands for what was derived


def _resources(paths: list[Path]) -> list[tuple[Any, dict[str, Any]]]:
    out: list[tuple[Any, dict[str, Any]]] = []
    for p in paths:
        data = p.read_bytes()
        try:
            docs = [orjson.loads(data)]
        except orjson.JSONDecodeError:
            docs = [orjson.loads(line) for line in data.splitlines() if line.strip()]
        for doc in docs:
            for entry in doc.get("entry", []) if isinstance(doc, dict) else []:
                r = entry.get("resource") if isinstance(entry, dict) else None
                if isinstance(r, dict) and isinstance(r.get("resourceType"), str):
                    cls = model_class(r["resourceType"])
                    if cls is not None:
                        out.append((cls, r))
    return out


def _real_files() -> list[Path]:
    return sorted(p for p in REAL.rglob("*") if p.suffix in (".json", ".ndjson")) if REAL.is_dir() else []


def test_every_plan_of_the_examples_and_real_data_is_written_and_read_back_the_same(fresh: None) -> None:
    pairs = _resources(EXAMPLES + _real_files())
    assert len(pairs) > 500
    for _cls, r in pairs:
        try:
            fastvalid.validate_named(r["resourceType"], model_class, r)
        except Exception:
            continue
    plans = [(k, p) for k, p in fastvalid._PLANS.items() if p is not fastvalid._NO_PLAN]
    assert len(plans) > (100 if REAL.is_dir() else 30)  # the examples alone have some 40 shapes
    for key, plan in plans:
        n = len(skeleton_leaves(key))
        raw = plan_store._portable(plan, n)
        assert raw is not None, [repr(a) for a, _ in plan.spec[0] + plan.spec[1] if plan_store.describe(a) is None]
        back = plan_store._materialize(orjson.loads(orjson.dumps(raw)), n)
        assert back is not None
        assert back.spec == plan.spec
        assert [leaf for leaf, _ in back.groups] == [leaf for leaf, _ in plan.groups]  # the same validators
        assert [leaf for leaf, _ in back.paths] == [leaf for leaf, _ in plan.paths]


def skeleton_leaves(key: tuple[Any, ...]) -> list[Any]:
    """The leaves a skeleton has: one per scalar type token."""
    return [t for t in key[1:] if t in (str, int, float, bool, type(None))]


def test_a_stored_plan_is_not_used_for_another_leaf_count(fresh: None) -> None:
    r = {"resourceType": "Patient", "id": "a", "birthDate": "1970-01-01"}
    fastvalid.validate_named("Patient", model_class, r)
    key, leaves = skeleton("Patient", r)  # type: ignore[misc]
    raw = plan_store._portable(fastvalid._PLANS[key], len(leaves))
    assert plan_store._materialize(raw, len(leaves)) is not None
    assert plan_store._materialize(raw, len(leaves) + 1) is None
    bad = copy.deepcopy(raw)
    bad[1][0][1] = [99]
    assert plan_store._materialize(bad, len(leaves)) is None
    unknown = copy.deepcopy(raw)
    unknown[1][0][0] = "opt:NoSuchType"
    with pytest.raises(KeyError):
        plan_store._materialize(unknown, len(leaves))
    for name in ("opt:NoSuchType", "nope:StringType", "opt:__name__"):
        with pytest.raises(KeyError):
            plan_store.annotation(name)


# ---------------------------------------------------------------------------------------------
# digests: one skeleton, one digest

_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-3, 3)
    | st.floats(-2, 2, allow_nan=False)
    | st.sampled_from(["a", "b", ""]),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(["a", "b", "resourceType"]), inner, max_size=3)
    ),
    max_leaves=8,
)


@settings(max_examples=300, deadline=None)
@given(
    a=st.dictionaries(st.sampled_from(["a", "b", "resourceType"]), _json, max_size=3),
    b=st.dictionaries(st.sampled_from(["a", "b", "resourceType"]), _json, max_size=3),
)
def test_digests_differ_exactly_when_skeletons_differ(a: dict[str, Any], b: dict[str, Any]) -> None:
    ka, kb = skeleton("Observation", a), skeleton("Observation", b)
    assert ka is not None and kb is not None
    da, db = plan_store.digest(ka[0]), plan_store.digest(kb[0])
    assert da is not None and db is not None
    assert (da == db) == (ka[0] == kb[0])


def test_digests_tell_apart_what_the_skeleton_tells_apart() -> None:
    cases = [
        {"resourceType": "Patient", "a": 1},
        {"resourceType": "Patient", "a": 1.0},
        {"resourceType": "Patient", "a": True},
        {"resourceType": "Patient", "a": None},
        {"resourceType": "Patient", "a": "1"},
        {"resourceType": "Patient", "a": [1]},
        {"resourceType": "Patient", "a": {"b": 1}},
        {"resourceType": "Observation", "a": 1},
        {"resourceType": 1, "a": 1},
        {"resourceType": 1.0, "a": 1},
        {"resourceType": True, "a": 1},
        {"resourceType": None, "a": 1},
        {"resourceType": "1", "a": 1},
    ]
    digests = {plan_store.digest(skeleton("Patient", c)[0]) for c in cases}  # type: ignore[index]
    assert len(digests) == len(cases)
    assert plan_store.digest(skeleton(object, cases[0])[0]) is None  # type: ignore[index] - a class token: not stored


def test_what_waits_to_be_written_is_bounded(tmp_path: Path, fresh: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(plan_store, "MAX_PLANS", 3)
    store = _store(tmp_path)
    before = fastvalid.stats["misses"]
    for p in EXAMPLES[:4]:
        _evaluate(p)
    assert fastvalid.stats["misses"] - before > 3  # more new plans than the bound
    assert len(store._new) == 3


_WARM = r"""
import json, sys
from mdtflag.api import cached_evaluator
ev = cached_evaluator(sys.argv[1])
if sys.argv[2] == "warm-up":
    from mdtflag.service.app import warm_up
    warm_up(ev)
else:
    ev.evaluate(sys.argv[3], as_of="2026-11-01")
print(json.dumps(sorted(m for m in sys.modules if m.startswith("fhir.resources.R4B."))))
"""


def test_a_service_worker_builds_every_model_facts_need_before_it_is_ready(tmp_path: Path) -> None:
    pytest.importorskip("starlette")
    from mdtflag.fhir.load import FACT_RESOURCE_TYPES

    warmup = ROOT / "mdtflag" / "service" / "warmup.json"

    def child(mode: str) -> set[str]:
        return set(_run(_WARM, tmp_path, [str(ROOT / "rules"), mode, str(warmup)]))

    child("evaluate")  # the warm-up patient's shapes are now stored
    assert "fhir.resources.R4B.observation" not in child("evaluate")  # so its models are not built again
    built = child("warm-up")
    want = {f"fhir.resources.R4B.{t.lower()}" for t in FACT_RESOURCE_TYPES}
    assert want <= built, want - built
