"""Bearer-token authentication for the HTTP service (CDS Hooks 2.0 client JWTs).

Every call carries ``Authorization: Bearer <JWT>`` signed by a client (an EHR or an integration
engine). :class:`Authenticator` accepts a token only when all of these hold:

* the header ``alg`` is ES384 or RS384 (``none``, HMAC and every other algorithm are refused);
* ``iss`` names an issuer listed in the operator's trust file;
* the header carries no key material or key location of its own (``jwk``, ``x5u``, ``x5c``), and a
  ``jku``, when present, is exactly the ``jwks_url`` the trust file gives for that issuer -- the
  service never fetches a URL taken from a token;
* ``kid`` names a key in that issuer's key set (inline in the trust file, or fetched from its
  ``jwks_url`` with a timeout and a size bound, cached, and refreshed at most every
  ``jwks_min_refresh_s`` seconds when an unknown ``kid`` arrives), the key suits the algorithm
  (P-384 for ES384, RSA of at least 2048 bits for RS384) and the signature verifies;
* ``aud`` is the audience the caller of :meth:`Authenticator.verify` passes (the endpoint URL), as a
  string or as one member of an array;
* ``exp``, ``iat`` and ``jti`` are present; ``exp`` has not passed and ``iat`` is not in the future
  (both with ``clock_skew_s`` of tolerance), ``nbf`` (if present) has been reached, and the token
  lives no longer than ``max_lifetime_s``;
* the ``(iss, jti)`` pair has not been accepted before within the token's lifetime, by this or by
  any other worker process sharing ``replay_dir`` (a SQLite database in WAL mode; one atomic
  upsert per accepted token).

Parsing and the signature algorithms are PyJWT's (on ``cryptography``); this module chooses the
key and checks the claims. The token is parsed once and its signature checked with PyJWT's
ES384/RS384 implementation. Tokens are never logged or stored: the replay database keeps a SHA-256 digest of
``iss`` and ``jti`` and the time the entry may be forgotten.
"""
from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import json
import logging
import math
import os
import re
import sqlite3
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Union
from urllib.parse import urlsplit

import httpx
import jwt
import yaml
from cryptography.hazmat.primitives.asymmetric import ec, rsa

__all__ = [
    "ALLOWED_ALGORITHMS",
    "AuthError",
    "Authenticator",
    "ReplayStore",
    "ReplayStoreError",
    "TrustFileError",
    "TrustedIssuer",
    "load_trust_file",
    "url_problem",
]

log = logging.getLogger(__name__)

#: The only signature algorithms accepted (CDS Hooks 2.0 recommends exactly these).
ALLOWED_ALGORITHMS: tuple[str, ...] = ("ES384", "RS384")

_ALGORITHMS = {name: jwt.algorithms.get_default_algorithms()[name] for name in ALLOWED_ALGORITHMS}
_COMPACT_JWS = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")

#: Longest ``Authorization`` header value considered; anything longer is malformed.
MAX_AUTHORIZATION_CHARS = 16_384
#: Longest ``jti`` accepted.
MAX_JTI_CHARS = 512
#: Smallest RSA modulus accepted for RS384.
MIN_RSA_BITS = 2048

_HEADER_KEY_FIELDS = ("jwk", "x5u", "x5c")
_TRUST_ENTRY_FIELDS = frozenset({"iss", "jwks_url", "jwks", "fhir_servers"})
_LOOPBACK_NAMES = frozenset({"localhost"})

VerifyKey = Union[ec.EllipticCurvePublicKey, rsa.RSAPublicKey]


