"""Bearer-token checks of the HTTP service: every refusal reason, both algorithms, key sets, replay, trust files."""
from __future__ import annotations

import asyncio
import base64
import json
import logging
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from service_auth_keys import (
    DEFAULT_ISSUER,
    JwksServer,
    SigningKey,
    TrustSetup,
    claims_for,
    failing_authorizations,
    jwks,
    make_trust_setup,
    mint,
    mint_raw,
    write_trust_file,
)
from service_fetch_server import FhirServer

from mdtflag.service.auth import (
    Authenticator,
    AuthError,
    ReplayStore,
    ReplayStoreError,
    TrustFileError,
    load_trust_file,
)

AUD = "https://cds.test.example/cds-services/mdtflag-patient-view"
T0 = 1_800_000_000.0


def verify(auth: Authenticator, authorization: str | None, audience: str = AUD) -> dict[str, object]:
    return asyncio.run(auth.verify(authorization, audience))


def reason_of(auth: Authenticator, authorization: str | None, audience: str = AUD) -> str:
    with pytest.raises(AuthError) as caught:
        verify(auth, authorization, audience)
    return caught.value.reason


def authenticator(setup: TrustSetup, **options: Any) -> Authenticator:
    return Authenticator.from_trust_file(setup.trust_file, setup.replay_dir, **options)


@pytest.mark.parametrize("alg", ["ES384", "RS384"])
def test_valid_token_is_accepted_and_its_claims_returned(tmp_path: Path, alg: str) -> None:
    setup = make_trust_setup(tmp_path, alg=alg)
    auth = authenticator(setup)
    token = setup.token(AUD, jti="jti-" + alg, extra={"tenant": "region-a"})
    claims = verify(auth, "Bearer " + token)
    assert claims["iss"] == DEFAULT_ISSUER
    assert claims["aud"] == AUD
    assert claims["jti"] == "jti-" + alg
    assert claims["tenant"] == "region-a"


def test_scheme_is_case_insensitive_and_aud_may_be_a_list(tmp_path: Path) -> None:
    setup = make_trust_setup(tmp_path)
    auth = authenticator(setup)
    assert verify(auth, "bearer " + setup.token(AUD))["iss"] == DEFAULT_ISSUER
    assert verify(auth, setup.bearer(["https://other.example/x", AUD]))["iss"] == DEFAULT_ISSUER
    assert reason_of(auth, setup.bearer(["https://other.example/x"])) == "wrong-audience"


with tempfile.TemporaryDirectory() as _tmp:
    _CASE_NAMES = [case.name for case in failing_authorizations(make_trust_setup(Path(_tmp)), AUD)]


@pytest.mark.parametrize("name", _CASE_NAMES)
def test_every_failing_credential_is_refused_with_its_reason(tmp_path: Path, name: str) -> None:
    setup = make_trust_setup(tmp_path)
    auth = authenticator(setup)
    case = next(c for c in failing_authorizations(setup, AUD) if c.name == name)
    with pytest.raises(AuthError) as caught:
        verify(auth, case.authorization)
    assert caught.value.reason == case.reason
    if case.authorization is not None:
        token = case.authorization.partition(" ")[2]
        assert token not in str(caught.value)
    # nothing was recorded for a refused token
    assert ReplayStore(setup.replay_dir).count() == 0


def test_the_failing_cases_cover_the_documented_attacks(tmp_path: Path) -> None:
    reasons = {c.reason for c in failing_authorizations(make_trust_setup(tmp_path), AUD)}
    assert {
        "missing-token", "alg-not-allowed", "bad-signature", "wrong-audience", "expired", "iat-in-future",
        "untrusted-issuer", "jku-not-allowed", "missing-claim", "unknown-kid", "embedded-key-not-allowed",
    } <= reasons


@pytest.mark.parametrize("value", [None, "", "   ", "Token abc", "Basic dXNlcjpwYXNz"])
def test_absent_or_non_bearer_credentials_are_missing_token(tmp_path: Path, value: str | None) -> None:
    auth = authenticator(make_trust_setup(tmp_path))
    assert reason_of(auth, value) == "missing-token"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


_NESTED = b'{"a":' * 1500 + b"1" + b"}" * 1500


