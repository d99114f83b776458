"""The ASGI application: CDS Hooks 2.0 services, the REST API, health, readiness and metrics.

``create_app`` builds the application around one :class:`~mdtflag.Evaluator` and an authenticator
(anything with ``async verify(authorization, audience) -> claims``). ``worker_app`` is the factory
each worker process of ``mdtflag serve`` calls: it builds the evaluator, evaluates a warm-up
patient, freezes the long-lived objects (``gc.freeze``) and only then returns the application, so a
worker accepts no request before it is warm.

Evaluation runs inline in the worker's event loop: it is CPU-bound, so a thread or process hop
would only add latency; requests take their turns to evaluate in arrival order (:mod:`.line`).
Every failure is answered with a JSON body ``{"error": code, "reason": text}``; input errors use
mdtflag's ``InputError`` codes (``not-json``, ``too-large``, ``too-deep``, ``not-bundle``,
``no-patient``, ...). Logs are JSON lines with request id, hook instance, status
and timing -- never patient data, request bodies or tokens.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import gc
import logging
import os
import sys
import time
import uuid
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mdtflag._version import __version__
from mdtflag.api import Evaluator, cached_evaluator, parse_date
from mdtflag.compile.plan_store import prepare_models
from mdtflag.errors import InputError
from mdtflag.fhir.load import MAX_DEPTH
from mdtflag.output.render import to_json
from mdtflag.service import metrics
from mdtflag.service.auth import Authenticator, AuthError, ReplayStoreError
from mdtflag.service.cards import build_cards, pick_language, system_actions
from mdtflag.service.config import ServiceConfig
from mdtflag.service.fhirfetch import fetch_missing
from mdtflag.service.fhirout import guidance_response, match_bundle
from mdtflag.service.line import Line
from mdtflag.service.prefetch import (
    PREFETCH_TEMPLATES,
    PrefetchProblem,
    collect_prefetch,
    patient_bundle,
)

__all__ = ["SERVICES", "Fetcher", "HttpError", "OpenAuthenticator", "Verifier", "create_app", "worker_app"]

log = logging.getLogger("mdtflag.service")

FHIR_JSON = "application/fhir+json"
#: CDS service id -> hook it answers.
SERVICES: Mapping[str, str] = {
    "mdtflag-patient-view": "patient-view",
    "mdtflag-order-select": "order-select",
    "mdtflag-order-sign": "order-sign",
}
_ORDER_TEXT = (
    "When an antineoplastic medication (ATC L01/L02) is {}, shows where the patient should be "
    "discussed first and any trial cohort to consider before starting."
)
_DESCRIPTIONS = {
    "patient-view": (
        "MDK routing and trial cohorts",
        (
            "Flags the MDK (multidisciplinary team conference) level and target, precision-medicine trial "
            "cohorts, hereditary cancer referral, paediatric whole-genome sequencing and data gaps, with reasons."
        ),
    ),
    "order-select": ("MDK before antineoplastic treatment", _ORDER_TEXT.format("selected")),
    "order-sign": ("MDK before antineoplastic treatment", _ORDER_TEXT.format("signed")),
}
_ATC = "http://www.whocc.no/atc"
_ANTINEOPLASTIC = ("L01", "L02")


class Verifier(Protocol):
    async def verify(self, authorization: str | None, audience: str) -> dict[str, object]: ...


class Fetcher(Protocol):
    async def __call__(
        self,
        fhir_server: str,
        access_token: str,
        patient_id: str,
        missing: Sequence[str],
        *,
        timeout_s: float,
        max_bytes: int,
    ) -> list[dict[str, object]]: ...


class OpenAuthenticator:
    """``--insecure-no-auth``: every caller is let in (local development only)."""

    async def verify(self, authorization: str | None, audience: str) -> dict[str, object]:
        return {}


class HttpError(Exception):
    def __init__(
        self, status: int, code: str, reason: str, headers: dict[str, str] | None = None, line: int | None = None
    ) -> None:
        super().__init__(reason)
        self.status = status
        self.code = code
        self.reason = reason
        self.headers = headers or {}
        self.line = line


def _input_error(e: InputError) -> HttpError:
    status = 413 if e.code == "too-large" else 400
    return HttpError(status, e.code, e.message, line=e.line)


def _json(
    data: object, status: int = 200, media_type: str = "application/json", headers: dict[str, str] | None = None
) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type=media_type, headers=headers)


def _check_depth(obj: object) -> None:
    level = [obj] if isinstance(obj, (dict, list)) else []
    depth = 0
    while level:
        depth += 1
        if depth > MAX_DEPTH:
            raise HttpError(400, "too-deep", f"JSON nesting deeper than the limit of {MAX_DEPTH} levels")
        level = [v for x in level for v in (x.values() if isinstance(x, dict) else x) if isinstance(v, (dict, list))]


def _parse_json(body: bytes) -> object:
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        try:
            body.decode("utf-8")
        except UnicodeDecodeError:
            raise HttpError(400, "not-utf8", "the body is not UTF-8 text") from None
        if "recursion" in exc.msg or "depth" in exc.msg:
            raise HttpError(400, "too-deep", f"JSON nesting deeper than the limit of {MAX_DEPTH} levels") from None
        raise HttpError(400, "not-json", f"the body is not valid JSON: {exc.msg}") from None
    _check_depth(obj)
    return obj


_SAFE_ID = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:")


def _request_id(request: Request) -> str:
    given = request.headers.get("x-request-id", "")
    if 0 < len(given) <= 64 and all(c in _SAFE_ID for c in given):
        return given
    return uuid.uuid4().hex


@dataclass
class _Call:
    """What one request's log line and metrics carry (no patient data)."""

    endpoint: str
    request_id: str
    started: float
    hook_instance: str | None = None
    claims: dict[str, object] = field(default_factory=dict)
    extra: dict[str, object] = field(default_factory=dict)
    ticket: int = 0


