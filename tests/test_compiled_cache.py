"""The compiled-rule-set cache: same results, never trusted when it does not match, never a crash."""

from __future__ import annotations

import io
import os
import pickle
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mdtflag.ruleset.load
from mdtflag.api import Evaluator, cached_evaluator
from mdtflag.compile import cache as cache_mod
from mdtflag.compile.cache import CompiledCache, cache_from_environment
from mdtflag.compile.plan import CompiledRuleSet
from mdtflag.output.render import to_json

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "rules"
EXAMPLES = sorted((ROOT / "fhir_examples").glob("*.json"))
AS_OF = "2026-11-01"
FIRST = EXAMPLES[0]


@pytest.fixture(scope="module")
def plain() -> Evaluator:
    return Evaluator(RULES)


@pytest.fixture(scope="module")
def expected(plain: Evaluator) -> dict[Path, bytes]:
    return {p: to_json(plain.evaluate(p, as_of=AS_OF)) for p in EXAMPLES}


@pytest.fixture
def rules(tmp_path: Path) -> Path:
    """A copy of the shipped rule set that a test may change."""
    dst = tmp_path / "rules"
    shutil.copytree(RULES, dst)
    return dst


@pytest.fixture
def cache(tmp_path: Path) -> CompiledCache:
    return CompiledCache(tmp_path / "cache")