@pytest.mark.parametrize("value", [
    "Bearer " + _b64(b'{"alg":"ES384","kid":"k"}') + "." + _b64(_NESTED) + ".AAAA",
    "Bearer " + _b64(_NESTED) + "." + _b64(b"{}") + ".AAAA",
    "Bearer " + _b64(b'{"alg":"ES384","kid":"k"}') + "." + _b64(b"[1, 2]") + ".AAAA",
    "Bearer " + _b64(b"not json") + "." + _b64(b"{}") + ".AAAA",
    "Bearer", "Bearer ", "Bearer a b", "Bearer " + "x" * 20_000, "Bearer a.b.c", "Bearer ..."])
def test_malformed_bearer_values(tmp_path: Path, value: str) -> None:
    auth = authenticator(make_trust_setup(tmp_path))
    assert reason_of(auth, value) == "malformed"


@pytest.mark.parametrize("alg", ["ES256", "ES512", "RS256", "RS512", "PS384"])
def test_other_asymmetric_algorithms_are_refused(tmp_path: Path, alg: str) -> None:
    setup = make_trust_setup(tmp_path)
    auth = authenticator(setup)
    key = SigningKey.generate(alg, kid=setup.key.kid) if alg.startswith("ES") else SigningKey.generate("RS384", kid=setup.key.kid)
    token = mint(key, claims_for(AUD), alg=alg)
    assert reason_of(auth, "Bearer " + token) == "alg-not-allowed"


def test_key_of_the_wrong_family_for_the_algorithm(tmp_path: Path) -> None:
    rsa_key = SigningKey.generate("RS384", kid="shared")
    ec_key = SigningKey.generate("ES384", kid="shared")
    trust = write_trust_file(tmp_path / "trust.yaml", [{"iss": DEFAULT_ISSUER, "jwks": jwks(rsa_key)}])
    auth = Authenticator.from_trust_file(trust, tmp_path / "replay")
    assert reason_of(auth, "Bearer " + mint(ec_key, claims_for(AUD))) == "key-mismatch"
    assert verify(auth, "Bearer " + mint(rsa_key, claims_for(AUD)))["iss"] == DEFAULT_ISSUER


def test_clock_skew_boundaries(tmp_path: Path) -> None:
    setup = make_trust_setup(tmp_path)
    auth = authenticator(setup, clock=lambda: T0, clock_skew_s=60)
    # exp passed 59 s ago: inside the skew
    assert verify(auth, setup.bearer(AUD, now=T0 - 359, lifetime_s=300))
    # exp passed exactly 60 s ago: expired
    assert reason_of(auth, setup.bearer(AUD, now=T0 - 360, lifetime_s=300)) == "expired"
    # iat 60 s ahead: tolerated; 61 s ahead: refused
    assert verify(auth, setup.bearer(AUD, now=T0 + 60))
    assert reason_of(auth, setup.bearer(AUD, now=T0 + 61)) == "iat-in-future"
    # nbf ahead beyond the skew
    assert reason_of(auth, setup.bearer(AUD, now=T0, extra={"nbf": T0 + 120})) == "not-yet-valid"


def test_lifetime_is_bounded(tmp_path: Path) -> None:
    setup = make_trust_setup(tmp_path)
    auth = authenticator(setup, clock=lambda: T0, max_lifetime_s=3600)
    assert verify(auth, setup.bearer(AUD, now=T0, lifetime_s=3600))
    assert reason_of(auth, setup.bearer(AUD, now=T0, lifetime_s=3601)) == "lifetime-too-long"


@pytest.mark.parametrize(
    "extra",
    [{"exp": "soon"}, {"iat": True}, {"exp": float("inf")}, {"jti": 17}, {"jti": ""}, {"aud": 5}, {"jti": "j" * 513}],
)
def test_claims_of_the_wrong_type_are_malformed(tmp_path: Path, extra: dict[str, Any]) -> None:
    setup = make_trust_setup(tmp_path)
    auth = authenticator(setup)
    assert reason_of(auth, setup.bearer(AUD, extra=extra)) == "malformed"


def test_typ_other_than_jwt_and_crit_headers_are_refused(tmp_path: Path) -> None:
    setup = make_trust_setup(tmp_path)
    auth = authenticator(setup)
    assert reason_of(auth, "Bearer " + mint(setup.key, claims_for(AUD), headers={"typ": "at+jwt"})) == "malformed"
    assert reason_of(auth, "Bearer " + mint(setup.key, claims_for(AUD), headers={"crit": ["exp"]})) == "malformed"
    assert reason_of(auth, "Bearer " + mint(setup.key, claims_for(AUD), kid="")) == "missing-kid"


