"""Fetch the patient data a CDS Hooks client did not prefetch, from its ``fhirServer``.

:func:`fetch_missing` runs the queries of :data:`PREFETCH_QUERIES` for the missing keys against the
client's FHIR server with the ``fhirAuthorization`` bearer token, concurrently, and returns the
resources. It is bounded everywhere: one deadline (``timeout_s``) for the whole call, one byte
budget (``max_bytes``) shared by every response, at most :data:`MAX_PAGES` pages per search, no
redirects, and ``next`` links only to the FHIR server's own scheme, host and port (the token is
never sent anywhere else). Whatever cannot be fetched completely raises :class:`FetchError`; no
result is ever cut short silently. The token is never logged, stored or put into an error message.
"""
from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx

from mdtflag.service.auth import url_problem

__all__ = ["MAX_PAGES", "PREFETCH_QUERIES", "FetchError", "fetch_missing", "query_url", "same_origin"]

#: CDS Hooks prefetch key -> FHIR query template (relative to ``fhirServer``). Each stays within the
#: CDS Hooks 2.0 recommended query subset, except the ``_include`` that brings each
#: ResearchSubject's ResearchStudy (whose phase the trial rules read).
PREFETCH_QUERIES: Mapping[str, str] = {
    "patient": "Patient/{{context.patientId}}",
    "conditions": "Condition?patient={{context.patientId}}",
    "observations": "Observation?patient={{context.patientId}}",
    "diagnosticReports": "DiagnosticReport?patient={{context.patientId}}",
    "medicationStatements": "MedicationStatement?patient={{context.patientId}}",
    "medicationRequests": "MedicationRequest?patient={{context.patientId}}",
    "medicationAdministrations": "MedicationAdministration?patient={{context.patientId}}",
    "procedures": "Procedure?patient={{context.patientId}}",
    "serviceRequests": "ServiceRequest?patient={{context.patientId}}",
    "researchSubjects": "ResearchSubject?individual={{context.patientId}}&_include=ResearchSubject:study",
    "familyMemberHistories": "FamilyMemberHistory?patient={{context.patientId}}",
}

#: Most pages followed for one search before giving up with ``too-many-pages``.
MAX_PAGES = 50

_PATIENT_TOKEN = "{{context.patientId}}"
_TOKEN = re.compile(r"[\x21-\x7e]{1,8192}")
_FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_JSON_TYPES = ("application/fhir+json", "application/json", "application/json+fhir")
_BAD_SEVERITIES = ("error", "fatal")
_PATIENT_FIELDS = ("subject", "patient", "individual")
#: Connections opened at once to the FHIR server for one call.
MAX_CONNECTIONS = 6


class FetchError(Exception):
    """Missing data could not be fetched completely; ``reason`` is a short machine-readable code.

    Reasons: ``unknown-key``, ``bad-patient-id``, ``bad-fhir-server``, ``bad-token``, ``timeout``, ``unreachable``,
    ``http-error`` (``status`` holds the HTTP status), ``too-large``, ``too-many-pages``,
    ``cross-host-next-link``, ``bad-response``, ``operation-outcome``, ``wrong-patient`` (a search
    returned a resource whose patient reference names someone else).
    """

    def __init__(self, reason: str, message: str, *, key: str | None = None, status: int | None = None) -> None:
        where = f"{key}: " if key else ""
        super().__init__(f"{reason}: {where}{message}")
        self.reason = reason
        self.message = message
        self.key = key
        self.status = status


def query_url(fhir_server: str, key: str, patient_id: str) -> str:
    """The absolute URL of the query for ``key`` about ``patient_id`` on ``fhir_server``."""
    template = PREFETCH_QUERIES.get(key)
    if template is None:
        raise FetchError("unknown-key", f"no query is defined for prefetch key {key[:64]!r}")
    if not _FHIR_ID.fullmatch(patient_id):
        raise FetchError("bad-patient-id", "the patient id is not a FHIR id ([A-Za-z0-9-.]{1,64})")
    return fhir_server.rstrip("/") + "/" + template.replace(_PATIENT_TOKEN, patient_id)


