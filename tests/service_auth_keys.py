"""Test helpers for the service's bearer-token checks (``mdtflag.service.auth``): keys, tokens, trust files.

Typical use in an HTTP test of the service::

    from service_auth_keys import make_trust_setup, failing_authorizations

    setup = make_trust_setup(tmp_path)            # ES384 key, trust file with the key set inline, replay dir
    # start the server with --trust setup.trust_file (replay state under setup.replay_dir)
    audience = f"{public_url}/cds-services/mdtflag-patient-view"
    headers = {"Authorization": setup.bearer(audience)}      # a fresh valid token (new jti) per call
    for case in failing_authorizations(setup, audience):     # every way a token must be refused
        ...  # send case.authorization (None = no header) and expect 401; case.reason is the
             # AuthError.reason that mdtflag.service.auth gives for it
    # replay: send the same setup.bearer(audience) value twice; the second is "replayed-jti"

Other pieces: :class:`SigningKey` (``SigningKey.generate("ES384" | "RS384")``, ``.public_jwk()``),
:func:`mint` (any claims and header fields), :func:`mint_raw` (an exact header, unchecked),
:func:`mint_unsigned` (``alg: none``),
:func:`mint_hs256` (HMAC with any secret, e.g. the public key's PEM), :func:`write_trust_file`,
:func:`write_jwks`, and :class:`JwksServer` -- a real HTTP server on 127.0.0.1 in a subprocess
serving key-set files from a directory, counting the requests for each.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import sys
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import jwt
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from service_support import ChildServer
from typing_extensions import Self

PrivateKey = Union[ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey]

DEFAULT_ISSUER = "https://ehr.test.example"
OTHER_ISSUER = "https://untrusted.test.example"


@dataclass(frozen=True)
class SigningKey:
    """A private signing key with its ``kid`` and algorithm (ES384 or RS384)."""

    alg: str
    kid: str
    private_key: PrivateKey

    @classmethod
    def generate(cls, alg: str = "ES384", kid: str | None = None, rsa_bits: int = 2048) -> SigningKey:
        private_key: PrivateKey
        if alg.startswith("ES"):
            curve: ec.EllipticCurve = {"ES256": ec.SECP256R1(), "ES384": ec.SECP384R1(), "ES512": ec.SECP521R1()}[alg]
            private_key = ec.generate_private_key(curve)
        else:
            private_key = rsa.generate_private_key(public_exponent=65537, key_size=rsa_bits)
        return cls(alg=alg, kid=kid or f"{alg.lower()}-{uuid.uuid4().hex[:12]}", private_key=private_key)

    def public_jwk(self, *, with_alg: bool = True) -> dict[str, Any]:
        """The public key as a JWK with ``kid``, ``use: sig`` and (by default) ``alg``."""
        public = self.private_key.public_key()
        if isinstance(public, ec.EllipticCurvePublicKey):
            jwk_dict = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(public))
        else:
            jwk_dict = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(public))
        out: dict[str, Any] = {**jwk_dict, "kid": self.kid, "use": "sig"}
        if with_alg:
            out["alg"] = self.alg
        return out

    def public_pem(self) -> bytes:
        return self.private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


def jwks(*keys: SigningKey) -> dict[str, Any]:
    """A key set holding the public halves of ``keys``."""
    return {"keys": [k.public_jwk() for k in keys]}


def claims_for(
    audience: str | list[str],
    *,
    iss: str = DEFAULT_ISSUER,
    now: float | None = None,
    lifetime_s: float = 300,
    iat_offset_s: float = 0,
    jti: str | None = None,
    extra: Mapping[str, Any] | None = None,
    omit: Sequence[str] = (),
) -> dict[str, Any]:
    """Claims of a well-formed CDS Hooks client token; ``omit`` drops claims, ``extra`` adds or overrides."""
    t = int(time.time() if now is None else now)
    claims: dict[str, Any] = {
        "iss": iss,
        "aud": audience,
        "iat": t + int(iat_offset_s),
        "exp": t + int(iat_offset_s) + int(lifetime_s),
        "jti": jti or uuid.uuid4().hex,
    }
    claims.update(extra or {})
    for name in omit:
        claims.pop(name, None)
    return claims


def mint(
    key: SigningKey,
    claims: Mapping[str, Any],
    *,
    alg: str | None = None,
    headers: Mapping[str, Any] | None = None,
    kid: str | None = None,
) -> str:
    """Sign ``claims`` with ``key`` (header: ``alg``, ``kid``, ``typ: JWT`` plus ``headers``)."""
    header: dict[str, Any] = {"kid": kid if kid is not None else key.kid}
    header.update(headers or {})
    return jwt.encode(dict(claims), key.private_key, algorithm=alg or key.alg, headers=header)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _segments(header: Mapping[str, Any], claims: Mapping[str, Any]) -> str:
    return _b64(json.dumps(dict(header)).encode()) + "." + _b64(json.dumps(dict(claims)).encode())


def mint_raw(key: SigningKey, header: Mapping[str, Any], claims: Mapping[str, Any]) -> str:
    """Sign exactly ``header`` and ``claims`` with ``key`` (no checks: for tokens PyJWT would refuse to build)."""
    signing_input = _segments(header, claims)
    algorithm = jwt.algorithms.get_default_algorithms()[key.alg]
    signature = algorithm.sign(signing_input.encode("ascii"), key.private_key)
    return signing_input + "." + _b64(signature)


def mint_unsigned(claims: Mapping[str, Any], kid: str = "any") -> str:
    """An ``alg: none`` token (empty signature)."""
    return _segments({"alg": "none", "typ": "JWT", "kid": kid}, claims) + "."


def mint_hs256(claims: Mapping[str, Any], secret: bytes, kid: str = "any") -> str:
    """An HS256 token with ``secret`` as the HMAC key (the classic attack uses the public key's PEM)."""
    signing_input = _segments({"alg": "HS256", "typ": "JWT", "kid": kid}, claims)
    mac = hmac.new(secret, signing_input.encode("ascii"), hashlib.sha256).digest()
    return signing_input + "." + _b64(mac)


def write_trust_file(path: Path, issuers: Sequence[Mapping[str, Any]]) -> Path:
    """Write a trust file (YAML, or JSON when ``path`` ends in .json) listing ``issuers``."""
    doc = {"issuers": [dict(i) for i in issuers]}
    if path.suffix == ".json":
        path.write_text(json.dumps(doc, indent=2), encoding="utf-8")
    else:
        path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


def write_jwks(path: Path, document: Mapping[str, Any]) -> None:
    """Replace a key-set file atomically (a server reading it never sees half a file)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(dict(document)), encoding="utf-8")
    tmp.replace(path)


@dataclass
class TrustSetup:
    """A trusted issuer with its signing key, the trust file naming it and a replay directory."""

    trust_file: Path
    replay_dir: Path
    issuer: str
    key: SigningKey
    other_keys: list[SigningKey] = field(default_factory=list)

    def token(self, audience: str | list[str], **claim_options: Any) -> str:
        """A valid token for ``audience`` (fresh ``jti``); ``claim_options`` go to :func:`claims_for`."""
        claim_options.setdefault("iss", self.issuer)
        return mint(self.key, claims_for(audience, **claim_options))

    def bearer(self, audience: str | list[str], **claim_options: Any) -> str:
        """``Authorization`` header value with a valid token for ``audience``."""
        return "Bearer " + self.token(audience, **claim_options)


def make_trust_setup(directory: Path, *, alg: str = "ES384", issuer: str = DEFAULT_ISSUER) -> TrustSetup:
    """A key for ``alg``, a YAML trust file with its key set inline, and ``directory/replay``."""
    directory.mkdir(parents=True, exist_ok=True)
    key = SigningKey.generate(alg)
    trust_file = write_trust_file(directory / "trust.yaml", [{"iss": issuer, "jwks": jwks(key)}])
    return TrustSetup(trust_file=trust_file, replay_dir=directory / "replay", issuer=issuer, key=key)


@dataclass(frozen=True)
class FailingCase:
    """A credential that must be refused: ``authorization`` (None = no header) and the expected reason."""

    name: str
    authorization: str | None
    reason: str


def failing_authorizations(setup: TrustSetup, audience: str) -> list[FailingCase]:
    """One refused credential per check (each with its own fresh ``jti``), for ``audience``."""
    good = setup.key
    impostor = SigningKey.generate(good.alg, kid=good.kid)  # same kid, different key
    stranger = SigningKey.generate("ES384")

    def c(**kw: Any) -> dict[str, Any]:
        kw.setdefault("iss", setup.issuer)
        return claims_for(audience, **kw)

    cases = [
        FailingCase("no-token", None, "missing-token"),
        FailingCase("not-bearer", "Basic dXNlcjpwYXNz", "missing-token"),
        FailingCase("garbage", "Bearer not-a-jwt", "malformed"),
        FailingCase("alg-none", "Bearer " + mint_unsigned(c(), kid=good.kid), "alg-not-allowed"),
        FailingCase(
            "hs256-public-key", "Bearer " + mint_hs256(c(), good.public_pem(), kid=good.kid), "alg-not-allowed"
        ),
        FailingCase("wrong-key", "Bearer " + mint(impostor, c()), "bad-signature"),
        FailingCase("unknown-kid", "Bearer " + mint(stranger, c()), "unknown-kid"),
        FailingCase("wrong-audience", "Bearer " + mint(good, c(extra={"aud": audience + "-other"})), "wrong-audience"),
        FailingCase("expired", "Bearer " + mint(good, c(iat_offset_s=-3600, lifetime_s=300)), "expired"),
        FailingCase("iat-in-future", "Bearer " + mint(good, c(iat_offset_s=3600)), "iat-in-future"),
        FailingCase("untrusted-issuer", "Bearer " + mint(good, c(iss=OTHER_ISSUER)), "untrusted-issuer"),
        FailingCase(
            "jku-elsewhere",
            "Bearer " + mint(good, c(), headers={"jku": "http://127.0.0.1:9/attacker-jwks.json"}),
            "jku-not-allowed",
        ),
        FailingCase(
            "embedded-jwk",
            "Bearer " + mint(stranger, c(), headers={"jwk": stranger.public_jwk()}, kid=good.kid),
            "embedded-key-not-allowed",
        ),
        FailingCase("no-jti", "Bearer " + mint(good, c(omit=["jti"])), "missing-claim"),
        FailingCase("no-exp", "Bearer " + mint(good, c(omit=["exp"])), "missing-claim"),
        FailingCase("no-iat", "Bearer " + mint(good, c(omit=["iat"])), "missing-claim"),
    ]
    return cases


_SERVING = re.compile(r"port (\d+)")


class JwksServer(ChildServer):
    """``python -m http.server`` on 127.0.0.1 (a subprocess) serving ``directory``; counts GETs per path.

    Use as a context manager; ``url(name)`` is the URL of ``directory/name``, ``publish(name, doc)``
    replaces that file atomically, ``requests(name)`` counts the GETs served for it so far.
    """

    def __init__(self, directory: Path, start_timeout_s: float = 15.0) -> None:
        super().__init__(start_timeout_s)
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self._log_path = directory.parent / f"{directory.name}-http.log"

    def __enter__(self) -> Self:
        with self._log_path.open("w", encoding="utf-8") as log:
            self._start(
                [
                    sys.executable,
                    "-u",
                    "-m",
                    "http.server",
                    "0",
                    "--bind",
                    "127.0.0.1",
                    "--directory",
                    str(self.directory),
                ],
                log,
                lambda line: int(m.group(1)) if (m := _SERVING.search(line)) else None,
                "http.server",
            )
        return self

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"

    def publish(self, name: str, document: Mapping[str, Any]) -> None:
        write_jwks(self.directory / name, document)

    def requests(self, name: str) -> int:
        text = self._log_path.read_text(encoding="utf-8") if self._log_path.exists() else ""
        return sum(1 for line in text.splitlines() if f'"GET /{name} ' in line)