def test_replayed_jti_is_refused_in_the_same_process(tmp_path: Path) -> None:
    setup = make_trust_setup(tmp_path)
    auth = authenticator(setup)
    value = setup.bearer(AUD)
    assert verify(auth, value)
    assert reason_of(auth, value) == "replayed-jti"
    # the same jti from another issuer is a different token
    other = SigningKey.generate("ES384")
    trust = write_trust_file(
        tmp_path / "two.yaml",
        [{"iss": DEFAULT_ISSUER, "jwks": jwks(setup.key)}, {"iss": "https://second.example", "jwks": jwks(other)}],
    )
    auth2 = Authenticator.from_trust_file(trust, tmp_path / "replay2")
    assert verify(auth2, "Bearer " + mint(setup.key, claims_for(AUD, jti="same")))
    assert verify(auth2, "Bearer " + mint(other, claims_for(AUD, iss="https://second.example", jti="same")))


_VERIFY_SCRIPT = """
import asyncio, sys
from pathlib import Path
from mdtflag.service.auth import AuthError, Authenticator
auth = Authenticator.from_trust_file(Path(sys.argv[1]), Path(sys.argv[2]))
token = sys.stdin.read()
try:
    asyncio.run(auth.verify(token, sys.argv[3]))
    print("ok")
except AuthError as exc:
    print(exc.reason)
"""


def _verify_in_subprocesses(setup: TrustSetup, authorization: str, count: int) -> list[str]:
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _VERIFY_SCRIPT, str(setup.trust_file), str(setup.replay_dir), AUD],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(count)
    ]
    outputs = []
    for proc in procs:
        out, err = proc.communicate(authorization, timeout=120)
        assert proc.returncode == 0, err
        outputs.append(out.strip())
    return outputs


def test_replayed_jti_is_refused_across_processes(tmp_path: Path) -> None:
    setup = make_trust_setup(tmp_path)
    auth = authenticator(setup)
    first_here = setup.bearer(AUD)
    assert verify(auth, first_here)
    assert _verify_in_subprocesses(setup, first_here, 1) == ["replayed-jti"]
    first_there = setup.bearer(AUD)
    assert _verify_in_subprocesses(setup, first_there, 1) == ["ok"]
    assert reason_of(auth, first_there) == "replayed-jti"


def test_one_token_sent_to_many_processes_at_once_is_accepted_once(tmp_path: Path) -> None:
    setup = make_trust_setup(tmp_path)
    authenticator(setup)  # creates the database before the race
    outputs = _verify_in_subprocesses(setup, setup.bearer(AUD), 4)
    assert sorted(outputs) == ["ok", "replayed-jti", "replayed-jti", "replayed-jti"]


def test_replay_entries_expire_with_the_token(tmp_path: Path) -> None:
    now = [T0]
    setup = make_trust_setup(tmp_path)
    auth = authenticator(setup, clock=lambda: now[0], clock_skew_s=60)
    value = setup.bearer(AUD, now=T0, lifetime_s=300, jti="reused")
    assert verify(auth, value)
    now[0] = T0 + 359
    assert reason_of(auth, value) == "replayed-jti"
    now[0] = T0 + 360  # the token itself has expired, so a replay is refused as expired ...
    assert reason_of(auth, value) == "expired"
    # ... and a new token reusing the jti after that is accepted, its entry replacing the old one
    assert verify(auth, setup.bearer(AUD, now=now[0], lifetime_s=300, jti="reused"))