@dataclass
class _State:
    evaluator: Evaluator
    verifier: Verifier
    config: ServiceConfig
    fetcher: Fetcher | None
    in_flight: int = 0
    line: Line = field(default_factory=Line)
    ready: bool = True
    warmup_ms: float | None = None


Handler = Callable[[Request, _Call], Awaitable[Response]]


class _Service:
    def __init__(self, state: _State) -> None:
        self.s = state
        self.public = state.config.public_url.rstrip("/")
        ev = state.evaluator
        self.profiles = frozenset(ev.ruleset.profiles.profiles)

    # -- plumbing -------------------------------------------------------------------------------

    def endpoint(
        self, name: str, handler: Handler, *, auth: bool, gated: bool
    ) -> Callable[[Request], Awaitable[Response]]:
        async def run(request: Request) -> Response:
            call = _Call(name, _request_id(request), time.perf_counter())
            admitted = False
            try:
                if gated:
                    # a ticket for the evaluation line; then let the requests already delivered take
                    # their places too, and refuse places beyond the queue at once
                    place, call.ticket, admitted = self.s.in_flight, self.s.line.ticket(), True
                    self.s.in_flight += 1
                    await asyncio.sleep(0)
                    if place >= self.s.config.queue:
                        raise HttpError(
                            503, "overloaded", "the service is at capacity; retry shortly", {"Retry-After": "1"}
                        )
                if auth:
                    call.claims = await self.authenticate(request)
                response = await handler(request, call)
            except HttpError as e:
                body: dict[str, object] = {"error": e.code, "reason": e.reason}
                if e.line is not None:
                    body["line"] = e.line
                response = _json(body, e.status, headers=e.headers)
            except Exception:
                log.exception("unhandled error", extra={"fields": {"request_id": call.request_id, "endpoint": name}})
                response = _json({"error": "internal", "reason": "internal error; see the service log"}, 500)
            finally:
                if admitted:
                    self.s.in_flight -= 1
            elapsed = time.perf_counter() - call.started
            response.headers["X-Request-ID"] = call.request_id
            metrics.REQUESTS.labels(name, str(response.status_code)).inc()
            metrics.LATENCY.labels(name).observe(elapsed)
            if name not in ("health", "ready", "metrics"):
                fields: dict[str, object] = {
                    "request_id": call.request_id,
                    "endpoint": name,
                    "method": request.method,
                    "status": response.status_code,
                    "ms": round(elapsed * 1000, 2),
                }
                if call.hook_instance:
                    fields["hook_instance"] = call.hook_instance
                fields.update(call.extra)
                log.info("request", extra={"fields": fields})
            return response

        return run

    async def authenticate(self, request: Request) -> dict[str, object]:
        audience = self.public + request.url.path
        try:
            return await self.s.verifier.verify(request.headers.get("authorization"), audience)
        except AuthError as e:
            raise HttpError(401, "unauthorized", e.reason, {"WWW-Authenticate": "Bearer"}) from None
        except ReplayStoreError:
            log.error("replay store unavailable", extra={"fields": {"endpoint": request.url.path}})
            raise HttpError(
                503, "unavailable", "tokens cannot be checked for replay right now; retry shortly", {"Retry-After": "5"}
            ) from None

    async def body(self, request: Request) -> bytes:
        limit = self.s.config.max_body
        declared = request.headers.get("content-length")
        if declared is not None:
            try:
                size = int(declared)
            except ValueError:
                raise HttpError(400, "bad-request", "Content-Length is not a number") from None
            if size > limit:
                raise HttpError(
                    413,
                    "too-large",
                    f"the body is {size} bytes, above the limit of {limit} bytes",
                    {"Connection": "close"},
                )
        chunks: list[bytes] = []
        total = 0
        async for chunk in request.stream():
            total += len(chunk)
            if total > limit:
                raise HttpError(
                    413, "too-large", f"the body is above the limit of {limit} bytes", {"Connection": "close"}
                )
            chunks.append(chunk)
        if not total:
            raise HttpError(400, "not-json", "the body is empty")
        return b"".join(chunks)

    def options(self, request: Request) -> tuple[dt.date, str | None]:
        try:
            day = parse_date(request.query_params.get("as_of"))
        except ValueError as e:
            raise HttpError(400, "bad-as-of", str(e)) from None
        profile = request.query_params.get("profile") or None
        if profile is not None and profile not in self.profiles:
            raise HttpError(
                400, "unknown-profile", f"unknown profile {profile!r}; choose from {', '.join(sorted(self.profiles))}"
            )
        return day, profile

    async def evaluate(self, call: _Call, source: object, day: dt.date, profile: str | None) -> Any:
        async with self.s.line.turn(call.ticket):  # first come, first evaluated (see mdtflag.service.line)
            t0 = time.perf_counter()
            try:
                result = self.s.evaluator.evaluate(source, as_of=day, profile=profile)  # type: ignore[arg-type]
            except InputError as e:
                raise _input_error(e) from None
            metrics.EVALUATION.observe(time.perf_counter() - t0)
        for name, decision in result["decisions"].items():
            metrics.DECISIONS.labels(name, decision["level"]).inc()
        return result

    # -- CDS Hooks ----------------------------------------------------------------------------

    async def discovery(self, request: Request, call: _Call) -> Response:
        rs = self.s.evaluator.ruleset
        services = []
        for sid, hook in SERVICES.items():
            title, description = _DESCRIPTIONS[hook]
            services.append(
                {
                    "hook": hook,
                    "id": sid,
                    "title": title,
                    "description": description,
                    "prefetch": dict(PREFETCH_TEMPLATES),
                    "usageRequirements": "Prefetch (or fhirServer with fhirAuthorization) must supply the patient's data; "
                    "Swedish by default, English with Accept-Language: en.",
                    "extension": {"org.mdtflag.ruleset": {"name": rs.name, "version": rs.version, "digest": rs.digest}},
                }
            )
        return _json({"services": services})

    async def hook(self, request: Request, call: _Call) -> Response:
        sid = request.path_params["service_id"]
        hook = SERVICES.get(sid)
        if hook is None:
            raise HttpError(404, "unknown-service", f"no CDS service {sid!r}; see GET /cds-services")
        req = _parse_json(await self.body(request))
        if not isinstance(req, dict):
            raise HttpError(400, "bad-request", "a CDS Hooks request is a JSON object")
        instance = req.get("hookInstance")
        if not isinstance(instance, str) or not instance or len(instance) > 128:
            raise HttpError(400, "bad-request", "hookInstance is required (a string)")
        call.hook_instance = instance
        if req.get("hook") != hook:
            raise HttpError(400, "bad-request", f"service {sid} answers the {hook} hook")
        context = req.get("context")
        if not isinstance(context, dict) or not isinstance(context.get("patientId"), str) or not context["patientId"]:
            raise HttpError(400, "bad-request", "context.patientId is required")
        patient_id = context["patientId"]
        if hook != "patient-view" and not _antineoplastic(context.get("draftOrders")):
            call.extra["outcome"] = "not-antineoplastic"
            return _json({"cards": []})
        try:
            collected = collect_prefetch(req.get("prefetch"))
        except PrefetchProblem as e:
            raise HttpError(400, "not-bundle", str(e)) from None
        if collected.missing:
            await self.fetch(req, patient_id, collected.missing, collected, call)
        bundle = patient_bundle(collected.resources, collected.full_urls)
        pids = {r.get("id") for r in collected.resources if r.get("resourceType") == "Patient"}
        if pids and pids != {patient_id}:
            raise HttpError(400, "bad-request", "the prefetched Patient is not context.patientId")
        lang = pick_language(request.headers.get("accept-language"))
        result = await self.evaluate(call, bundle, _hook_date(req), None)
        cards = build_cards(result, lang, instance, f"{self.public}/rules")
        if hook != "patient-view":
            cards = [c for c in cards if c["uuid"] in _kinds(instance, ("mdk", "trial"))]
            for c in cards:
                c["indicator"] = "warning"
        answer: dict[str, object] = {"cards": cards}
        if self.s.config.system_actions:
            acts = system_actions(cards)
            if acts:
                answer["systemActions"] = acts
        call.extra["cards"] = len(cards)
        return _json(answer)

    async def fetch(
        self, req: Mapping[str, Any], patient_id: str, missing: list[str], collected: Any, call: _Call
    ) -> None:
        server = req.get("fhirServer")
        auth = req.get("fhirAuthorization")
        token = auth.get("access_token") if isinstance(auth, dict) else None
        if not isinstance(server, str) or not server or not isinstance(token, str) or not token:
            raise HttpError(
                412,
                "precondition-failed",
                f"prefetch incomplete ({', '.join(missing)}) and no fhirServer with fhirAuthorization to fetch it",
            )
        check = getattr(self.s.verifier, "check_fhir_server", None)
        if check is not None:
            try:
                check(call.claims, server)
            except AuthError as e:
                raise HttpError(401, "unauthorized", e.reason, {"WWW-Authenticate": "Bearer"}) from None
        fetcher = self.s.fetcher or fetch_missing
        call.extra["fetched"] = list(missing)
        try:
            resources = await fetcher(
                server,
                token,
                patient_id,
                list(missing),
                timeout_s=self.s.config.fetch_timeout_s,
                max_bytes=self.s.config.fetch_max_bytes,
            )
        except Exception as e:
            reason = getattr(e, "reason", None)
            raise HttpError(
                412,
                "precondition-failed",
                f"prefetch incomplete and fetching from fhirServer failed: {reason if isinstance(reason, str) else type(e).__name__}",
            ) from None
        for res in resources:
            if isinstance(res, dict) and isinstance(res.get("resourceType"), str):
                collected.add(res, None)
        if not any(r.get("resourceType") == "Patient" for r in collected.resources):
            raise HttpError(412, "precondition-failed", "the FHIR server returned no Patient")

    async def feedback(self, request: Request, call: _Call) -> Response:
        sid = request.path_params["service_id"]
        if sid not in SERVICES:
            raise HttpError(404, "unknown-service", f"no CDS service {sid!r}; see GET /cds-services")
        body = _parse_json(await self.body(request))
        items = body.get("feedback") if isinstance(body, dict) else None
        if not isinstance(items, list) or not items:
            raise HttpError(400, "bad-request", "feedback is required (a non-empty array)")
        for i, item in enumerate(items):
            if not isinstance(item, dict) or not isinstance(item.get("card"), str):
                raise HttpError(400, "bad-request", f"feedback[{i}].card is required (the card's uuid)")
            if item.get("outcome") not in ("accepted", "overridden"):
                raise HttpError(400, "bad-request", f"feedback[{i}].outcome must be accepted or overridden")
            if not isinstance(item.get("outcomeTimestamp"), str):
                raise HttpError(400, "bad-request", f"feedback[{i}].outcomeTimestamp is required")
        for item in items:
            metrics.FEEDBACK.labels(item["outcome"]).inc()
            accepted = item.get("acceptedSuggestions")
            log.info(
                "feedback",
                extra={
                    "fields": {
                        "request_id": call.request_id,
                        "service": sid,
                        "card": item["card"],
                        "outcome": item["outcome"],
                        "accepted_suggestions": [s.get("id") for s in accepted if isinstance(s, dict)]
                        if isinstance(accepted, list)
                        else [],
                        "override_reason": ((item.get("overrideReason") or {}).get("reason") or {}).get("code")
                        if isinstance(item.get("overrideReason"), dict)
                        else None,
                    }
                },
            )
        call.extra["feedback"] = len(items)
        return _json({})

    # -- REST ----------------------------------------------------------------------------------

    async def evaluate_rest(self, request: Request, call: _Call) -> Response:
        day, profile = self.options(request)
        body = await self.body(request)
        result = await self.evaluate(call, body, day, profile)
        document = to_json(result)
        if FHIR_JSON in request.headers.get("accept", ""):
            lang = pick_language(request.headers.get("accept-language"))
            now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat()
            return _json(guidance_response(result, document, call.request_id, now, lang), media_type=FHIR_JSON)
        return Response(document, media_type="application/json")

    async def match(self, request: Request, call: _Call) -> Response:
        day, profile = self.options(request)
        obj = _parse_json(await self.body(request))
        if isinstance(obj, dict) and obj.get("resourceType") == "Parameters":
            subject = [
                p.get("resource")
                for p in obj.get("parameter") or []
                if isinstance(p, dict) and p.get("name") == "subject"
            ]
            if len(subject) != 1 or not isinstance(subject[0], dict):
                raise HttpError(400, "not-bundle", "Parameters must hold exactly one 'subject' parameter with a Bundle")
            obj = subject[0]
        result = await self.evaluate(call, obj, day, profile)
        lang = pick_language(request.headers.get("accept-language"))
        return _json(match_bundle(result, self.public, lang, call.request_id), media_type=FHIR_JSON)

    async def rules(self, request: Request, call: _Call) -> Response:
        ev = self.s.evaluator
        rs = ev.ruleset
        cohorts = rs.tables.get("cohorts")
        return _json(
            {
                "ruleset": {
                    "name": rs.name,
                    "version": rs.version,
                    "digest": rs.digest,
                    "default_profile": ev.profile,
                    "profiles": sorted(self.profiles),
                },
                "engine": {"name": "mdtflag", "version": __version__},
                "rules": [
                    {
                        "id": r.id,
                        "version": r.version,
                        "kind": r.kind,
                        "tag": r.tag,
                        "title": {"sv": r.title.sv, "en": r.title.en},
                    }
                    for r in rs.rules
                ],
                "cohorts": [
                    {k: row.get(k) for k in ("key", "title", "biomarker", "state", "tag")}
                    for row in (cohorts.rows if cohorts is not None else [])
                ],
            }
        )

    async def health(self, request: Request, call: _Call) -> Response:
        return _json({"status": "ok"})

    async def ready(self, request: Request, call: _Call) -> Response:
        if not self.s.ready:
            raise HttpError(503, "not-ready", "the worker is shutting down")
        return _json({"status": "ready", "pid": os.getpid(), "warmup_ms": self.s.warmup_ms})

    async def metrics_page(self, request: Request, call: _Call) -> Response:
        return Response(metrics.render(), media_type=metrics.CONTENT_TYPE_LATEST)

    async def openapi(self, request: Request, call: _Call) -> Response:
        return Response(_openapi_bytes(), media_type="application/json")


