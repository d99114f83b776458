"""``mdtflag serve`` over real HTTP on loopback: CDS Hooks, REST, FHIR outputs, errors, auth wiring.

Each server runs in a subprocess (``python -m mdtflag.cli serve``) on a free 127.0.0.1 port; every
call is a real HTTP request. Answers are compared with the CLI and the Python API for the same
bundle, rules and date.
"""

from __future__ import annotations

import base64
import json
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B import get_fhir_model_class
from service_auth_keys import (
    TrustSetup,
    failing_authorizations,
    jwks,
    make_trust_setup,
    write_trust_file,
)
from service_fetch_server import FhirServer
from service_support import AS_OF, ROOT, Server, example_paths, hook_request

from mdtflag.api import Evaluator
from mdtflag.output.render import to_json
from mdtflag.service.cards import SUMMARY_MAX, build_cards
from mdtflag.service.prefetch import (
    PREFETCH_TEMPLATES,
    collect_prefetch,
    patient_bundle,
)

PV = "/cds-services/mdtflag-patient-view"
EX01 = ROOT / "fhir_examples" / "01-cholangio-braf-v600e-focuse-eligible.json"
EX24 = ROOT / "fhir_examples" / "24-colon-kras-g12c-ecog-missing.json"


def fhir_valid(resource: dict[str, Any]) -> None:
    get_fhir_model_class(resource["resourceType"]).model_validate(resource)


@pytest.fixture(scope="module")
def trust(tmp_path_factory: pytest.TempPathFactory) -> TrustSetup:
    return make_trust_setup(tmp_path_factory.mktemp("trust"))


@pytest.fixture(scope="module")
def server(trust: TrustSetup) -> Iterator[Server]:
    srv = Server("--trust", str(trust.trust_file), "--max-body", "400000", workers=2)
    srv.args += ["--public-url", f"http://127.0.0.1:{srv.port}"]
    with srv:
        yield srv


@pytest.fixture(scope="module")
def evaluator() -> Evaluator:
    return Evaluator()


def auth(server: Server, trust: TrustSetup, path: str, **extra: str) -> dict[str, str]:
    return {"Authorization": trust.bearer(server.base + path.split("?")[0]), **extra}


def post(server: Server, trust: TrustSetup, path: str, body: Any, **headers: str) -> Any:
    return server.call("POST", path, body, auth(server, trust, path, **headers))


def evaluation_count(server: Server) -> float:
    text = server.call("GET", "/metrics").body.decode()
    assert "mdtflag_http_requests_total" in text  # the metrics answer at all
    m = re.search(r"^mdtflag_evaluation_seconds_count (\S+)$", text, re.MULTILINE)
    return float(m.group(1)) if m else 0.0


# --------------------------------------------------------------------------------------------
# discovery and hooks


def test_discovery_lists_services_with_prefetch_templates(
    server: Server, trust: TrustSetup, evaluator: Evaluator
) -> None:
    r = server.call("GET", "/cds-services", headers=auth(server, trust, "/cds-services"))
    assert r.status == 200
    services = {s["id"]: s for s in r.json()["services"]}
    assert services["mdtflag-patient-view"]["hook"] == "patient-view"
    assert {s["hook"] for s in services.values()} == {"patient-view", "order-select", "order-sign"}
    for s in services.values():
        assert s["prefetch"] == dict(PREFETCH_TEMPLATES)
        assert s["description"]
        assert s["extension"]["org.mdtflag.ruleset"]["digest"] == evaluator.ruleset.digest
    wanted = {
        "Patient",
        "Condition",
        "Observation",
        "MedicationStatement",
        "MedicationRequest",
        "DiagnosticReport",
        "ResearchSubject",
        "FamilyMemberHistory",
    }
    assert wanted <= {t.split("/")[0].split("?")[0] for t in services["mdtflag-patient-view"]["prefetch"].values()}


