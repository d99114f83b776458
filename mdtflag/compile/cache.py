"""A cache of compiled rule sets on disk, so that a new process skips reading and compiling the rules.

An entry holds one rule set compiled for one profile (the rule model, the evaluation plan and the
engine's atoms; the engine itself is rebuilt from the atoms, some tens of milliseconds). Its
**key** is a SHA-256 over everything the compiled rule set depends on:

* every file under the rule directory (relative path and bytes), the site terminology folders
  (path as given and every file), and the shipped terminology when the rule set has none;
* the directory and profile as given, and how the rule set was accepted (``loaded``: read and
  compiled; ``checked``: also compiled for every profile and linted, as ``mdtflag evaluate`` asks);
* mdtflag's version and the size and modification time of every file of the installed package
  (so an edited source checkout never reads an entry written by other code), the same of the entry
  file of durable-rules' engine, pydantic, pydantic-core and PyYAML (another installed
  version is another key), and Python's version.

**Trust.** An entry is a pickle, and a pickle can run code when read, so an entry is read only
when it is *authenticated*: the file carries an HMAC-SHA256 over its header and payload with a
secret key of the user (32 random bytes in ``key-<uid>`` in the cache folder, created ``0600``; a key
file that is not the user's own, or that others can read or write, disables the cache). An entry
written with another key (another user's, or by anyone without the key) fails the check and is
ignored; so does one whose header names another key, format or version, or that is truncated or
altered in any byte. Even an authenticated payload is read by an unpickler that builds only classes of
mdtflag and pydantic, read-only mappings and a few plain standard types. An entry that fails any check is rebuilt and
replaced; reading the cache never raises.

**Writing** is atomic: a new file in the cache folder (``0600``), written, flushed to disk and renamed
over the entry, so processes that read or write the same entry at once see the old entry, the new
one, or none, never a partial one. Two processes that build the same entry both write a valid one;
the last rename stays.

**Where**: ``$MDTFLAG_CACHE_DIR``, else ``$XDG_CACHE_HOME/mdtflag``, else ``~/.cache/mdtflag`` (created
``0700``). ``MDTFLAG_NO_CACHE=1`` turns the cache off.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import hmac
import importlib.util
import io
import os
import pickle
import stat
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, Optional

from mdtflag._version import __version__
from mdtflag.compile.engine import fact_engine
from mdtflag.compile.plan import CompiledRuleSet

__all__ = [
    "CACHE_DIR_ENV",
    "FORMAT",
    "NO_CACHE_ENV",
    "CompiledCache",
    "cache_from_environment",
    "code_stamp",
    "package_stamp",
    "seal",
    "unseal",
]

CACHE_DIR_ENV: Final = "MDTFLAG_CACHE_DIR"
NO_CACHE_ENV: Final = "MDTFLAG_NO_CACHE"
#: First line of every entry; a new layout of the entry gets a new format.
FORMAT: Final = b"mdtflag-compiled-ruleset/1\n"
_KEY_BYTES: Final = 32
_MAC_BYTES: Final = 32
_PACKAGE: Final = Path(__file__).resolve().parent.parent

# what an entry may build: (module prefix, names or None for any name of a module with that prefix)
_ALLOWED_MODULES: Final = ("mdtflag.", "pydantic.", "pydantic_core.")
_ALLOWED_NAMES: Final[dict[str, frozenset[str]]] = {
    "builtins": frozenset({"set", "frozenset", "tuple", "list", "dict", "bytes", "str", "int", "float", "bool"}),
    "copyreg": frozenset({"_reconstructor"}),
    "datetime": frozenset({"date", "datetime", "time", "timedelta", "timezone"}),
    "decimal": frozenset({"Decimal"}),
    "collections": frozenset({"OrderedDict", "defaultdict"}),
}


def _versions() -> bytes:
    """mdtflag's and Python's versions, and where and how big the installed engine, model and YAML packages are.

    A package is named by the size and modification time of its entry file (found without importing it),
    so another installed version is another key without the cost of reading distribution metadata.
    """
    parts = [f"mdtflag {__version__}", f"python {sys.version}", f"cache {FORMAT.decode().strip()}"]
    parts += [package_stamp(name) for name in ("durable_rules_engine", "pydantic", "pydantic_core", "yaml")]
    return "\n".join(parts).encode()


def package_stamp(name: str) -> str:
    """An installed package named by the place, size and modification time of its entry file (found without
    importing it): another installed version gives another stamp."""
    try:
        spec = importlib.util.find_spec(name)
        origin = spec.origin if spec is not None else None
        st = os.stat(origin) if origin else None
    except (ImportError, ValueError, OSError):
        st, origin = None, None
    return f"{name} {origin} {st.st_size if st else '-'} {st.st_mtime_ns if st else '-'}"


_CODE_STAMP: list[bytes] = []


def code_stamp() -> bytes:
    """The versions and the size and modification time of every file of the mdtflag package (once per process)."""
    if not _CODE_STAMP:
        h = hashlib.sha256(_versions())
        for dirpath, dirnames, filenames in os.walk(_PACKAGE):
            dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
            for name in sorted(filenames):
                path = os.path.join(dirpath, name)
                try:
                    st = os.stat(path)
                except OSError:
                    continue
                rel = os.path.relpath(path, _PACKAGE)
                h.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\0".encode())
        _CODE_STAMP.append(h.digest())
    return _CODE_STAMP[0]


def _hash_tree(h: Any, root: Path, label: str) -> None:
    """Every regular file under ``root`` (sorted by relative path): path and bytes, into ``h``."""
    h.update(f"tree\0{label}\0".encode())
    files: list[tuple[str, str]] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in filenames:
            path = os.path.join(dirpath, name)
            files.append((os.path.relpath(path, root).replace(os.sep, "/"), path))
    for rel, path in sorted(files):
        with open(path, "rb") as f:
            data = f.read()
        h.update(f"{rel}\0{len(data)}\0".encode())
        h.update(data)


def _default_terminology_dir() -> Optional[Path]:
    """The folder :func:`mdtflag.fhir.facts.terminology.default_terminology` reads (same order)."""
    for folder in (_PACKAGE / "default_rules" / "terminology", _PACKAGE.parent / "rules" / "terminology"):
        if folder.is_dir():
            return folder
    return None


class CompiledCache:
    """Authenticated entries of compiled rule sets in one folder; see the module's description."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._secret: Optional[bytes] = None
        self._secret_read = False

    # ---- the key of an entry
    def key(self, rules: Path, site_dirs: Sequence[Path], profile: Optional[str], mode: str) -> Optional[str]:
        """The entry's key for this rule directory, or None when it cannot be computed (files unreadable)."""
        h = hashlib.sha256(code_stamp())
        h.update(f"mode\0{mode}\0profile\0{profile or ''}\0root\0{rules}\0".encode())
        try:
            if not rules.is_dir():
                return None
            _hash_tree(h, rules, "rules")
            if not (rules / "terminology").is_dir():
                shipped = _default_terminology_dir()
                if shipped is not None:
                    _hash_tree(h, shipped, "shipped terminology")
            for d in site_dirs:
                if not d.is_dir():
                    return None
                _hash_tree(h, d, f"site terminology {d.as_posix()}")
        except OSError:
            return None
        return h.hexdigest()

    # ---- the user's secret
    def _key_path(self) -> Path:
        uid = os.getuid() if hasattr(os, "getuid") else 0
        return self.folder / f"key-{uid}"

    def secret(self) -> Optional[bytes]:
        """The user's key (created on first use), or None when there is no key this user alone controls."""
        if self._secret_read:
            return self._secret
        self._secret_read = True
        try:
            self._ensure_folder()
            path = self._key_path()
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
            except FileExistsError:
                pass
            else:
                with os.fdopen(fd, "wb") as f:
                    f.write(os.urandom(_KEY_BYTES))
                    f.flush()
                    os.fsync(f.fileno())
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
            with os.fdopen(fd, "rb") as f:
                st = os.fstat(f.fileno())
                if not _owned_by_me(st) or st.st_mode & 0o077 or not stat.S_ISREG(st.st_mode):
                    return None
                data = f.read(_KEY_BYTES + 1)
            if len(data) != _KEY_BYTES:
                return None
            self._secret = data
        except OSError:
            return None
        return self._secret

    def _ensure_folder(self) -> None:
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)

    def _entry_path(self, key: str, secret: bytes) -> Path:
        # entries of different keys (users) never share a file name
        owner = hmac.new(secret, b"entry names", hashlib.sha256).hexdigest()[:16]
        return self.folder / f"{key}-{owner}.ruleset"

    # ---- reading and writing
    def load(self, key: str) -> Optional[CompiledRuleSet]:
        """The compiled rule set stored under ``key``, or None (absent, or any check failed)."""
        secret = self.secret()
        if secret is None:
            return None
        blob = self.read_file(self._entry_path(key, secret))
        if blob is None:
            return None
        try:
            return _decode(blob, key, secret)
        except Exception:  # an entry that cannot be read is no entry: it is rebuilt
            return None

    def store(self, key: str, crs: CompiledRuleSet) -> bool:
        """Write the entry atomically; False when it could not be written (the cache is only an aid)."""
        secret = self.secret()
        if secret is None:
            return False
        try:
            blob = _encode(crs, key, secret)
        except Exception:  # something in the rule set that cannot be stored: no entry
            return False
        return self.write_file(self._entry_path(key, secret), blob)

    # ---- files of the folder (also for :mod:`mdtflag.compile.plan_store`)
    def path_for(self, stem: str, suffix: str) -> Optional[Path]:
        """A file of the folder for ``stem`` that is this user's own (named with the user's key), or None
        without a key."""
        secret = self.secret()
        if secret is None:
            return None
        return self._entry_path(stem, secret).with_suffix(suffix)

    @staticmethod
    def read_file(path: Path) -> Optional[bytes]:
        """The bytes of a file of the folder (a link is not followed), or None."""
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
            with os.fdopen(fd, "rb") as f:
                return f.read()
        except OSError:
            return None

    def write_file(self, path: Path, blob: bytes) -> bool:
        """Replace ``path`` atomically (a new ``0600`` file in the folder, flushed, renamed over it)."""
        tmp = None
        try:
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=path.suffix, dir=self.folder)
            with os.fdopen(fd, "wb") as f:
                f.write(blob)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
            tmp = None
        except OSError:
            return False
        finally:
            if tmp is not None:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
        return True