@pytest.fixture
def no_reading(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Reading a rule directory fails: what is built now comes from the cache."""

    def refuse(path: object) -> None:
        raise AssertionError(f"the rule directory {path} was read")

    monkeypatch.setattr(mdtflag.ruleset.load, "load_ruleset", refuse)
    yield


def _entries(c: CompiledCache) -> list[Path]:
    return sorted(c.folder.glob("*.ruleset"))


def _fill(rules: Path, c: CompiledCache) -> Path:
    cached_evaluator(rules, cache=c)
    (entry,) = _entries(c)
    return entry


def test_a_cached_rule_set_gives_the_same_bytes_for_every_example(
    rules: Path, cache: CompiledCache, expected: dict[Path, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    first = cached_evaluator(rules, cache=cache)
    assert len(_entries(cache)) == 1
    monkeypatch.setattr(mdtflag.ruleset.load, "load_ruleset", lambda p: pytest.fail("read again"))
    second = cached_evaluator(rules, cache=cache)
    assert second.ruleset.digest == first.ruleset.digest
    assert second.profile == first.profile
    for p in EXAMPLES:
        got = to_json(second.evaluate(p, as_of=AS_OF))
        assert got == expected[p], p


def test_files_are_private(rules: Path, cache: CompiledCache) -> None:
    entry = _fill(rules, cache)
    assert stat.S_IMODE(cache.folder.stat().st_mode) == 0o700
    assert stat.S_IMODE(entry.stat().st_mode) == 0o600
    (key,) = cache.folder.glob("key-*")
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert key.stat().st_size == 32
    assert not list(cache.folder.glob(".tmp-*"))


def _flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x40]) + data[at + 1 :]


@pytest.mark.parametrize(
    "damage",
    [
        lambda b: b"",
        lambda b: b[: len(b) // 2],
        lambda b: b[:-1],
        lambda b: b + b"\0",
        lambda b: _flip(b, 3),  # format line
        lambda b: _flip(b, len(cache_mod.FORMAT) + 5),  # the key in the header
        lambda b: _flip(b, b.index(b"\n", len(cache_mod.FORMAT)) + 4),  # the MAC
        lambda b: _flip(b, len(b) - 100),  # the payload
        lambda b: os.urandom(len(b)),
    ],
    ids=["empty", "half", "short", "longer", "format", "key", "mac", "payload", "noise"],
)
def test_a_damaged_entry_is_ignored_and_rebuilt(
    rules: Path, cache: CompiledCache, expected: dict[Path, bytes], damage: object
) -> None:
    entry = _fill(rules, cache)
    good = entry.read_bytes()
    entry.write_bytes(damage(good))  # type: ignore[operator]
    key = cache.key(rules, [], None, "loaded")
    assert key is not None
    assert cache.load(key) is None
    ev = cached_evaluator(rules, cache=cache)
    assert to_json(ev.evaluate(FIRST, as_of=AS_OF)) == expected[FIRST]
    assert cache.load(key) is not None  # rebuilt and replaced


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_any_change_to_an_entry_is_refused(tmp_path: Path, data: st.DataObject) -> None:
    c = CompiledCache(tmp_path / f"c{data.draw(st.integers(0, 10**9))}")
    key, blob = _shared_entry(c)
    at = data.draw(st.integers(0, len(blob) - 1))
    how = data.draw(st.sampled_from(["flip", "cut", "insert"]))
    if how == "flip":
        changed = blob[:at] + bytes([blob[at] ^ data.draw(st.integers(1, 255))]) + blob[at + 1 :]
    elif how == "cut":
        changed = blob[:at]
    else:
        changed = blob[:at] + data.draw(st.binary(min_size=1, max_size=8)) + blob[at:]
    secret = c.secret()
    assert secret is not None
    c._entry_path(key, secret).write_bytes(changed)
    assert c.load(key) is None


_ENTRY: dict[str, tuple[CompiledRuleSet, str]] = {}


def _shared_entry(c: CompiledCache) -> tuple[str, bytes]:
    """An entry of the shipped rule set written into ``c`` (compiled once for the module)."""
    if "crs" not in _ENTRY:
        ev = Evaluator(RULES)
        _ENTRY["crs"] = (ev.compiled(), "0" * 64)
    crs, key = _ENTRY["crs"]
    assert c.store(key, crs)
    secret = c.secret()
    assert secret is not None
    return key, c._entry_path(key, secret).read_bytes()


def test_an_entry_made_with_another_key_is_refused(tmp_path: Path) -> None:
    """Another user's entry, or one forged by anyone who does not hold this user's key."""
    mine = CompiledCache(tmp_path / "mine")
    theirs = CompiledCache(tmp_path / "theirs")
    key, blob = _shared_entry(theirs)
    secret = mine.secret()
    assert secret is not None
    mine._entry_path(key, secret).write_bytes(blob)
    assert mine.load(key) is None


def test_an_entry_under_another_key_is_refused(tmp_path: Path) -> None:
    c = CompiledCache(tmp_path / "c")
    key, blob = _shared_entry(c)
    other = "1" * 64
    secret = c.secret()
    assert secret is not None
    c._entry_path(other, secret).write_bytes(blob)
    assert c.load(other) is None
    assert c.load(key) is not None


def test_an_authenticated_payload_still_cannot_call_functions(tmp_path: Path) -> None:
    """Even with the right key, the unpickler builds classes of mdtflag and pydantic only."""
    c = CompiledCache(tmp_path / "c")
    victim = tmp_path / "victim"
    victim.write_text("x")

    class Evil:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (os.remove, (str(victim),))

    secret = c.secret()
    assert secret is not None
    key = "2" * 64
    payload = pickle.dumps((Evil(),), protocol=pickle.HIGHEST_PROTOCOL)
    c.folder.mkdir(parents=True, exist_ok=True)
    c._entry_path(key, secret).write_bytes(cache_mod.seal(cache_mod.FORMAT, key, secret, payload))
    assert c.load(key) is None
    assert victim.exists()
    with pytest.raises(pickle.UnpicklingError):
        cache_mod._Unpickler(io.BytesIO(payload)).load()


def test_a_changed_rule_file_is_a_new_key(rules: Path, cache: CompiledCache, no_reading: None) -> None:
    before = cache.key(rules, [], None, "loaded")
    profiles = rules / "profiles.yaml"
    profiles.write_text(profiles.read_text(encoding="utf-8") + "\n# a comment\n", encoding="utf-8")
    assert cache.key(rules, [], None, "loaded") != before
    (rules / "criteria" / "new-file.txt").write_text("any file under the rule directory counts")
    assert len({cache.key(rules, [], None, "loaded"), before}) == 2


def test_the_key_separates_profiles_modes_paths_and_terminology(
    rules: Path, cache: CompiledCache, tmp_path: Path
) -> None:
    site = tmp_path / "site"
    site.mkdir()
    link = tmp_path / "same-rules"  # the same files under another path (the rule set records its path)
    link.symlink_to(rules)
    keys = {
        cache.key(rules, [], None, "loaded"),
        cache.key(rules, [], None, "checked"),
        cache.key(rules, [], "research", "loaded"),
        cache.key(rules, [site], None, "loaded"),
        cache.key(link, [], None, "loaded"),
    }
    assert None not in keys and len(keys) == 5
    assert cache.key(tmp_path / "absent", [], None, "loaded") is None
    assert cache.key(rules, [tmp_path / "absent"], None, "loaded") is None


def test_other_code_or_versions_make_a_new_key(
    rules: Path, cache: CompiledCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = cache.key(rules, [], None, "loaded")
    monkeypatch.setattr(cache_mod, "_CODE_STAMP", [b"other code"])
    assert cache.key(rules, [], None, "loaded") != before
    monkeypatch.setattr(cache_mod, "_CODE_STAMP", [])
    monkeypatch.setattr(cache_mod, "__version__", "0.0.0-other")
    assert cache.key(rules, [], None, "loaded") != before


def test_a_key_file_others_can_read_turns_the_cache_off(
    rules: Path, cache: CompiledCache, expected: dict[Path, bytes]
) -> None:
    assert cache.secret() is not None
    (key,) = cache.folder.glob("key-*")
    key.chmod(0o644)
    fresh = CompiledCache(cache.folder)
    assert fresh.secret() is None
    ev = cached_evaluator(rules, cache=fresh)
    assert to_json(ev.evaluate(FIRST, as_of=AS_OF)) == expected[FIRST]
    assert _entries(fresh) == []


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="POSIX owners")
def test_a_key_file_of_another_owner_turns_the_cache_off(cache: CompiledCache, monkeypatch: pytest.MonkeyPatch) -> None:
    """A key file someone else made (e.g. planted in a shared folder) is never used."""
    other = os.getuid() + 4242
    cache.folder.mkdir(parents=True)
    (cache.folder / f"key-{other}").write_bytes(os.urandom(32))
    (cache.folder / f"key-{other}").chmod(0o600)
    monkeypatch.setattr(os, "getuid", lambda: other)
    assert cache.secret() is None


def test_a_short_key_file_or_a_link_turns_the_cache_off(cache: CompiledCache, tmp_path: Path) -> None:
    cache.folder.mkdir(parents=True)
    path = cache._key_path()
    path.write_bytes(b"short")
    path.chmod(0o600)
    assert CompiledCache(cache.folder).secret() is None
    path.unlink()
    target = tmp_path / "elsewhere"
    target.write_bytes(os.urandom(32))
    target.chmod(0o600)
    path.symlink_to(target)
    assert CompiledCache(cache.folder).secret() is None


def test_an_unwritable_folder_is_no_cache_and_no_error(
    rules: Path, tmp_path: Path, expected: dict[Path, bytes]
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    c = CompiledCache(blocker / "cache")
    ev = cached_evaluator(rules, cache=c)
    assert to_json(ev.evaluate(FIRST, as_of=AS_OF)) == expected[FIRST]


def test_an_invalid_rule_set_is_never_stored(rules: Path, cache: CompiledCache) -> None:
    (rules / "profiles.yaml").write_text("profiles: [\n", encoding="utf-8")
    for _ in range(2):
        with pytest.raises(mdtflag.RuleSetError):
            cached_evaluator(rules, cache=cache)
    assert _entries(cache) == []


def test_rules_changed_while_building_are_not_stored(rules: Path, cache: CompiledCache) -> None:
    def build() -> Evaluator:
        ev = Evaluator(rules)
        (rules / "criteria" / "late.txt").write_text("written while the rule set was compiled")
        return ev

    cached_evaluator(rules, cache=cache, build=build)
    assert _entries(cache) == []


def test_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MDTFLAG_CACHE_DIR", str(tmp_path / "x"))
    monkeypatch.delenv("MDTFLAG_NO_CACHE", raising=False)
    got = cache_from_environment()
    assert got is not None and got.folder == tmp_path / "x"
    monkeypatch.delenv("MDTFLAG_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    got = cache_from_environment()
    assert got is not None and got.folder == tmp_path / "xdg" / "mdtflag"
    monkeypatch.setenv("MDTFLAG_NO_CACHE", "1")
    assert cache_from_environment() is None


def _cli(cache_dir: Path, *extra: str, no_cache: bool = False) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MDTFLAG_CACHE_DIR": str(cache_dir)}
    env.pop("MDTFLAG_NO_CACHE", None)
    if no_cache:
        env["MDTFLAG_NO_CACHE"] = "1"
    cmd = [sys.executable, "-m", "mdtflag", "evaluate", str(FIRST), "--as-of", AS_OF, "--rules", str(RULES), *extra]
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_processes_sharing_a_cache_at_once(tmp_path: Path, expected: dict[Path, bytes]) -> None:
    """Three `mdtflag evaluate` started together on an empty cache, then one more: same bytes, one valid entry;
    with the cache turned off nothing is written."""
    folder = tmp_path / "shared"
    procs = [_cli(folder) for _ in range(3)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [o[1][-2000:] for o in outs]
    assert all(o[0] == expected[FIRST] for o in outs)
    c = CompiledCache(folder)
    (entry,) = _entries(c)
    assert c.load(entry.name[:64]) is not None  # whole and authenticated
    assert not list(folder.glob(".tmp-*"))
    last = _cli(folder)
    out, err = last.communicate(timeout=600)
    assert last.returncode == 0 and out == expected[FIRST], err[-2000:]
    off = tmp_path / "off"
    p = _cli(off, no_cache=True)
    out, err = p.communicate(timeout=600)
    assert p.returncode == 0 and out == expected[FIRST], err[-2000:]
    assert not off.exists()