def test_discovery_needs_a_token(server: Server) -> None:
    r = server.call("GET", "/cds-services")
    assert r.status == 401
    assert r.json() == {"error": "unauthorized", "reason": "missing-token"}


@pytest.mark.parametrize("path", [p.name for p in example_paths()[::5]])
def test_patient_view_cards_equal_the_api(path: str, server: Server, trust: TrustSetup, evaluator: Evaluator) -> None:
    bundle = json.loads((ROOT / "fhir_examples" / path).read_text())
    req = hook_request(bundle)
    r = post(server, trust, PV, req)
    assert r.status == 200, r.body
    got = r.json()["cards"]
    collected = collect_prefetch(req["prefetch"])
    result = evaluator.evaluate(patient_bundle(collected.resources, collected.full_urls), as_of=AS_OF)
    assert got == build_cards(result, "sv", req["hookInstance"], f"{server.base}/rules")
    for card in got:
        assert len(card["summary"]) < SUMMARY_MAX
        assert card["indicator"] in ("info", "warning")
        assert card["source"]["topic"]["code"] == evaluator.ruleset.digest
        assert (
            evaluator.ruleset.name in card["source"]["label"] and evaluator.ruleset.version in card["source"]["label"]
        )
        for s in card.get("suggestions", []):
            for action in s["actions"]:
                assert action["type"] == "create"
                fhir_valid(action["resource"])
    assert "systemActions" not in r.json()


def test_patient_view_cards_per_decision_with_suggestions(server: Server, trust: TrustSetup) -> None:
    req = hook_request(json.loads(EX01.read_text()))
    cards = post(server, trust, PV, req).json()["cards"]
    assert [c["summary"].split(":")[0] for c in cards] == ["Nationell MDK", "Möjlig studiekohort"]
    mdk, trial = cards
    assert mdk["indicator"] == "warning" and "Nationell molekylär tumörkonferens" in mdk["summary"]
    task = mdk["suggestions"][0]["actions"][0]["resource"]
    assert task["resourceType"] == "Task" and task["for"] == {"reference": "Patient/p01"}
    subjects = [s["actions"][0]["resource"] for s in trial["suggestions"]]
    assert {s["study"]["reference"] for s in subjects} == {"ResearchStudy/K-BRAF-DT", "ResearchStudy/K-BRAF-VC"}
    assert all(s["status"] == "candidate" for s in subjects)
    assert "✓" in trial["detail"] and "K-BRAF-DT" in trial["detail"]


def test_english_with_accept_language(server: Server, trust: TrustSetup) -> None:
    req = hook_request(json.loads(EX01.read_text()))
    cards = post(server, trust, PV, req, **{"Accept-Language": "en-GB,en;q=0.9,sv;q=0.4"}).json()["cards"]
    assert cards[0]["summary"].startswith("National MDT: National molecular tumour board")
    assert cards[1]["summary"].startswith("Possible trial cohort")


def test_order_sign_only_for_antineoplastic_orders(server: Server, trust: TrustSetup) -> None:
    bundle = json.loads(EX01.read_text())

    def draft(atc: str) -> dict[str, Any]:
        return {
            "resourceType": "Bundle",
            "type": "collection",
            "entry": [
                {
                    "resource": {
                        "resourceType": "MedicationRequest",
                        "id": "draft-1",
                        "status": "draft",
                        "intent": "order",
                        "subject": {"reference": "Patient/p01"},
                        "medicationCodeableConcept": {"coding": [{"system": "http://www.whocc.no/atc", "code": atc}]},
                    }
                }
            ],
        }

    path = "/cds-services/mdtflag-order-sign"
    req = hook_request(bundle, hook="order-sign")
    req["context"]["draftOrders"] = draft("N02BE01")  # paracetamol
    r = post(server, trust, path, req)
    assert r.status == 200 and r.json() == {"cards": []}
    req["context"]["draftOrders"] = draft("L01EC02")  # dabrafenib
    cards = post(server, trust, path, req).json()["cards"]
    assert len(cards) == 2 and all(c["indicator"] == "warning" for c in cards)