def test_an_unwritable_replay_store_is_a_server_fault_not_an_auth_error(tmp_path: Path) -> None:
    setup = make_trust_setup(tmp_path)
    auth = Authenticator(load_trust_file(setup.trust_file), ReplayStore(setup.replay_dir, busy_timeout_ms=50))
    blocker = sqlite3.connect(setup.replay_dir / ReplayStore.FILE_NAME, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")  # another process holds the write lock past the busy timeout
    try:
        with pytest.raises(ReplayStoreError):
            verify(auth, setup.bearer(AUD))
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert verify(auth, setup.bearer(AUD))


def test_a_replay_directory_that_cannot_be_created_is_reported(tmp_path: Path) -> None:
    setup = make_trust_setup(tmp_path)
    (tmp_path / "a-file").write_text("not a directory", encoding="utf-8")
    with pytest.raises(ReplayStoreError, match="cannot be opened"):
        Authenticator.from_trust_file(setup.trust_file, tmp_path / "a-file" / "replay")


def test_the_replay_store_keeps_no_token_and_no_plain_jti(tmp_path: Path) -> None:
    setup = make_trust_setup(tmp_path)
    auth = authenticator(setup)
    value = setup.bearer(AUD, jti="plain-jti-marker-4711")
    verify(auth, value)
    stored = b"".join(p.read_bytes() for p in setup.replay_dir.iterdir() if p.is_file())
    token = value.split()[1].encode()
    assert b"plain-jti-marker-4711" not in stored
    assert token not in stored and token.split(b".")[2][:40] not in stored


def test_replay_store_matches_a_model(tmp_path: Path) -> None:
    now = [1000.0]
    store = ReplayStore(tmp_path / "replay", clock=lambda: now[0], prune_every_s=7)
    other_process_view = ReplayStore(tmp_path / "replay", clock=lambda: now[0])

    @settings(max_examples=200, deadline=None)
    @given(ops=st.lists(st.tuples(st.integers(0, 3), st.integers(1, 50), st.integers(0, 30), st.booleans()), max_size=60))
    def check(ops: list[tuple[int, int, int, bool]]) -> None:
        issuer = uuid.uuid4().hex  # a fresh namespace per example; the database is shared
        model: dict[int, float] = {}
        for key, lifetime, advance, via_other in ops:
            now[0] += advance
            expected = key not in model or model[key] <= now[0]
            used = other_process_view if via_other else store
            assert used.first_use(issuer, f"jti-{key}", now[0] + lifetime) is expected
            if expected:
                model[key] = now[0] + lifetime

    check()
    # pruning keeps the table to what has not yet expired
    now[0] += 1000
    store.first_use("last", "one", now[0] + 10)
    assert store.count() == 1
    store.close()
    other_process_view.close()


_settings = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@_settings
@given(value=st.one_of(st.none(), st.text(max_size=300), st.text(max_size=300).map(lambda s: "Bearer " + s)))
def test_any_authorization_value_ends_in_claims_or_auth_error(tmp_path: Path, value: str | None) -> None:
    auth = authenticator(make_trust_setup(tmp_path / "fuzz"))
    with pytest.raises(AuthError):
        verify(auth, value)


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)


def test_signed_tokens_with_arbitrary_claims(tmp_path: Path) -> None:
    setup = make_trust_setup(tmp_path)
    auth = authenticator(setup)

    @settings(max_examples=200, deadline=None)
    @given(
        mutations=st.dictionaries(
            st.sampled_from(["iss", "aud", "exp", "iat", "nbf", "jti", "sub"]), _json_values, max_size=3
        ),
        header=st.dictionaries(st.sampled_from(["typ", "jku", "cty", "kid"]), _json_values, max_size=2),
    )
    def check(mutations: dict[str, Any], header: dict[str, Any]) -> None:
        claims = claims_for(AUD, iss=setup.issuer)
        claims.update(mutations)
        token = mint_raw(setup.key, {"alg": setup.key.alg, "kid": setup.key.kid, "typ": "JWT", **header}, claims)
        try:
            got = verify(auth, "Bearer " + token)
        except AuthError as exc:
            assert exc.reason
            return
        # accepted: then every documented check held
        assert got["iss"] == setup.issuer
        aud = got["aud"]
        assert aud == AUD or (isinstance(aud, list) and AUD in aud)
        assert isinstance(got["jti"], str) and got["jti"]
        now = time.time()
        assert isinstance(got["exp"], (int, float)) and got["exp"] + 60 > now
        assert isinstance(got["iat"], (int, float)) and got["iat"] <= now + 60

    check()


# --- key sets fetched over HTTP --------------------------------------------------------------


def remote_setup(tmp_path: Path, server: JwksServer, key: SigningKey, name: str = "jwks.json") -> Path:
    server.publish(name, jwks(key))
    return write_trust_file(tmp_path / "trust.yaml", [{"iss": DEFAULT_ISSUER, "jwks_url": server.url(name)}])