def same_origin(url: str, base: str) -> bool:
    """True when ``url`` has the scheme, host and port of ``base``."""
    try:
        a, b = urlsplit(url), urlsplit(base)
        a_port = a.port or (443 if a.scheme == "https" else 80)
        b_port = b.port or (443 if b.scheme == "https" else 80)
    except ValueError:
        return False
    return (
        a.scheme.lower() == b.scheme.lower()
        and (a.hostname or "").lower() == (b.hostname or "").lower()
        and bool(a.hostname)
        and a_port == b_port
        and a.username is None
        and a.password is None
    )


class _Budget:
    def __init__(self, max_bytes: int) -> None:
        self.left = max_bytes
        self.max_bytes = max_bytes

    def take(self, n: int, key: str) -> None:
        self.left -= n
        if self.left < 0:
            raise FetchError("too-large", f"the answers exceed {self.max_bytes} bytes", key=key)


async def fetch_missing(
    fhir_server: str,
    access_token: str,
    patient_id: str,
    missing: Sequence[str],
    *,
    timeout_s: float,
    max_bytes: int,
) -> list[dict[str, object]]:
    """Fetch the resources for the ``missing`` prefetch keys; raise :class:`FetchError` if any cannot be had.

    Resources come in the order of ``missing``, then page order; a resource that several queries
    return (same type and id) is kept once.
    """
    problem = url_problem(fhir_server)
    if problem or urlsplit(fhir_server).query:
        raise FetchError("bad-fhir-server", f"fhirServer {problem or 'must not have a query'}")
    if not _TOKEN.fullmatch(access_token):
        raise FetchError("bad-token", "the access token is empty or has characters a bearer token cannot have")
    keys = list(dict.fromkeys(missing))
    urls = [query_url(fhir_server, key, patient_id) for key in keys]
    if not keys:
        return []
    budget = _Budget(max_bytes)
    headers = {"Authorization": f"Bearer {access_token}", "Accept": "application/fhir+json"}
    try:
        limits = httpx.Limits(max_connections=MAX_CONNECTIONS, max_keepalive_connections=MAX_CONNECTIONS)
        async with httpx.AsyncClient(timeout=timeout_s, follow_redirects=False, headers=headers, limits=limits) as client:
            per_key = await asyncio.wait_for(
                _all(client, fhir_server, list(zip(keys, urls)), patient_id, budget), timeout=timeout_s
            )
    except asyncio.TimeoutError:
        raise FetchError("timeout", f"no complete answer within {timeout_s:g} s") from None
    out: list[dict[str, object]] = []
    seen: set[tuple[str, str]] = set()
    for resources in per_key:
        for resource in resources:
            rid = resource.get("id")
            if isinstance(rid, str):
                ident = (str(resource["resourceType"]), rid)
                if ident in seen:
                    continue
                seen.add(ident)
            out.append(resource)
    return out


async def _all(
    client: httpx.AsyncClient,
    base: str,
    jobs: list[tuple[str, str]],
    patient_id: str,
    budget: _Budget,
) -> list[list[dict[str, object]]]:
    tasks = [asyncio.ensure_future(_one(client, base, key, url, patient_id, budget)) for key, url in jobs]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in tasks:
            if task.done() and not task.cancelled():
                error = task.exception()
                if error is not None:
                    raise error
        return [task.result() for task in tasks]
    finally:
        for task in tasks:
            if not task.done():
                task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _one(
    client: httpx.AsyncClient, base: str, key: str, url: str, patient_id: str, budget: _Budget
) -> list[dict[str, object]]:
    is_read = "?" not in PREFETCH_QUERIES[key]
    doc = await _get_json(client, url, key, budget)
    if is_read:
        rtype = PREFETCH_QUERIES[key].split("/", 1)[0]
        if doc.get("resourceType") == "OperationOutcome":
            raise FetchError("operation-outcome", "the server answered the read with an OperationOutcome", key=key)
        if doc.get("resourceType") != rtype:
            raise FetchError("bad-response", f"expected a {rtype}, got {str(doc.get('resourceType'))[:40]!r}", key=key)
        if doc.get("id") not in (None, patient_id):
            raise FetchError("bad-response", f"the {rtype} returned has another id", key=key)
        return [doc]
    resources: list[dict[str, object]] = []
    pages = 0
    current = url
    while True:
        pages += 1
        resources.extend(_bundle_resources(doc, key, patient_id))
        next_url = _next_link(doc, current, key)
        if next_url is None:
            return resources
        if not same_origin(next_url, base):
            raise FetchError("cross-host-next-link", "a next link points away from fhirServer", key=key)
        if pages >= MAX_PAGES:
            raise FetchError("too-many-pages", f"more than {MAX_PAGES} pages", key=key)
        current = next_url
        doc = await _get_json(client, current, key, budget)