def test_incomplete_prefetch_without_fhir_server_is_412(server: Server, trust: TrustSetup) -> None:
    keys = [k for k in PREFETCH_TEMPLATES if k != "observations"]
    before = evaluation_count(server)
    r = post(server, trust, PV, hook_request(json.loads(EX01.read_text()), keys=keys))
    assert r.status == 412
    assert r.json()["error"] == "precondition-failed" and "observations" in r.json()["reason"]
    outcome = hook_request(json.loads(EX01.read_text()))
    outcome["prefetch"]["conditions"] = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "exception"}],
    }
    assert post(server, trust, PV, outcome).status == 412
    assert evaluation_count(server) == before


def test_incomplete_prefetch_fetched_from_fhir_server(server: Server, trust: TrustSetup) -> None:
    with FhirServer(per_type=3, page_size=2) as fhir:
        req = hook_request(json.loads(EX01.read_text()), keys=[])
        req["context"]["patientId"] = "pf-1"
        req["fhirServer"] = fhir.base
        req["fhirAuthorization"] = {
            "access_token": fhir.token,
            "token_type": "Bearer",
            "expires_in": 300,
            "scope": "user/*.read",
            "subject": "mdtflag",
        }
        r = post(server, trust, PV, req)
        assert r.status == 200, r.body
        assert isinstance(r.json()["cards"], list)
        req["context"]["patientId"] = "outcome"
        r = post(server, trust, PV, req)
        assert r.status == 412 and "operation-outcome" in r.json()["reason"]
        req["context"]["patientId"] = "pf-2"
        req["fhirAuthorization"]["access_token"] = "wrong-token-abc"
        assert post(server, trust, PV, req).status == 412
    assert fhir.token not in server.log() and "wrong-token-abc" not in server.log()


def test_fhir_server_outside_the_issuers_list_is_refused(tmp_path: Path) -> None:
    setup = make_trust_setup(tmp_path)
    write_trust_file(
        setup.trust_file,
        [{"iss": setup.issuer, "jwks": jwks(setup.key), "fhir_servers": ["https://ehr.example.org/fhir"]}],
    )
    srv = Server("--trust", str(setup.trust_file), workers=1)
    srv.args += ["--public-url", srv.base]
    with srv, FhirServer() as fhir:
        req = hook_request(json.loads(EX01.read_text()), keys=["patient"])
        req["fhirServer"] = fhir.base
        req["fhirAuthorization"] = {
            "access_token": fhir.token,
            "token_type": "Bearer",
            "expires_in": 300,
            "scope": "user/*.read",
            "subject": "mdtflag",
        }
        r = srv.call("POST", PV, req, {"Authorization": setup.bearer(srv.base + PV)})
        assert (r.status, r.json()) == (401, {"error": "unauthorized", "reason": "fhir-server-not-allowed"})
        assert evaluation_count(srv) == 0


def test_feedback(server: Server, trust: TrustSetup) -> None:
    path = PV + "/feedback"
    good = {
        "feedback": [
            {
                "card": "9f0f9a5c-5a1d-4e0b-8d0e-3b2c1a0f9e8d",
                "outcome": "accepted",
                "acceptedSuggestions": [{"id": "x"}],
                "outcomeTimestamp": "2026-11-01T10:00:00Z",
            }
        ]
    }
    assert post(server, trust, path, good).status == 200
    assert post(server, trust, path, {"feedback": [{"card": "x", "outcome": "maybe"}]}).status == 400
    assert post(server, trust, "/cds-services/nope/feedback", good).status == 404
    assert 'mdtflag_feedback_total{outcome="accepted"}' in server.call("GET", "/metrics").body.decode()


# --------------------------------------------------------------------------------------------
# REST