def _hook_date(req: Mapping[str, Any]) -> dt.date:
    """Today, or the date in the request's ``extension["org.mdtflag.as_of"]`` (replaying a past call)."""
    ext = req.get("extension")
    value = ext.get("org.mdtflag.as_of") if isinstance(ext, dict) else None
    if value is None:
        return dt.date.today()
    try:
        return parse_date(str(value))
    except ValueError as e:
        raise HttpError(400, "bad-as-of", f"extension org.mdtflag.as_of: {e}") from None


def _kinds(instance: str, kinds: Sequence[str]) -> set[str]:
    return {str(uuid.uuid5(uuid.NAMESPACE_URL, f"mdtflag:{instance}:{k}")) for k in kinds}


def _antineoplastic(draft_orders: object) -> bool:
    """True when a draft MedicationRequest carries an ATC code under L01 or L02."""
    if not isinstance(draft_orders, dict):
        return False
    for entry in draft_orders.get("entry") or []:
        res = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(res, dict) or res.get("resourceType") != "MedicationRequest":
            continue
        concept = res.get("medicationCodeableConcept")
        codings = concept.get("coding") if isinstance(concept, dict) else None
        for coding in codings if isinstance(codings, list) else []:
            if (
                isinstance(coding, dict)
                and coding.get("system") == _ATC
                and str(coding.get("code", "")).upper().startswith(_ANTINEOPLASTIC)
            ):
                return True
    return False