def _next_link(bundle: Mapping[str, Any], current: str, key: str) -> str | None:
    links = bundle.get("link", [])
    if not isinstance(links, list):
        raise FetchError("bad-response", "Bundle.link is not a list", key=key)
    for link in links:
        if isinstance(link, dict) and link.get("relation") == "next":
            target = link.get("url")
            if not isinstance(target, str) or not target:
                raise FetchError("bad-response", "a next link has no url", key=key)
            return urljoin(current, target)
    return None


def _about(resource: Mapping[str, Any], patient_id: str) -> bool:
    """False when the resource's literal patient reference names another patient (absent: True)."""
    for name in _PATIENT_FIELDS:
        ref = resource.get(name)
        target = ref.get("reference") if isinstance(ref, dict) else None
        if isinstance(target, str):
            target = target.split("/_history/", 1)[0]
            if "Patient/" in target and not (target == f"Patient/{patient_id}" or target.endswith(f"/Patient/{patient_id}")):
                return False
    return True


def _bundle_resources(doc: Mapping[str, Any], key: str, patient_id: str) -> list[dict[str, object]]:
    if doc.get("resourceType") == "OperationOutcome":
        raise FetchError("operation-outcome", "the server answered the search with an OperationOutcome", key=key)
    if doc.get("resourceType") != "Bundle":
        raise FetchError("bad-response", "a search answer is not a Bundle", key=key)
    entries = doc.get("entry", [])
    if not isinstance(entries, list):
        raise FetchError("bad-response", "Bundle.entry is not a list", key=key)
    out: list[dict[str, object]] = []
    for entry in entries:
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
            raise FetchError("bad-response", "a Bundle entry has no resource", key=key)
        search = entry.get("search")
        mode = search.get("mode") if isinstance(search, dict) else None
        if mode != "include" and resource["resourceType"] != "OperationOutcome" and not _about(resource, patient_id):
            raise FetchError("wrong-patient", "the search returned a resource about another patient", key=key)
        if resource["resourceType"] == "OperationOutcome":
            issues = resource.get("issue", [])
            if isinstance(issues, list) and any(
                isinstance(i, dict) and i.get("severity") in _BAD_SEVERITIES for i in issues
            ):
                raise FetchError("operation-outcome", "the search reported an error", key=key)
            continue
        out.append(resource)
    return out


async def _get_json(client: httpx.AsyncClient, url: str, key: str, budget: _Budget) -> dict[str, Any]:
    try:
        async with client.stream("GET", url) as resp:
            if resp.status_code != 200:
                raise FetchError("http-error", f"HTTP status {resp.status_code}", key=key, status=resp.status_code)
            ctype = resp.headers.get("content-type", "").split(";", 1)[0].strip().lower()
            if ctype not in _JSON_TYPES:
                raise FetchError("bad-response", f"content type {ctype[:60]!r} is not FHIR JSON", key=key)
            declared = resp.headers.get("content-length")
            if declared is not None and declared.isdigit() and int(declared) > budget.left:
                raise FetchError("too-large", f"the answers exceed {budget.max_bytes} bytes", key=key)
            chunks: list[bytes] = []
            async for chunk in resp.aiter_bytes():
                budget.take(len(chunk), key)
                chunks.append(chunk)
    except httpx.TimeoutException:
        raise FetchError("timeout", "the FHIR server did not answer in time", key=key) from None
    except httpx.HTTPError as exc:
        raise FetchError("unreachable", f"{type(exc).__name__} talking to the FHIR server", key=key) from None
    try:
        doc = json.loads(b"".join(chunks))
    except (ValueError, RecursionError):
        raise FetchError("bad-response", "the answer is not JSON", key=key) from None
    if not isinstance(doc, dict):
        raise FetchError("bad-response", "the answer is not a FHIR resource", key=key)
    return doc