def test_evaluate_is_byte_identical_to_cli_and_api(server: Server, trust: TrustSetup, evaluator: Evaluator) -> None:
    for path in (EX01, EX24, ROOT / "fhir_examples" / "15-child-neuroblastoma-no-wgs.json"):
        raw = path.read_bytes()
        r = post(server, trust, f"/evaluate?as_of={AS_OF}", raw)
        assert r.status == 200 and r.headers["content-type"].startswith("application/json")
        cli = subprocess.run(
            [sys.executable, "-m", "mdtflag.cli", "evaluate", str(path), "--as-of", AS_OF, "--format", "json"],
            cwd=ROOT,
            capture_output=True,
            timeout=120,
            check=True,
        ).stdout
        assert r.body == cli == to_json(evaluator.evaluate(path, as_of=AS_OF))


def test_evaluate_every_example_equals_api(server: Server, trust: TrustSetup, evaluator: Evaluator) -> None:
    for path in example_paths():
        r = post(server, trust, f"/evaluate?as_of={AS_OF}&profile=IMPRESS", path.read_bytes())
        assert r.body == to_json(evaluator.evaluate(path, as_of=AS_OF, profile="IMPRESS")), path.name


def test_guidance_response(server: Server, trust: TrustSetup) -> None:
    for path, status in (
        (EX24, "data-required"),
        (ROOT / "fhir_examples" / "02-melanoma-braf-v600e-on-label.json", "success"),
    ):
        raw = path.read_bytes()
        r = post(
            server, trust, f"/evaluate?as_of={AS_OF}", raw, Accept="application/fhir+json", **{"X-Request-ID": "req-42"}
        )
        assert r.status == 200 and r.headers["content-type"].startswith("application/fhir+json")
        gr = r.json()
        fhir_valid(gr)
        assert gr["status"] == status
        assert gr["requestIdentifier"]["value"] == "req-42"
        attached = base64.b64decode(gr["contained"][0]["parameter"][0]["valueAttachment"]["data"])
        assert attached == post(server, trust, f"/evaluate?as_of={AS_OF}", raw).body
        doc = json.loads(attached)
        assert gr["moduleCodeableConcept"]["coding"][0]["code"] == doc["ruleset"]["name"]
        if status == "data-required":
            facts = {
                next(x["valueString"] for x in d["extension"][0]["extension"] if x["url"] == "fact")
                for d in gr["dataRequirement"]
            }
            assert "ecog" in facts
        else:
            assert "dataRequirement" not in gr


def test_match_bundle(server: Server, trust: TrustSetup) -> None:
    path = "/ResearchStudy/$match"
    r = post(server, trust, f"{path}?as_of={AS_OF}", EX01.read_bytes())
    assert r.status == 200
    bundle = r.json()
    fhir_valid(bundle)
    scores = {e["resource"]["id"]: e["search"]["score"] for e in bundle["entry"]}
    assert scores == {"K-BRAF-DT": 1, "K-BRAF-VC": 1}
    assert bundle["entry"][0]["resource"]["extension"][0]["url"].endswith("match-reasons")
    params = {
        "resourceType": "Parameters",
        "parameter": [{"name": "subject", "resource": json.loads(EX24.read_text())}],
    }
    r = post(server, trust, f"{path}?as_of={AS_OF}", params)
    fhir_valid(r.json())
    assert {e["search"]["score"] for e in r.json()["entry"]} == {0.5}


def test_rules_health_ready_metrics_openapi(server: Server, trust: TrustSetup, evaluator: Evaluator) -> None:
    rules = server.call("GET", "/rules", headers=auth(server, trust, "/rules")).json()
    assert rules["ruleset"]["digest"] == evaluator.ruleset.digest
    assert {r["id"] for r in rules["rules"]} == {r.id for r in evaluator.ruleset.rules}
    assert "K-BRAF-DT" in {c["key"] for c in rules["cohorts"]}
    assert server.call("GET", "/rules").status == 401
    assert server.call("GET", "/health").json() == {"status": "ok"}
    ready = server.call("GET", "/ready").json()
    assert ready["status"] == "ready" and ready["warmup_ms"] > 0
    shipped = (ROOT / "mdtflag" / "service" / "openapi.json").read_bytes()
    assert server.call("GET", "/openapi.json").body == shipped
    assert set(json.loads(shipped)["paths"]) >= {"/cds-services", "/evaluate", "/ResearchStudy/$match", "/metrics"}
    metrics = server.call("GET", "/metrics").body.decode()
    assert re.search(r'mdtflag_decisions_total\{decision="mdk",level="\w+"\} \d', metrics)
    assert re.search(r'mdtflag_http_request_duration_seconds_bucket\{endpoint="evaluate"', metrics)