class AuthError(Exception):
    """A request's credentials were refused; ``reason`` is a short machine-readable code.

    Reasons: ``missing-token``, ``malformed``, ``alg-not-allowed``, ``untrusted-issuer``,
    ``embedded-key-not-allowed``, ``jku-not-allowed``, ``missing-kid``, ``unknown-kid``,
    ``jwks-unavailable``, ``key-mismatch``, ``bad-signature``, ``missing-claim``,
    ``wrong-audience``, ``expired``, ``not-yet-valid``, ``iat-in-future``, ``lifetime-too-long``,
    ``replayed-jti``, ``fhir-server-not-allowed``. The message never contains the token.
    """

    def __init__(self, reason: str, message: str = "") -> None:
        super().__init__(f"{reason}: {message}" if message else reason)
        self.reason = reason
        self.message = message


class TrustFileError(Exception):
    """The trust file cannot be read or does not have the documented shape."""

    def __init__(self, path: Path, where: str, message: str) -> None:
        location = f"{path}: {where}" if where else str(path)
        super().__init__(f"{location}: {message}")
        self.path = path
        self.where = where
        self.message = message


@dataclass(frozen=True)
class _Key:
    kid: str
    family: str  # "EC" or "RSA"
    alg: str | None  # the JWK's own "alg" member, when it has one
    key: VerifyKey


@dataclass(frozen=True)
class TrustedIssuer:
    """One ``issuers`` entry of the trust file."""

    iss: str
    jwks_url: str | None = None
    inline_keys: Mapping[str, _Key] = field(default_factory=dict)
    fhir_servers: tuple[str, ...] = ()


def _is_loopback_host(host: str) -> bool:
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def url_problem(value: str) -> str:
    """What is wrong with ``value`` as a service URL (https; plain http only on loopback); ``""`` when nothing."""
    try:
        parts = urlsplit(value)
        _ = parts.port
    except ValueError as exc:
        return f"is not a valid URL ({exc})"
    if parts.scheme not in ("https", "http") or not parts.hostname:
        return "must be an absolute https URL"
    if parts.username is not None or parts.password is not None:
        return "must not carry credentials"
    if parts.fragment:
        return "must not have a fragment"
    if parts.scheme == "http" and not _is_loopback_host(parts.hostname):
        return "must use https (plain http is accepted only for a loopback host)"
    return ""


def _parse_jwk(jwk_dict: Mapping[str, Any]) -> _Key:
    """Turn one JWK into a verification key, or raise ValueError saying why it is unusable."""
    kid = jwk_dict.get("kid")
    if not isinstance(kid, str) or not kid:
        raise ValueError("has no 'kid' (a non-empty string is required)")
    kty = jwk_dict.get("kty")
    if "d" in jwk_dict or "p" in jwk_dict:
        raise ValueError(f"key {kid!r} holds private key material; publish only the public key")
    use = jwk_dict.get("use")
    if use is not None and use != "sig":
        raise ValueError(f"key {kid!r} has use={use!r}, not 'sig'")
    key_ops = jwk_dict.get("key_ops")
    if key_ops is not None and (not isinstance(key_ops, list) or "verify" not in key_ops):
        raise ValueError(f"key {kid!r} has key_ops without 'verify'")
    alg = jwk_dict.get("alg")
    if alg is not None and alg not in ALLOWED_ALGORITHMS:
        raise ValueError(f"key {kid!r} has alg={alg!r}; only {', '.join(ALLOWED_ALGORITHMS)} are accepted")
    if kty == "EC":
        if jwk_dict.get("crv") != "P-384":
            raise ValueError(f"key {kid!r} is on curve {jwk_dict.get('crv')!r}; ES384 needs P-384")
        if alg not in (None, "ES384"):
            raise ValueError(f"key {kid!r} is an EC key with alg={alg!r}")
        family = "EC"
        algorithm = "ES384"
    elif kty == "RSA":
        if alg not in (None, "RS384"):
            raise ValueError(f"key {kid!r} is an RSA key with alg={alg!r}")
        family = "RSA"
        algorithm = "RS384"
    else:
        raise ValueError(f"key {kid!r} has kty={kty!r}; only EC (P-384) and RSA keys are accepted")
    try:
        parsed = jwt.PyJWK(dict(jwk_dict), algorithm=algorithm).key
    except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError, KeyError) as exc:
        raise ValueError(f"key {kid!r} cannot be read ({exc})") from None
    if family == "EC":
        if not isinstance(parsed, ec.EllipticCurvePublicKey) or not isinstance(parsed.curve, ec.SECP384R1):
            raise ValueError(f"key {kid!r} is not a P-384 public key")
    else:
        if not isinstance(parsed, rsa.RSAPublicKey):
            raise ValueError(f"key {kid!r} is not an RSA public key")
        if parsed.key_size < MIN_RSA_BITS:
            raise ValueError(f"key {kid!r} has {parsed.key_size} bits; at least {MIN_RSA_BITS} are required")
    return _Key(kid=kid, family=family, alg=alg, key=parsed)