def test_key_set_fetched_from_jwks_url_and_cached(tmp_path: Path) -> None:
    key = SigningKey.generate("RS384")
    with JwksServer(tmp_path / "www") as server:
        trust = remote_setup(tmp_path, server, key)
        auth = Authenticator.from_trust_file(trust, tmp_path / "replay")
        for _ in range(3):
            assert verify(auth, "Bearer " + mint(key, claims_for(AUD)))
        assert server.requests("jwks.json") == 1
        # a jku equal to the trusted URL is fine
        assert verify(auth, "Bearer " + mint(key, claims_for(AUD), headers={"jku": server.url("jwks.json")}))
        other_url = server.url("other.json")
        assert reason_of(auth, "Bearer " + mint(key, claims_for(AUD), headers={"jku": other_url})) == "jku-not-allowed"
        assert server.requests("other.json") == 0


def test_unknown_kid_refreshes_the_key_set(tmp_path: Path) -> None:
    old, new = SigningKey.generate("ES384"), SigningKey.generate("ES384")
    with JwksServer(tmp_path / "www") as server:
        trust = remote_setup(tmp_path, server, old)
        auth = Authenticator.from_trust_file(trust, tmp_path / "replay", jwks_min_refresh_s=0)
        assert verify(auth, "Bearer " + mint(old, claims_for(AUD)))
        server.publish("jwks.json", jwks(old, new))  # the issuer rotates in a new key
        assert verify(auth, "Bearer " + mint(new, claims_for(AUD)))
        assert server.requests("jwks.json") == 2
        stranger = SigningKey.generate("ES384")
        assert reason_of(auth, "Bearer " + mint(stranger, claims_for(AUD))) == "unknown-kid"
        assert server.requests("jwks.json") == 3


def test_refresh_on_unknown_kid_is_rate_limited(tmp_path: Path) -> None:
    key = SigningKey.generate("ES384")
    with JwksServer(tmp_path / "www") as server:
        trust = remote_setup(tmp_path, server, key)
        auth = Authenticator.from_trust_file(trust, tmp_path / "replay", jwks_min_refresh_s=3600)
        assert verify(auth, "Bearer " + mint(key, claims_for(AUD)))
        for _ in range(5):
            stranger = SigningKey.generate("ES384")
            assert reason_of(auth, "Bearer " + mint(stranger, claims_for(AUD))) == "unknown-kid"
        assert server.requests("jwks.json") == 1


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
def test_unusable_keys_in_a_fetched_set_are_skipped(tmp_path: Path) -> None:
    good = SigningKey.generate("ES384")
    weak = SigningKey.generate("RS384", rsa_bits=1024)
    p256 = SigningKey.generate("ES256")
    with JwksServer(tmp_path / "www") as server:
        doc = {"keys": [weak.public_jwk(), p256.public_jwk(with_alg=False), "junk", good.public_jwk()]}
        server.publish("jwks.json", doc)
        trust = write_trust_file(tmp_path / "trust.yaml", [{"iss": DEFAULT_ISSUER, "jwks_url": server.url("jwks.json")}])
        auth = Authenticator.from_trust_file(trust, tmp_path / "replay", jwks_min_refresh_s=3600)
        assert verify(auth, "Bearer " + mint(good, claims_for(AUD)))
        assert reason_of(auth, "Bearer " + mint(weak, claims_for(AUD), alg="RS384")) == "unknown-kid"


@pytest.mark.parametrize("problem", ["absent", "not-json", "no-keys", "oversize"])
def test_unavailable_key_set(tmp_path: Path, problem: str) -> None:
    key = SigningKey.generate("ES384")
    with JwksServer(tmp_path / "www") as server:
        name = "jwks.json"
        if problem == "not-json":
            (server.directory / name).write_text("<html>sign in</html>", encoding="utf-8")
        elif problem == "no-keys":
            server.publish(name, {"issuer": "x"})
        elif problem == "oversize":
            server.publish(name, {"keys": [key.public_jwk()], "pad": "x" * 5000})
        trust = write_trust_file(tmp_path / "trust.yaml", [{"iss": DEFAULT_ISSUER, "jwks_url": server.url(name)}])
        auth = Authenticator.from_trust_file(trust, tmp_path / "replay", jwks_max_bytes=4096)
        assert reason_of(auth, "Bearer " + mint(key, claims_for(AUD))) == "jwks-unavailable"


def test_slow_key_set_times_out(tmp_path: Path) -> None:
    key = SigningKey.generate("ES384")
    with FhirServer(slow_s=30) as slow:
        trust = write_trust_file(tmp_path / "trust.yaml", [{"iss": DEFAULT_ISSUER, "jwks_url": slow.url("slow")}])
        auth = Authenticator.from_trust_file(trust, tmp_path / "replay", jwks_timeout_s=0.5)
        assert reason_of(auth, "Bearer " + mint(key, claims_for(AUD))) == "jwks-unavailable"