# --------------------------------------------------------------------------------------------
# errors


def test_bad_input(server: Server, trust: TrustSetup) -> None:
    cases = [
        (b"{", "not-json"),
        (b"\xff\xfe{}", "not-utf8"),
        (b'{"resourceType": "Patient", "id": "x"}', "not-bundle"),
        (b'{"resourceType": "Bundle", "type": "collection", "entry": []}', "no-patient"),
        (b"[" * 150 + b"]" * 150, "too-deep"),
    ]
    for body, code in cases:
        r = post(server, trust, "/evaluate", body)
        assert r.status == 400, (code, r.body)
        assert r.json()["error"] == code and r.json()["reason"]
    for body, code in ((b"[1]", "bad-request"), (b"{", "not-json"), (b"[" * 150 + b"]" * 150, "too-deep")):
        r = post(server, trust, PV, body)
        assert (r.status, r.json()["error"]) == (400, code)
    req = hook_request(json.loads(EX01.read_text()))
    req["prefetch"]["conditions"] = [1, 2]
    assert post(server, trust, PV, req).json()["error"] == "not-bundle"
    other = hook_request(json.loads(EX01.read_text()))
    other["context"]["patientId"] = "someone-else"
    r = post(server, trust, PV, other)
    assert (r.status, r.json()["error"]) == (400, "bad-request") and "patientId" in r.json()["reason"]
    wrong_hook = hook_request(json.loads(EX01.read_text()), hook="order-sign")
    assert post(server, trust, PV, wrong_hook).json()["error"] == "bad-request"
    assert post(server, trust, "/evaluate?as_of=yesterday", EX01.read_bytes()).json()["error"] == "bad-as-of"
    assert post(server, trust, "/evaluate?profile=NOPE", EX01.read_bytes()).json()["error"] == "unknown-profile"