_OPENAPI: list[bytes] = []


def _openapi_bytes() -> bytes:
    if not _OPENAPI:
        _OPENAPI.append((Path(__file__).parent / "openapi.json").read_bytes())
    return _OPENAPI[0]


def create_app(
    config: ServiceConfig,
    authenticator: Verifier,
    evaluator: Evaluator | None = None,
    fetcher: Fetcher | None = None,
    warmup_ms: float | None = None,
) -> Starlette:
    """The application for one worker process."""
    state = _State(
        evaluator or Evaluator(config.rules, config.profile), authenticator, config, fetcher, warmup_ms=warmup_ms
    )
    svc = _Service(state)
    e = svc.endpoint
    routes = [
        Route("/cds-services", e("discovery", svc.discovery, auth=True, gated=False), methods=["GET"]),
        Route("/cds-services/{service_id}", e("hook", svc.hook, auth=True, gated=True), methods=["POST"]),
        Route(
            "/cds-services/{service_id}/feedback", e("feedback", svc.feedback, auth=True, gated=True), methods=["POST"]
        ),
        Route("/evaluate", e("evaluate", svc.evaluate_rest, auth=True, gated=True), methods=["POST"]),
        Route("/ResearchStudy/$match", e("match", svc.match, auth=True, gated=True), methods=["POST"]),
        Route("/rules", e("rules", svc.rules, auth=True, gated=False), methods=["GET"]),
        Route("/health", e("health", svc.health, auth=False, gated=False), methods=["GET"]),
        Route("/ready", e("ready", svc.ready, auth=False, gated=False), methods=["GET"]),
        Route("/metrics", e("metrics", svc.metrics_page, auth=False, gated=False), methods=["GET"]),
        Route("/openapi.json", e("openapi", svc.openapi, auth=False, gated=False), methods=["GET"]),
    ]

    async def not_found(request: Request, exc: Exception) -> Response:
        status = getattr(exc, "status_code", 404)
        code = "method-not-allowed" if status == 405 else "not-found"
        return _json({"error": code, "reason": f"{request.method} {request.url.path} is not served here"}, status)

    from collections.abc import AsyncIterator
    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        log.info("worker ready", extra={"fields": {"pid": os.getpid(), "warmup_ms": warmup_ms}})
        yield
        state.ready = False
        log.info("worker stopping", extra={"fields": {"pid": os.getpid()}})

    return Starlette(routes=routes, exception_handlers={404: not_found, 405: not_found}, lifespan=lifespan)


