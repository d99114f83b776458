"""A mock FHIR server for tests of missing-data fetching: a real HTTP server on 127.0.0.1.

Run in a subprocess through :class:`FhirServer` (a context manager; ``.base`` is the FHIR base URL,
``.token`` the bearer token it accepts -- any other Authorization gets 401). The patient id chooses
the behaviour:

* any plain id: ``Patient/{id}`` is a Patient; every search returns ``per_type`` resources of the
  searched type about the patient, ``page_size`` per page, with absolute ``next`` links;
  ``ResearchSubject`` searches also include ``ResearchStudy/study-1`` (``search.mode: include``);
* ``slow``: every answer waits ``slow_s`` seconds first;
* ``big``: searches return one Observation of about 3 MB;
* ``chunkedbig``: the same, sent chunked without a Content-Length;
* ``crosshost``: the first page's ``next`` link points to another host;
* ``relative``: ``next`` links are relative;
* ``endless``: every page has a ``next`` link;
* ``outcome``: searches return an OperationOutcome entry with severity ``error``;
* ``warning``: searches also carry an OperationOutcome entry with severity ``warning``;
* ``notfound``: the Patient read answers 404;
* ``wrongpatient``: searches return resources about ``Patient/someone-else``;
* ``html``: answers are ``text/html``;
* ``redirect``: answers are 302 to another host.

``/slow`` (any method) waits ``slow_s`` seconds and then answers an empty key set, for JWKS timeouts.
Command line: ``python -u tests/service_fetch_server.py --token T [--per-type N] [--page-size M]
[--slow-s S]``; prints ``PORT <n>`` once listening.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from service_support import ChildServer
from typing_extensions import Self

SEARCH_PARAMS = ("patient", "individual")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        sys.stderr.write("%s\n" % (format % args))

    def _send(
        self, status: int, body: bytes, ctype: str = "application/fhir+json", extra: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, doc: dict[str, Any], ctype: str = "application/fhir+json") -> None:
        self._send(status, json.dumps(doc).encode("utf-8"), ctype)

    def do_GET(self) -> None:
        opts = self.server.opts
        parts = urlsplit(self.path)
        if parts.path == "/slow":
            time.sleep(opts.slow_s)
            self._json(200, {"keys": []}, "application/json")
            return
        if self.headers.get("Authorization") != f"Bearer {opts.token}":
            self._json(401, _outcome("error", "login", "bad or missing bearer token"))
            return
        if not parts.path.startswith("/fhir/"):
            self._json(404, _outcome("error", "not-found", "unknown path"))
            return
        rest = parts.path[len("/fhir/") :]
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        if "/" in rest:
            rtype, _, rid = rest.partition("/")
            pid = rid
        else:
            rtype = rest
            pid = next((query[p] for p in SEARCH_PARAMS if p in query), "")
        if pid == "slow":
            time.sleep(opts.slow_s)
        if pid == "html":
            self._send(200, b"<html><body>login</body></html>", "text/html")
            return
        if pid == "redirect":
            self._send(302, b"", extra={"Location": "http://fhir.elsewhere.example/fhir/" + rest})
            return
        if "/" in rest:
            if rtype != "Patient" or pid == "notfound":
                self._json(404, _outcome("error", "not-found", "no such resource"))
                return
            self._json(200, {"resourceType": "Patient", "id": pid, "gender": "female"})
            return
        page = self._search_page(rtype, pid, int(query.get("_page", "1")))
        if pid == "chunkedbig":
            self._chunked(json.dumps(page).encode("utf-8"))
            return
        self._json(200, page)

    def _chunked(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/fhir+json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            for start in range(0, len(body), 65536):
                piece = body[start : start + 65536]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _search_page(self, rtype: str, pid: str, page: int) -> dict[str, Any]:
        opts = self.server.opts
        host = self.headers.get("Host", f"127.0.0.1:{self.server.server_address[1]}")
        param = "individual" if rtype == "ResearchSubject" else "patient"
        entries: list[dict[str, Any]] = []
        links: list[dict[str, str]] = [{"relation": "self", "url": f"http://{host}{self.path}"}]
        if pid == "outcome":
            entries.append(
                {"resource": _outcome("error", "processing", "search failed"), "search": {"mode": "outcome"}}
            )
            return {"resourceType": "Bundle", "type": "searchset", "entry": entries, "link": links}
        if pid in ("big", "chunkedbig"):
            note = "x" * 3_000_000
            entries.append({"resource": _resource("Observation", pid, 0, note), "search": {"mode": "match"}})
            return {"resourceType": "Bundle", "type": "searchset", "entry": entries, "link": links}
        if pid == "warning" and page == 1:
            entries.append(
                {"resource": _outcome("warning", "informational", "partial index"), "search": {"mode": "outcome"}}
            )
        first = (page - 1) * opts.page_size
        about = "someone-else" if pid == "wrongpatient" else pid
        for i in range(first, min(first + opts.page_size, opts.per_type)):
            entries.append({"resource": _resource(rtype, about, i), "search": {"mode": "match"}})
        if rtype == "ResearchSubject" and page == 1:
            study = {"resourceType": "ResearchStudy", "id": "study-1", "status": "active"}
            entries.append({"resource": study, "search": {"mode": "include"}})
        has_more = first + opts.page_size < opts.per_type or pid == "endless"
        if has_more:
            next_query = f"{param}={pid}&_page={page + 1}"
            if pid == "crosshost":
                links.append({"relation": "next", "url": f"http://fhir.elsewhere.example/fhir/{rtype}?{next_query}"})
            elif pid == "relative":
                links.append({"relation": "next", "url": f"{rtype}?{next_query}"})
            else:
                links.append({"relation": "next", "url": f"http://{host}/fhir/{rtype}?{next_query}"})
        return {"resourceType": "Bundle", "type": "searchset", "entry": entries, "link": links}


def _outcome(severity: str, code: str, text: str) -> dict[str, Any]:
    return {"resourceType": "OperationOutcome", "issue": [{"severity": severity, "code": code, "diagnostics": text}]}


def _resource(rtype: str, pid: str, index: int, note: str = "") -> dict[str, Any]:
    ref = {"reference": f"Patient/{pid}"}
    resource: dict[str, Any] = {"resourceType": rtype, "id": f"{rtype.lower()}-{pid}-{index}"}
    if rtype == "ResearchSubject":
        resource.update({"status": "candidate", "individual": ref, "study": {"reference": "ResearchStudy/study-1"}})
    elif rtype == "FamilyMemberHistory":
        resource.update({"status": "completed", "patient": ref})
    else:
        resource["subject"] = ref
    if note:
        resource["note"] = [{"text": note}]
    return resource


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    opts: argparse.Namespace


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--token", required=True)
    parser.add_argument("--per-type", type=int, default=5)
    parser.add_argument("--page-size", type=int, default=2)
    parser.add_argument("--slow-s", type=float, default=20.0)
    opts = parser.parse_args(argv)
    server = _Server(("127.0.0.1", 0), _Handler)
    server.opts = opts
    print(f"PORT {server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


class FhirServer(ChildServer):
    """Start the mock FHIR server in a subprocess (context manager); ``base`` is its FHIR base URL."""

    def __init__(
        self,
        token: str = "fhir-access-token-0123456789",
        *,
        per_type: int = 5,
        page_size: int = 2,
        slow_s: float = 20.0,
        start_timeout_s: float = 15.0,
    ) -> None:
        super().__init__(start_timeout_s)
        self.token = token
        self._args = [
            "--token",
            token,
            "--per-type",
            str(per_type),
            "--page-size",
            str(page_size),
            "--slow-s",
            str(slow_s),
        ]

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}/fhir"

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path.lstrip('/')}"

    def __enter__(self) -> Self:
        self._start(
            [sys.executable, "-u", str(Path(__file__).resolve()), *self._args],
            subprocess.DEVNULL,
            lambda line: int(line.split()[1]) if line.startswith("PORT ") else None,
            "the mock FHIR server",
        )
        return self


if __name__ == "__main__":
    main()