def raw_exchange(port: int, head: bytes, body_parts: list[bytes]) -> bytes:
    """Send a request by hand (the server may answer and close before the body is all sent)."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        try:
            sock.sendall(head)
            for part in body_parts:
                sock.sendall(part)
        except (BrokenPipeError, ConnectionResetError):
            pass
        reply = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            reply += chunk
            if b"\r\n\r\n" in reply and b'"reason"' in reply:
                break
        return reply


def test_body_limit_413(server: Server, trust: TrustSetup) -> None:
    big = b'{"resourceType": "Bundle", "entry": [' + b'{"x": 1},' * 60000 + b"{}]}"
    token = auth(server, trust, "/evaluate")["Authorization"]
    head = (
        f"POST /evaluate HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {token}\r\nContent-Length: {len(big)}\r\n\r\n"
    ).encode()
    reply = raw_exchange(server.port, head, [big[:1000]])
    assert reply.startswith(b"HTTP/1.1 413") and b'"error":"too-large"' in reply
    token = auth(server, trust, "/evaluate")["Authorization"]
    head = (
        f"POST /evaluate HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {token}\r\nTransfer-Encoding: chunked\r\n\r\n"
    ).encode()
    parts = [b"%x\r\n%s\r\n" % (len(big[k : k + 50000]), big[k : k + 50000]) for k in range(0, len(big), 50000)] + [
        b"0\r\n\r\n"
    ]
    reply = raw_exchange(server.port, head, parts)
    assert reply.startswith(b"HTTP/1.1 413") and b'"error":"too-large"' in reply


def test_unknown_service_and_path_404(server: Server, trust: TrustSetup) -> None:
    r = post(server, trust, "/cds-services/no-such-service", hook_request(json.loads(EX01.read_text())))
    assert r.status == 404 and r.json()["error"] == "unknown-service"
    assert server.call("GET", "/nowhere").status == 404
    assert server.call("GET", "/evaluate").status == 405


def test_every_refused_token_is_401_and_nothing_is_evaluated(server: Server, trust: TrustSetup) -> None:
    body = hook_request(json.loads(EX01.read_text()))
    before = evaluation_count(server)
    for case in failing_authorizations(trust, server.base + PV):
        headers = {} if case.authorization is None else {"Authorization": case.authorization}
        r = server.call("POST", PV, body, headers)
        assert r.status == 401, case.name
        assert r.json() == {"error": "unauthorized", "reason": case.reason}, case.name
    replayed = auth(server, trust, "/evaluate")
    assert server.call("POST", "/evaluate", EX01.read_bytes(), replayed).status == 200
    r = server.call("POST", "/evaluate", EX01.read_bytes(), replayed)
    assert (r.status, r.json()["reason"]) == (401, "replayed-jti")
    other_path = trust.bearer(server.base + "/evaluate")
    r = server.call("POST", PV, body, {"Authorization": other_path})
    assert (r.status, r.json()["reason"]) == (401, "wrong-audience")
    assert evaluation_count(server) == before + 1
    log = server.log()
    assert "Bearer" not in log and "p01" not in log and "Nationell" not in log


def test_logs_are_json_lines_with_request_fields(server: Server, trust: TrustSetup) -> None:
    post(server, trust, PV, hook_request(json.loads(EX01.read_text()), instance="11111111-2222-4333-8444-555555555555"))
    lines = [json.loads(x) for x in server.log().splitlines() if x.startswith("{")]
    hook_lines = [x for x in lines if x.get("hook_instance") == "11111111-2222-4333-8444-555555555555"]
    assert hook_lines and {"request_id", "status", "ms", "endpoint"} <= set(hook_lines[0])


# --------------------------------------------------------------------------------------------
# overload, shutdown, missing extra


def slow_bundle(copies: int) -> bytes:
    """Example 01 with its Observations repeated ``copies`` times (about 0.2 ms of evaluation each)."""
    bundle = json.loads(EX01.read_text())
    obs = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Observation"]
    for i in range(copies):
        for res in obs:
            bundle["entry"].append({"resource": {**res, "id": f"{res['id']}-x{i}"}})
    return json.dumps(bundle).encode()


def test_overload_beyond_queue_is_503_and_admitted_requests_complete() -> None:
    with Server("--insecure-no-auth", "--queue", "1", "--system-actions", workers=1) as srv:
        slow = slow_bundle(400)  # about a second of evaluation, blocking the worker
        results: dict[str, int] = {}

        def send(name: str, body: bytes) -> None:
            r = srv.call("POST", f"/evaluate?as_of={AS_OF}", body, timeout=120)
            results[name] = r.status
            if r.status == 503:
                assert r.json()["error"] == "overloaded" and r.headers["retry-after"] == "1"

        first = threading.Thread(target=send, args=("first", slow))
        first.start()
        time.sleep(0.3)
        later = [threading.Thread(target=send, args=(f"later{i}", EX01.read_bytes())) for i in range(3)]
        for t in later:
            t.start()
        for t in [first, *later]:
            t.join(timeout=120)
        assert results["first"] == 200
        statuses = sorted(v for k, v in results.items() if k != "first")
        assert statuses == [200, 503, 503]  # one waits its turn, the others are turned away
        assert srv.call("GET", "/health").status == 200  # never counted against the queue
        assert srv.call("POST", f"/evaluate?as_of={AS_OF}", EX01.read_bytes()).status == 200
        assert "WARNING: --insecure-no-auth" in srv.log()
        answer = srv.call("POST", PV, hook_request(json.loads(EX01.read_text()))).json()
        tasks = [a["resource"] for a in answer["systemActions"]]
        assert [t["resourceType"] for t in tasks] == ["Task"]
        assert tasks[0] == answer["cards"][0]["suggestions"][0]["actions"][0]["resource"]


def test_graceful_shutdown_finishes_in_flight_request() -> None:
    srv = Server("--insecure-no-auth", workers=1)
    with srv:
        raw = EX01.read_bytes()
        held = socket.create_connection(("127.0.0.1", srv.port), timeout=30)
        head = (f"POST /evaluate?as_of={AS_OF} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(raw)}\r\n\r\n").encode()
        held.sendall(head + raw[:100])
        time.sleep(0.5)
        assert srv.proc is not None
        srv.proc.send_signal(15)
        time.sleep(0.5)
        held.sendall(raw[100:])
        reply = b""
        while b"\r\n\r\n" not in reply:
            chunk = held.recv(65536)
            if not chunk:
                break
            reply += chunk
        held.close()
        assert reply.startswith(b"HTTP/1.1 200")
        assert srv.proc.wait(timeout=60) == 0
        assert '"worker stopping"' in srv.log()


def test_serve_without_the_extra_says_how_to_install(tmp_path: Path) -> None:
    code = (
        "import sys, importlib.abc\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'granian':\n"
        "            raise ImportError('blocked')\n"
        "        return None\n"
        "sys.meta_path.insert(0, Block())\n"
        "import importlib.util\n"
        "importlib.util.find_spec = lambda name, *a: None if name == 'granian' else __import__('importlib').machinery.PathFinder.find_spec(name)\n"
        "from mdtflag.cli import main\n"
        "main(['serve', '--port', '1'])\n"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode == 64
    assert "pip install 'mdtflag[service]'" in r.stderr
    r = subprocess.run(
        [sys.executable, "-m", "mdtflag.cli", "serve", "--port", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert r.returncode == 64 and "--trust" in r.stderr
    r = subprocess.run(
        [sys.executable, "-m", "mdtflag.cli", "serve", "--insecure-no-auth", "--public-url", "ftp://x"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert r.returncode == 64 and "--public-url" in r.stderr


def test_a_token_used_before_a_restart_is_refused_after_it(tmp_path: Path, trust: TrustSetup) -> None:
    """The replay database lives in a lasting folder (``--replay-dir``, else the user's state folder), so a
    restart does not forget the tokens accepted just before it."""
    replay = tmp_path / "replay"
    first = Server("--trust", str(trust.trust_file), "--replay-dir", str(replay))
    with first:
        token = auth(first, trust, "/evaluate")
        assert first.call("POST", "/evaluate", EX01.read_bytes(), token).status == 200
    # the same port, so the public URL and the token's aud are the same
    second = Server("--trust", str(trust.trust_file), "--replay-dir", str(replay), port=first.port)
    with second:
        r = second.call("POST", "/evaluate", EX01.read_bytes(), token)
        assert (r.status, r.json()["reason"]) == (401, "replayed-jti")
        fresh = auth(second, trust, "/evaluate")
        assert second.call("POST", "/evaluate", EX01.read_bytes(), fresh).status == 200
    assert (replay / "jti-replay.sqlite3").is_file()


def test_the_default_replay_folder_is_the_state_folder(tmp_path: Path, trust: TrustSetup) -> None:
    state = tmp_path / "state"
    first = Server("--trust", str(trust.trust_file), state_dir=state)
    with first:
        token = auth(first, trust, "/evaluate")
        assert first.call("POST", "/evaluate", EX01.read_bytes(), token).status == 200
    assert (state / "replay" / "jti-replay.sqlite3").is_file()
    with Server("--trust", str(trust.trust_file), state_dir=state, port=first.port) as second:
        r = second.call("POST", "/evaluate", EX01.read_bytes(), token)
        assert (r.status, r.json()["reason"]) == (401, "replayed-jti")