# --------------------------------------------------------------------------------------------
# worker start-up


class _JsonLines(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, object] = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "event": record.getMessage(),
            "pid": record.process,
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            data.update(fields)
        if record.exc_info and record.exc_info[0] is not None:
            data["exception"] = record.exc_info[0].__name__  # the type only: messages may quote patient data
        return orjson.dumps(data, default=str).decode("utf-8")


def configure_logging() -> None:
    if any(isinstance(h.formatter, _JsonLines) for h in log.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_JsonLines())
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False


def warm_up(evaluator: Evaluator) -> float:
    """Evaluate the shipped warm-up patient (fills every cache) and build the FHIR models facts are read
    from (not left to the first request with a new shape); milliseconds taken."""
    t0 = time.perf_counter()
    data = (Path(__file__).parent / "warmup.json").read_bytes()
    evaluator.evaluate(data, as_of="2026-11-01")
    evaluator.evaluate(orjson.loads(data), as_of="2026-11-01")
    prepare_models()
    return (time.perf_counter() - t0) * 1000


def make_authenticator(config: ServiceConfig) -> Verifier:
    if config.insecure_no_auth:
        return OpenAuthenticator()
    if not config.trust:
        raise RuntimeError("a trust file is required unless --insecure-no-auth is given")
    replay = Path(config.replay_dir) if config.replay_dir else Path(config.trust).parent
    return Authenticator.from_trust_file(Path(config.trust), replay)


def worker_app() -> Starlette:
    """Factory run once in each worker process before it accepts requests."""
    configure_logging()
    config = ServiceConfig.from_env()
    evaluator = cached_evaluator(config.rules, config.profile)  # compiled once, shared by the workers
    ms = warm_up(evaluator)
    verifier = make_authenticator(config)
    app = create_app(config, verifier, evaluator, warmup_ms=round(ms, 1))
    gc.collect()
    gc.freeze()  # long-lived objects leave the collector's generations: no full-heap scans under load
    return app
