"""Helpers for HTTP tests of ``mdtflag serve``: start the real server on a loopback port, call it,
and turn the shipped example bundles into CDS Hooks requests."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Callable, Optional, Union

from typing_extensions import Self

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "fhir_examples"
AS_OF = "2026-11-01"

#: resource type -> the discovery prefetch key that carries it
PREFETCH_KEY = {
    "Patient": "patient",
    "Condition": "conditions",
    "Observation": "observations",
    "DiagnosticReport": "diagnosticReports",
    "MedicationStatement": "medicationStatements",
    "MedicationRequest": "medicationRequests",
    "MedicationAdministration": "medicationAdministrations",
    "Procedure": "procedures",
    "ServiceRequest": "serviceRequests",
    "ResearchSubject": "researchSubjects",
    "ResearchStudy": "researchSubjects",
    "FamilyMemberHistory": "familyMemberHistories",
}


class ChildServer:
    """A helper server in a child process that prints the port it listens on; a context manager that
    stops it (terminate, then kill) on exit."""

    def __init__(self, start_timeout_s: float) -> None:
        self._start_timeout_s = start_timeout_s
        self._proc: subprocess.Popen[str] | None = None
        self.port = 0

    def _start(
        self, argv: list[str], stderr: Union[int, IO[str]], port_of: Callable[[str], Optional[int]], what: str
    ) -> None:
        """Start ``argv`` and read its output until ``port_of`` finds the port in a line."""
        self._proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=stderr, text=True)
        assert self._proc.stdout is not None
        deadline = time.monotonic() + self._start_timeout_s
        line = ""
        while time.monotonic() < deadline:
            line = self._proc.stdout.readline()
            port = port_of(line)
            if port is not None:
                self.port = port
                return
            if self._proc.poll() is not None:
                break
        self._stop()
        raise RuntimeError(f"{what} did not start: {line!r}")

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop()

    def _stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=10)
            if self._proc.stdout is not None:
                self._proc.stdout.close()
            self._proc = None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Server:
    """``python -m mdtflag.cli serve`` in a subprocess on 127.0.0.1 (context manager)."""

    def __init__(
        self,
        *args: str,
        workers: int = 1,
        start_timeout_s: float = 90.0,
        state_dir: Path | None = None,
        port: int | None = None,
    ) -> None:
        self.state_dir = state_dir  # MDTFLAG_STATE_DIR of the server (default: a fresh temporary folder)
        self.port = port or free_port()
        self.args = ["serve", "--host", "127.0.0.1", "--port", str(self.port), "--workers", str(workers), *args]
        self.start_timeout_s = start_timeout_s
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path: Path | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Self:
        import tempfile

        fd, name = tempfile.mkstemp(prefix="mdtflag-serve-", suffix=".log")
        os.close(fd)
        self.log_path = Path(name)
        if self.state_dir is None:
            self.state_dir = Path(tempfile.mkdtemp(prefix="mdtflag-state-"))
        env = {**os.environ, "MDTFLAG_STATE_DIR": str(self.state_dir)}
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "mdtflag.cli", *self.args],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}: {self.log()}")
            try:
                if self.call("GET", "/ready", timeout=2).status == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"server not ready within {self.start_timeout_s} s: {self.log()}")

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def stop(self, timeout: float = 30.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        code = self.proc.returncode
        self.proc = None
        return code

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path else ""

    def call(
        self,
        method: str,
        path: str,
        body: bytes | dict[str, Any] | list[Any] | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = 60.0,
    ) -> Reply:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode("utf-8")
            hdrs = dict(headers or {})
            if data is not None:
                hdrs.setdefault("Content-Type", "application/json")
            conn.request(method, path, body=data, headers=hdrs)
            resp = conn.getresponse()
            return Reply(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
        finally:
            conn.close()


def example_paths() -> list[Path]:
    return sorted(EXAMPLES.glob("[0-9][0-9]-*.json"))


def hook_request(
    bundle: dict[str, Any],
    *,
    hook: str = "patient-view",
    instance: str = "f4c1d7a2-0d7e-4f7b-9c55-1a2b3c4d5e6f",
    as_of: str | None = AS_OF,
    keys: list[str] | None = None,
) -> dict[str, Any]:
    """A CDS Hooks request whose prefetch carries every resource of ``bundle`` (searchset Bundles by key)."""
    from mdtflag.service.prefetch import PREFETCH_TEMPLATES

    patient = next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient")
    prefetch: dict[str, Any] = {
        k: {"resourceType": "Bundle", "type": "searchset", "entry": []} for k in PREFETCH_TEMPLATES if k != "patient"
    }
    prefetch["patient"] = patient
    for entry in bundle["entry"]:
        res = entry["resource"]
        key = PREFETCH_KEY[res["resourceType"]]
        if key != "patient":
            item = {"resource": res}
            if "fullUrl" in entry:
                item["fullUrl"] = entry["fullUrl"]
            prefetch[key]["entry"].append(item)
    req: dict[str, Any] = {
        "hook": hook,
        "hookInstance": instance,
        "context": {"userId": "Practitioner/pr-1", "patientId": patient["id"]},
        "prefetch": {k: v for k, v in prefetch.items() if keys is None or k in keys},
    }
    if as_of:
        req["extension"] = {"org.mdtflag.as_of": as_of}
    return req