def test_unreachable_key_set_keeps_the_cached_keys(tmp_path: Path) -> None:
    key = SigningKey.generate("ES384")
    with JwksServer(tmp_path / "www") as server:
        trust = remote_setup(tmp_path, server, key)
        auth = Authenticator.from_trust_file(trust, tmp_path / "replay", jwks_ttl_s=0, jwks_min_refresh_s=0)
        assert verify(auth, "Bearer " + mint(key, claims_for(AUD)))
    # server gone, cache stale: the refresh fails and the keys fetched before still serve
    assert verify(auth, "Bearer " + mint(key, claims_for(AUD)))


def test_no_token_or_key_material_reaches_the_logs(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    key = SigningKey.generate("ES384")
    with JwksServer(tmp_path / "www") as server:
        trust = remote_setup(tmp_path, server, key)
        auth = Authenticator.from_trust_file(trust, tmp_path / "replay", jwks_min_refresh_s=0)
        tokens = [mint(key, claims_for(AUD)) for _ in range(2)]
        verify(auth, "Bearer " + tokens[0])
        reason_of(auth, "Bearer " + tokens[0])
        stranger = SigningKey.generate("ES384")
        tokens.append(mint(stranger, claims_for(AUD)))
        reason_of(auth, "Bearer " + tokens[2])
    assert caplog.records, "the key set fetch is logged"
    for token in tokens:
        for part in token.split("."):
            assert part not in caplog.text


# --- trust file -----------------------------------------------------------------------------

_EC = SigningKey.generate("ES384", kid="ec-1")
_GOOD_ENTRY = {"iss": DEFAULT_ISSUER, "jwks": jwks(_EC)}


def _write(tmp_path: Path, doc: object, name: str = "trust.yaml") -> Path:
    path = tmp_path / name
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("doc", "where", "message"),
    [
        ("- a\n- b\n", "", "must be a mapping"),
        ({"issuers": []}, "issuers", "non-empty list"),
        ({"issuers": [_GOOD_ENTRY], "clock": 5}, "", "unknown top-level field(s) clock"),
        ({"issuers": ["https://ehr.example"]}, "issuers[0]", "must be a mapping"),
        ({"issuers": [{"jwks": jwks(_EC)}]}, "issuers[0].iss", "non-empty string"),
        ({"issuers": [_GOOD_ENTRY, _GOOD_ENTRY]}, "issuers[1].iss", "listed twice"),
        ({"issuers": [{"iss": "a"}]}, "issuers[0]", "exactly one of 'jwks_url' and 'jwks'"),
        ({"issuers": [{**_GOOD_ENTRY, "jwks_url": "https://x.example/j"}]}, "issuers[0]", "exactly one"),
        ({"issuers": [{"iss": "a", "jwks_uri": "https://x.example/j"}]}, "issuers[0]", "unknown field(s) jwks_uri"),
        ({"issuers": [{"iss": "a", "jwks_url": "http://ehr.example/jwks"}]}, "issuers[0].jwks_url", "must use https"),
        ({"issuers": [{"iss": "a", "jwks_url": "jwks.json"}]}, "issuers[0].jwks_url", "absolute https URL"),
        ({"issuers": [{"iss": "a", "jwks_url": "https://u:p@x.example/j"}]}, "issuers[0].jwks_url", "credentials"),
        ({"issuers": [{"iss": "a", "jwks_url": 7}]}, "issuers[0].jwks_url", "must be a string"),
        ({"issuers": [{"iss": "a", "jwks": {"keys": []}}]}, "issuers[0].jwks", "non-empty 'keys' list"),
        ({"issuers": [{"iss": "a", "jwks": [1]}]}, "issuers[0].jwks", "key set"),
        ({"issuers": [{"iss": "a", "jwks": {"keys": [{"kty": "EC"}]}}]}, "issuers[0].jwks.keys[0]", "has no 'kid'"),
        ({"issuers": [{"iss": "a", "jwks": {"keys": ["k"]}}]}, "issuers[0].jwks.keys[0]", "must be a JWK"),
        (
            {"issuers": [{"iss": "a", "jwks": {"keys": [{"kty": "oct", "kid": "h", "k": "c2VjcmV0"}]}}]},
            "issuers[0].jwks.keys[0]",
            "kty='oct'",
        ),
        (
            {"issuers": [{"iss": "a", "jwks": {"keys": [SigningKey.generate("ES256", kid="p").public_jwk(with_alg=False)]}}]},
            "issuers[0].jwks.keys[0]",
            "P-384",
        ),
        (
            {"issuers": [{"iss": "a", "jwks": {"keys": [SigningKey.generate("RS384", kid="r", rsa_bits=1024).public_jwk()]}}]},
            "issuers[0].jwks.keys[0]",
            "at least 2048",
        ),
        (
            {"issuers": [{"iss": "a", "jwks": {"keys": [{**_EC.public_jwk(), "alg": "ES256"}]}}]},
            "issuers[0].jwks.keys[0]",
            "alg='ES256'",
        ),
        (
            {"issuers": [{"iss": "a", "jwks": {"keys": [{**_EC.public_jwk(), "d": "secret"}]}}]},
            "issuers[0].jwks.keys[0]",
            "private key material",
        ),
        (
            {"issuers": [{"iss": "a", "jwks": {"keys": [{**_EC.public_jwk(), "use": "enc"}]}}]},
            "issuers[0].jwks.keys[0]",
            "use='enc'",
        ),
        (
            {"issuers": [{"iss": "a", "jwks": {"keys": [{**_EC.public_jwk(), "x": "AAAA"}]}}]},
            "issuers[0].jwks.keys[0]",
            "cannot be read",
        ),
        ({"issuers": [{"iss": "a", "jwks": jwks(_EC, _EC)}]}, "issuers[0].jwks.keys[1]", "appears twice"),
        ({"issuers": [{**_GOOD_ENTRY, "fhir_servers": "https://f"}]}, "issuers[0].fhir_servers", "list"),
        ({"issuers": [{**_GOOD_ENTRY, "fhir_servers": ["http://f.example"]}]}, "issuers[0].fhir_servers[0]", "https"),
        ("issuers:\n  - iss: a\n   jwks_url: b\n", "line 3", "not valid YAML"),
    ],
)
def test_trust_file_errors_name_the_file_and_the_fault(tmp_path: Path, doc: object, where: str, message: str) -> None:
    path = _write(tmp_path, doc)
    with pytest.raises(TrustFileError) as caught:
        Authenticator.from_trust_file(path, tmp_path / "replay")
    err = caught.value
    assert err.where == where
    assert message in err.message
    assert str(path) in str(err)