def _owned_by_me(st: os.stat_result) -> bool:
    return not hasattr(os, "getuid") or st.st_uid == os.getuid()


def seal(fmt: bytes, key: str, secret: bytes, payload: bytes) -> bytes:
    """``payload`` behind a header (``fmt``, then ``key`` on a line) and an HMAC-SHA256 over both."""
    head = fmt + key.encode() + b"\n"
    return head + hmac.new(secret, head + payload, hashlib.sha256).digest() + payload


def unseal(fmt: bytes, key: str, secret: bytes, blob: bytes) -> Optional[bytes]:
    """The payload of a :func:`seal`ed blob with this format, key and secret; None when anything differs."""
    head = fmt + key.encode() + b"\n"
    if not blob.startswith(head) or len(blob) < len(head) + _MAC_BYTES:
        return None
    mac, payload = blob[len(head) : len(head) + _MAC_BYTES], blob[len(head) + _MAC_BYTES :]
    if not hmac.compare_digest(mac, hmac.new(secret, head + payload, hashlib.sha256).digest()):
        return None
    return payload


def _encode(crs: CompiledRuleSet, key: str, secret: bytes) -> bytes:
    state = (
        crs.ruleset,
        crs.profile,
        dict(crs.params),
        crs.engine.atoms,
        crs.rules,
        dict(crs.sent_fields),
    )
    buf = io.BytesIO()
    _Pickler(buf, protocol=pickle.HIGHEST_PROTOCOL).dump(state)
    return seal(FORMAT, key, secret, buf.getvalue())