def _read_trust_document(path: Path) -> object:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TrustFileError(path, "", f"cannot be read ({exc})") from None
    if path.suffix.lower() == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise TrustFileError(path, f"line {exc.lineno}", f"is not valid JSON ({exc.msg})") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise TrustFileError(path, where, f"is not valid YAML ({problem})") from None


def load_trust_file(path: Path) -> list[TrustedIssuer]:
    """Read and check a trust file; raise :class:`TrustFileError` naming the file and the fault."""
    doc = _read_trust_document(path)
    if not isinstance(doc, dict):
        raise TrustFileError(path, "", "must be a mapping with an 'issuers' list")
    extra = sorted(str(k) for k in doc if k != "issuers")
    if extra:
        raise TrustFileError(path, "", f"unknown top-level field(s) {', '.join(extra)}; only 'issuers' is defined")
    entries = doc.get("issuers")
    if not isinstance(entries, list) or not entries:
        raise TrustFileError(path, "issuers", "must be a non-empty list of issuers")
    issuers: list[TrustedIssuer] = []
    seen: set[str] = set()
    for index, entry in enumerate(entries):
        where = f"issuers[{index}]"
        if not isinstance(entry, dict):
            raise TrustFileError(path, where, "must be a mapping with 'iss' and 'jwks_url' or 'jwks'")
        unknown = sorted(str(k) for k in entry if k not in _TRUST_ENTRY_FIELDS)
        if unknown:
            raise TrustFileError(
                path, where, f"unknown field(s) {', '.join(unknown)}; allowed: {', '.join(sorted(_TRUST_ENTRY_FIELDS))}"
            )
        iss = entry.get("iss")
        if not isinstance(iss, str) or not iss.strip():
            raise TrustFileError(path, f"{where}.iss", "must be a non-empty string (the tokens' 'iss')")
        if iss in seen:
            raise TrustFileError(path, f"{where}.iss", f"issuer {iss!r} is listed twice")
        seen.add(iss)
        has_url = "jwks_url" in entry
        has_inline = "jwks" in entry
        if has_url == has_inline:
            raise TrustFileError(path, where, "must have exactly one of 'jwks_url' and 'jwks'")
        jwks_url: str | None = None
        inline: dict[str, _Key] = {}
        if has_url:
            url = entry["jwks_url"]
            if not isinstance(url, str):
                raise TrustFileError(path, f"{where}.jwks_url", "must be a string")
            problem = url_problem(url)
            if problem:
                raise TrustFileError(path, f"{where}.jwks_url", problem)
            jwks_url = url
        else:
            jwks = entry["jwks"]
            keys = jwks.get("keys") if isinstance(jwks, dict) else None
            if not isinstance(keys, list) or not keys:
                raise TrustFileError(path, f"{where}.jwks", "must be a key set: a mapping with a non-empty 'keys' list")
            for k_index, jwk_dict in enumerate(keys):
                k_where = f"{where}.jwks.keys[{k_index}]"
                if not isinstance(jwk_dict, dict):
                    raise TrustFileError(path, k_where, "must be a JWK (a mapping)")
                try:
                    parsed = _parse_jwk(jwk_dict)
                except ValueError as exc:
                    raise TrustFileError(path, k_where, str(exc)) from None
                if parsed.kid in inline:
                    raise TrustFileError(path, k_where, f"kid {parsed.kid!r} appears twice in this key set")
                inline[parsed.kid] = parsed
        servers_value = entry.get("fhir_servers", [])
        if not isinstance(servers_value, list) or not all(isinstance(s, str) for s in servers_value):
            raise TrustFileError(path, f"{where}.fhir_servers", "must be a list of FHIR base URLs")
        for s_index, server in enumerate(servers_value):
            problem = url_problem(server)
            if problem:
                raise TrustFileError(path, f"{where}.fhir_servers[{s_index}]", problem)
        issuers.append(
            TrustedIssuer(
                iss=iss,
                jwks_url=jwks_url,
                inline_keys=inline,
                fhir_servers=tuple(_normalise_base(s) for s in servers_value),
            )
        )
    return issuers