def test_trust_file_in_json_and_unreadable_files(tmp_path: Path) -> None:
    path = write_trust_file(tmp_path / "trust.json", [_GOOD_ENTRY, {"iss": "b", "jwks_url": "https://b.example/j"}])
    issuers = load_trust_file(path)
    assert [i.iss for i in issuers] == [DEFAULT_ISSUER, "b"]
    assert list(issuers[0].inline_keys) == ["ec-1"] and issuers[1].jwks_url == "https://b.example/j"
    bad_json = _write(tmp_path, '{"issuers": [', "broken.json")
    with pytest.raises(TrustFileError, match="not valid JSON"):
        load_trust_file(bad_json)
    with pytest.raises(TrustFileError, match="cannot be read"):
        load_trust_file(tmp_path / "absent.yaml")


def test_hand_written_yaml_trust_file(tmp_path: Path) -> None:
    jwk_json = json.dumps(_EC.public_jwk())
    text = (
        "issuers:\n"
        "  - iss: https://ehr.example.org          # the JWT's iss\n"
        "    jwks_url: https://ehr.example.org/.well-known/jwks.json\n"
        "  - iss: " + DEFAULT_ISSUER + "\n"
        "    jwks: {keys: [" + jwk_json + "]}\n"
        "    fhir_servers: [https://fhir.example.org/r4/]\n"
    )
    path = _write(tmp_path, text)
    auth = Authenticator.from_trust_file(path, tmp_path / "replay")
    assert auth.issuers == ("https://ehr.example.org", DEFAULT_ISSUER)
    claims = verify(auth, "Bearer " + mint(_EC, claims_for(AUD)))
    auth.check_fhir_server(claims, "https://fhir.example.org/r4")
    with pytest.raises(AuthError) as caught:
        auth.check_fhir_server(claims, "https://attacker.example/r4")
    assert caught.value.reason == "fhir-server-not-allowed"