def _decode(blob: bytes, key: str, secret: bytes) -> Optional[CompiledRuleSet]:
    payload = unseal(FORMAT, key, secret, blob)
    if payload is None:
        return None
    was = gc.isenabled()
    gc.disable()  # tens of thousands of new objects, none of them garbage: no collection passes meanwhile
    try:
        state = _Unpickler(io.BytesIO(payload)).load()
    finally:
        if was:
            gc.enable()
    ruleset, profile, params, atoms, rules, sent = state
    # the entry is authenticated and keyed by this code: its atoms passed the engine's limit checks when compiled
    return CompiledRuleSet(ruleset, profile, params, fact_engine(atoms, limits_checked=True), rules, sent)


def _read_only(items: dict[Any, Any]) -> Mapping[Any, Any]:
    return MappingProxyType(items)


#: the functions an entry may call while it is read (besides building classes)
_ALLOWED_CALLS: Final = frozenset({("copyreg", "_reconstructor"), (__name__, "_read_only")})


class _Pickler(pickle.Pickler):
    """Stores read-only mappings (``MappingProxyType``) as read-only mappings of their items."""

    def reducer_override(self, obj: Any) -> Any:
        if type(obj) is MappingProxyType:
            return _read_only, (dict(obj),)
        return NotImplemented


class _Unpickler(pickle.Unpickler):
    """Builds only classes of mdtflag and pydantic and a few plain standard types (no function is called)."""

    def find_class(self, module: str, name: str) -> Any:
        allowed = _ALLOWED_NAMES.get(module)
        if (allowed is not None and name in allowed) or module.startswith(_ALLOWED_MODULES):
            found = super().find_class(module, name)
            if isinstance(found, type) or (module, name) in _ALLOWED_CALLS:
                return found
        raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a compiled rule set")


def cache_from_environment() -> Optional[CompiledCache]:
    """The cache in the folder the environment names, or None when it is turned off."""
    if os.environ.get(NO_CACHE_ENV, "") not in ("", "0"):
        return None
    folder = os.environ.get(CACHE_DIR_ENV)
    if not folder:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        folder = os.path.join(base, "mdtflag")
    return CompiledCache(Path(folder))