def _normalise_base(url: str) -> str:
    return url.rstrip("/")


class ReplayStoreError(Exception):
    """The replay database cannot be read or written: a fault of the server, not of the caller's token.

    The request must fail (503, not 401): without the replay check a token cannot be accepted.
    """


class ReplayStore:
    """Remembers accepted ``(iss, jti)`` pairs until they expire, shared by every process using ``directory``.

    One SQLite database in WAL mode; :meth:`first_use` is a single upsert that inserts the pair, or
    overwrites an entry that has already expired, and reports whether it did either. SQLite's write
    lock makes that atomic across processes. Each process opens its own connection (re-opened after
    a fork), and entries past their expiry are deleted every ``prune_every_s`` seconds.
    """

    FILE_NAME = "jti-replay.sqlite3"

    def __init__(
        self,
        directory: Path,
        *,
        clock: Callable[[], float] = time.time,
        prune_every_s: float = 60.0,
        busy_timeout_ms: int = 5000,
    ) -> None:
        self.path = directory / self.FILE_NAME
        self._clock = clock
        self._prune_every_s = prune_every_s
        self._busy_timeout_ms = busy_timeout_ms
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._pid = -1
        self._last_prune = float("-inf")
        try:
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._connection()
        except (OSError, sqlite3.Error) as exc:
            raise ReplayStoreError(f"the replay database {self.path} cannot be opened ({exc})") from None

    def _connection(self) -> sqlite3.Connection:
        if self._conn is not None and self._pid == os.getpid():
            return self._conn
        conn = sqlite3.connect(self.path, timeout=self._busy_timeout_ms / 1000, isolation_level=None, check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout={int(self._busy_timeout_ms)}")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("CREATE TABLE IF NOT EXISTS seen (k BLOB PRIMARY KEY, expires REAL NOT NULL) WITHOUT ROWID")
        conn.execute("CREATE INDEX IF NOT EXISTS seen_expires ON seen (expires)")
        self._conn = conn
        self._pid = os.getpid()
        return conn

    @staticmethod
    def _digest(iss: str, jti: str) -> bytes:
        return hashlib.sha256(iss.encode("utf-8") + b"\x00" + jti.encode("utf-8")).digest()

    def first_use(self, iss: str, jti: str, expires: float) -> bool:
        """Record the pair until ``expires`` (epoch seconds); False when it is already recorded and unexpired."""
        now = self._clock()
        key = self._digest(iss, jti)
        with self._lock:
            try:
                conn = self._connection()
                cur = conn.execute(
                    "INSERT INTO seen (k, expires) VALUES (?, ?) "
                    "ON CONFLICT (k) DO UPDATE SET expires = excluded.expires WHERE seen.expires <= ?",
                    (key, expires, now),
                )
                fresh = cur.rowcount == 1
                if now - self._last_prune >= self._prune_every_s:
                    self._last_prune = now
                    conn.execute("DELETE FROM seen WHERE expires <= ?", (now,))
            except sqlite3.Error as exc:
                raise ReplayStoreError(f"the replay database {self.path} cannot be written ({exc})") from None
        return fresh

    def count(self) -> int:
        """Entries currently stored (expired ones included until the next prune)."""
        with self._lock:
            row = self._connection().execute("SELECT count(*) FROM seen").fetchone()
        return int(row[0])

    def close(self) -> None:
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn = None


@dataclass
class _RemoteKeys:
    keys: dict[str, _Key] = field(default_factory=dict)
    fetched_at: float | None = None  # monotonic time of the last successful fetch
    attempted_at: float | None = None  # monotonic time of the last attempt
    lock: asyncio.Lock | None = None
    loop: asyncio.AbstractEventLoop | None = None

    def get_lock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        if self.lock is None or self.loop is not loop:
            self.lock = asyncio.Lock()
            self.loop = loop
        return self.lock


class Authenticator:
    """Checks bearer JWTs against the trust file; see the module docstring for the rules."""

    def __init__(
        self,
        issuers: Sequence[TrustedIssuer],
        replay_store: ReplayStore,
        *,
        clock_skew_s: float = 60.0,
        max_lifetime_s: float = 3600.0,
        jwks_timeout_s: float = 5.0,
        jwks_max_bytes: int = 256 * 1024,
        jwks_ttl_s: float = 3600.0,
        jwks_min_refresh_s: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._issuers = {issuer.iss: issuer for issuer in issuers}
        self._replay = replay_store
        self._skew = clock_skew_s
        self._max_lifetime = max_lifetime_s
        self._jwks_timeout = jwks_timeout_s
        self._jwks_max_bytes = jwks_max_bytes
        self._jwks_ttl = jwks_ttl_s
        self._jwks_min_refresh = jwks_min_refresh_s
        self._clock = clock
        self._remote: dict[str, _RemoteKeys] = {
            issuer.iss: _RemoteKeys() for issuer in issuers if issuer.jwks_url is not None
        }

    @classmethod
    def from_trust_file(cls, path: Path, replay_dir: Path, **options: Any) -> Authenticator:
        """Build from a trust file (YAML, or JSON when the name ends in ``.json``) and a replay directory.

        ``options`` are the keyword arguments of the constructor (clock skew, JWKS bounds, ...).
        """
        issuers = load_trust_file(path)
        clock = options.get("clock", time.time)
        return cls(issuers, ReplayStore(replay_dir, clock=clock), **options)

    @property
    def issuers(self) -> tuple[str, ...]:
        return tuple(self._issuers)

    async def verify(self, authorization: str | None, audience: str) -> dict[str, object]:
        """Check an ``Authorization`` header value for ``audience``; return the token's claims.

        Raises :class:`AuthError` when the credential is refused, and :class:`ReplayStoreError` when
        the replay database cannot be written (a server fault).
        """
        token = _bearer_token(authorization)
        try:
            parts = jwt.decode_complete(token, options={"verify_signature": False})
        except (jwt.PyJWTError, RecursionError):
            raise AuthError("malformed", "not a compact JWS with a JSON header and payload") from None
        header: dict[str, Any] = parts["header"]
        claims: dict[str, object] = parts["payload"]
        signature: bytes = parts["signature"]
        alg = header.get("alg")
        if alg not in ALLOWED_ALGORITHMS:
            raise AuthError("alg-not-allowed", f"alg {str(alg)[:20]!r} is not one of {', '.join(ALLOWED_ALGORITHMS)}")
        if "crit" in header:
            raise AuthError("malformed", "critical header extensions are not supported")
        typ = header.get("typ")
        if typ is not None and (not isinstance(typ, str) or typ.upper() != "JWT"):
            raise AuthError("malformed", "typ must be JWT")
        iss = claims.get("iss")
        if not isinstance(iss, str) or not iss:
            raise AuthError("missing-claim", "iss is required")
        issuer = self._issuers.get(iss)
        if issuer is None:
            raise AuthError("untrusted-issuer", "the issuer is not in the trust file")
        for name in _HEADER_KEY_FIELDS:
            if name in header:
                raise AuthError("embedded-key-not-allowed", f"header {name!r} is not accepted; keys come from the trust file")
        if "jku" in header and header["jku"] != issuer.jwks_url:
            raise AuthError("jku-not-allowed", "jku is not the key set URL trusted for this issuer")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise AuthError("missing-kid", "kid is required")
        key = await self._key_for(issuer, kid)
        if key.family != ("EC" if alg == "ES384" else "RSA") or key.alg not in (None, alg):
            raise AuthError("key-mismatch", f"key {kid[:64]!r} is not a key for {alg}")
        signing_input = token.rpartition(".")[0].encode("ascii")
        if not _ALGORITHMS[str(alg)].verify(signing_input, key.key, signature):
            raise AuthError("bad-signature", "the signature does not verify with the issuer's key")
        self._check_claims(claims, audience)
        exp = float(_number(claims, "exp"))
        if not self._replay.first_use(iss, str(claims["jti"]), exp + self._skew):
            raise AuthError("replayed-jti", "this token has been used already")
        return claims

    def check_fhir_server(self, claims: Mapping[str, object], fhir_server: str) -> None:
        """Raise AuthError(``fhir-server-not-allowed``) when the issuer lists ``fhir_servers`` and this is not one."""
        issuer = self._issuers.get(str(claims.get("iss")))
        if issuer is None:
            raise AuthError("untrusted-issuer", "the issuer is not in the trust file")
        if issuer.fhir_servers and _normalise_base(fhir_server) not in issuer.fhir_servers:
            raise AuthError("fhir-server-not-allowed", "fhirServer is not one listed for this issuer")

    def _check_claims(self, claims: Mapping[str, object], audience: str) -> None:
        now = self._clock()
        for name in ("aud", "exp", "iat", "jti"):
            if name not in claims:
                raise AuthError("missing-claim", f"{name} is required")
        aud = claims["aud"]
        if isinstance(aud, str):
            audience_ok = aud == audience
        elif isinstance(aud, list) and all(isinstance(a, str) for a in aud):
            audience_ok = audience in aud
        else:
            raise AuthError("malformed", "aud must be a string or a list of strings")
        if not audience_ok:
            raise AuthError("wrong-audience", "aud is not this endpoint")
        exp = _number(claims, "exp")
        iat = _number(claims, "iat")
        jti = claims["jti"]
        if not isinstance(jti, str) or not jti or len(jti) > MAX_JTI_CHARS:
            raise AuthError("malformed", f"jti must be a non-empty string of at most {MAX_JTI_CHARS} characters")
        if now >= exp + self._skew:
            raise AuthError("expired", "exp has passed")
        if iat > now + self._skew:
            raise AuthError("iat-in-future", "iat is later than now plus the allowed clock skew")
        if "nbf" in claims and _number(claims, "nbf") > now + self._skew:
            raise AuthError("not-yet-valid", "nbf has not been reached")
        if exp - iat > self._max_lifetime:
            raise AuthError("lifetime-too-long", f"exp - iat exceeds {self._max_lifetime:g} s")

    async def _key_for(self, issuer: TrustedIssuer, kid: str) -> _Key:
        if issuer.jwks_url is None:
            found = issuer.inline_keys.get(kid)
            if found is None:
                raise AuthError("unknown-kid", "kid is not in the issuer's key set")
            return found
        remote = self._remote[issuer.iss]
        lock = remote.get_lock()
        if kid in remote.keys and (self._fresh(remote) or lock.locked()):
            return remote.keys[kid]  # a known key serves while a refresh is under way
        async with lock:
            now = time.monotonic()
            stale = not self._fresh(remote)
            missing = kid not in remote.keys
            recently_tried = remote.attempted_at is not None and now - remote.attempted_at < self._jwks_min_refresh
            if (stale or missing) and not recently_tried:
                remote.attempted_at = now
                try:
                    remote.keys = await self._fetch_jwks(issuer.jwks_url)
                    remote.fetched_at = time.monotonic()
                except _JwksFetchError as exc:
                    log.warning("key set for issuer %s not refreshed from %s: %s", issuer.iss, issuer.jwks_url, exc)
            if remote.fetched_at is None:
                raise AuthError("jwks-unavailable", "the issuer's key set could not be fetched")
            found = remote.keys.get(kid)
        if found is None:
            raise AuthError("unknown-kid", "kid is not in the issuer's key set")
        return found

    def _fresh(self, remote: _RemoteKeys) -> bool:
        return remote.fetched_at is not None and time.monotonic() - remote.fetched_at < self._jwks_ttl

    async def _fetch_jwks(self, url: str) -> dict[str, _Key]:
        try:
            body = await asyncio.wait_for(self._download(url), timeout=self._jwks_timeout)
        except asyncio.TimeoutError:
            raise _JwksFetchError(f"no complete answer within {self._jwks_timeout:g} s") from None
        except httpx.HTTPError as exc:
            raise _JwksFetchError(f"HTTP error {type(exc).__name__}") from None
        try:
            doc = json.loads(body)
        except (ValueError, RecursionError):
            raise _JwksFetchError("the answer is not JSON") from None
        keys = doc.get("keys") if isinstance(doc, dict) else None
        if not isinstance(keys, list):
            raise _JwksFetchError("the answer is not a key set (no 'keys' list)")
        out: dict[str, _Key] = {}
        for jwk_dict in keys:
            if not isinstance(jwk_dict, dict):
                continue
            try:
                parsed = _parse_jwk(jwk_dict)
            except ValueError as exc:
                log.info("key set %s: key skipped: %s", url, exc)
                continue
            out.setdefault(parsed.kid, parsed)
        log.info("key set %s fetched: %d usable key(s)", url, len(out))
        return out

    async def _download(self, url: str) -> bytes:
        limit = self._jwks_max_bytes
        accept = {"Accept": "application/jwk-set+json, application/json"}
        async with httpx.AsyncClient(timeout=self._jwks_timeout, follow_redirects=False) as client:  # noqa: SIM117 - Python 3.9 syntax
            async with client.stream("GET", url, headers=accept) as resp:
                if resp.status_code != 200:
                    raise _JwksFetchError(f"HTTP status {resp.status_code}")
                declared = resp.headers.get("content-length")
                if declared is not None and declared.isdigit() and int(declared) > limit:
                    raise _JwksFetchError(f"larger than {limit} bytes")
                chunks: list[bytes] = []
                size = 0
                async for chunk in resp.aiter_bytes():
                    size += len(chunk)
                    if size > limit:
                        raise _JwksFetchError(f"larger than {limit} bytes")
                    chunks.append(chunk)
        return b"".join(chunks)


class _JwksFetchError(Exception):
    pass


def _bearer_token(authorization: str | None) -> str:
    if authorization is None or not authorization.strip():
        raise AuthError("missing-token", "an Authorization: Bearer header is required")
    if len(authorization) > MAX_AUTHORIZATION_CHARS:
        raise AuthError("malformed", "the Authorization header is too long")
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        raise AuthError("missing-token", "the Authorization header is not a Bearer token")
    token = token.strip()
    if not _COMPACT_JWS.fullmatch(token):
        raise AuthError("malformed", "the bearer token is not a compact JWS (three base64url parts)")
    return token


def _number(claims: Mapping[str, object], name: str) -> float:
    value = claims.get(name)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise AuthError("malformed", f"{name} must be a number of seconds since the epoch")
    return float(value)
