"""Load test of ``mdtflag serve`` on loopback (a measurement, not a test).

Starts the service (granian by default; ``--server uvicorn`` for comparison, needs ``pip install
uvicorn``), measures in-process evaluation of the same request bodies in this process, then runs
N concurrent keep-alive clients for ``--seconds`` each (N = 2 per worker, and 32 by default) and
reports requests per second, latency percentiles, errors, the CPU time of the server processes and
of the load generator, and the load average (the machine may be shared). ``--soak N`` sends N more
requests and samples the workers' resident memory as it goes.

    python bench/service.py --workers 2 --seconds 12 --soak 100000 -o bench/results/service.json
    python bench/service.py --auth RS384        # every request carries a fresh signed token (needs wrk)
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
AS_OF = "2026-11-01"
CLK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bodies() -> list[bytes]:
    return [p.read_bytes() for p in sorted((ROOT / "fhir_examples").glob("[0-9][0-9]-*.json"))]


def ideal_server(
    per_body_ms: list[float], workers: int, clients: int, requests: int = 50_000, spread: list[float] | None = None
) -> dict[str, float]:
    """Latency percentiles of an ideal server: no cost beyond the in-process evaluation, connections in
    equal shares per worker, each worker first come first served, clients that send their next request
    the moment an answer arrives, bodies in turn as the load generator sends them. The floor the
    measured percentiles can be held against. With ``spread`` (in-process timings over their body's
    median), each evaluation takes its body's median times a ratio drawn from it (seeded): the same
    ideal server on a machine whose repeated evaluations of one body vary as they did here."""
    import heapq
    import random

    draw = random.Random(0).choice
    free = [0.0] * workers  # when each worker next becomes free
    ready = [(0.0, k) for k in range(clients)]  # (time the client sends, client)
    heapq.heapify(ready)
    lat: list[float] = []
    n = 0
    while len(lat) < requests:
        t, k = heapq.heappop(ready)
        w = k % workers
        start = max(t, free[w])
        free[w] = start + per_body_ms[n % len(per_body_ms)] * (draw(spread) if spread else 1.0)
        n += 1
        lat.append(free[w] - t)
        heapq.heappush(ready, (free[w], k))
    lat.sort()
    return {
        "clients": clients,
        "p50_ms": round(lat[len(lat) // 2], 2),
        "p99_ms": round(lat[int(len(lat) * 0.99)], 2),
        "p99_over_p50": round(lat[int(len(lat) * 0.99)] / lat[len(lat) // 2], 2),
        "p99_over_in_process_median": round(lat[int(len(lat) * 0.99)] / statistics.median(per_body_ms), 2),
    }


def in_process(data: list[bytes], rounds: int, spread: list[float] | None = None) -> dict[str, float]:
    """Evaluation of the same bodies here, as a worker does it (bytes in, JSON bytes out). ``spread``, if
    given, receives every timing divided by the median of its body's timings."""
    from mdtflag.api import Evaluator
    from mdtflag.output.render import to_json

    ev = Evaluator()
    for body in data:
        to_json(ev.evaluate(body, as_of=AS_OF))
    gc.collect()
    gc.freeze()
    wall: list[float] = []
    cpu: list[float] = []
    for _ in range(rounds):
        for body in data:
            w0, c0 = time.perf_counter(), time.process_time()
            to_json(ev.evaluate(body, as_of=AS_OF))
            cpu.append(time.process_time() - c0)
            wall.append(time.perf_counter() - w0)
    gc.unfreeze()
    per_body = [statistics.median(wall[i :: len(data)]) for i in range(len(data))]
    if spread is not None:
        spread.extend(t / per_body[k % len(data)] for k, t in enumerate(wall))
    return {
        "per_body_median_ms": [round(x * 1000, 3) for x in per_body],
        "evaluations": len(wall),
        "wall_median_ms": statistics.median(wall) * 1000,
        "wall_mean_ms": statistics.fmean(wall) * 1000,
        "wall_p99_ms": sorted(wall)[int(len(wall) * 0.99)] * 1000,
        "cpu_mean_ms": statistics.fmean(cpu) * 1000,
        "rate_per_s": len(wall) / sum(wall),
    }


class Service:
    def __init__(
        self, server: str, workers: int, queue: int, trust: Path | None = None, max_connections: int | None = None
    ) -> None:
        self.server, self.workers, self.queue, self.trust = server, workers, queue, trust
        self.max_connections = max_connections
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.state = Path(tempfile.mkdtemp(prefix="mdtflag-bench-"))

    def start(self) -> None:
        env = dict(os.environ)
        if self.server == "granian":
            cmd = [
                sys.executable,
                "-m",
                "mdtflag.cli",
                "serve",
                *(
                    ["--trust", str(self.trust), "--replay-dir", str(self.state / "replay")]
                    if self.trust
                    else ["--insecure-no-auth"]
                ),
                "--port",
                str(self.port),
                "--workers",
                str(self.workers),
                "--queue",
                str(self.queue),
                *(["--max-connections", str(self.max_connections)] if self.max_connections else []),
            ]
        else:
            from mdtflag.service.config import ENV_CONFIG, ServiceConfig

            (self.state / "metrics").mkdir()
            env[ENV_CONFIG] = ServiceConfig(
                insecure_no_auth=True, queue=self.queue, public_url=f"http://127.0.0.1:{self.port}"
            ).to_env()
            env["PROMETHEUS_MULTIPROC_DIR"] = str(self.state / "metrics")
            cmd = [
                sys.executable,
                "-m",
                "uvicorn",
                "--factory",
                "mdtflag.service.app:worker_app",
                "--port",
                str(self.port),
                "--workers",
                str(self.workers),
                "--no-access-log",
                "--log-level",
                "warning",
            ]
        self.log = open(self.state / "server.log", "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + 120
        ready: set[int] = set()
        while time.monotonic() < deadline and len(ready) < self.workers:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
                    s.sendall(b"GET /ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    reply = s.recv(4096)
                    if b" 200 " in reply.split(b"\r\n", 1)[0]:
                        ready.add(json.loads(reply.split(b"\r\n\r\n", 1)[1])["pid"])
            except (OSError, ValueError, KeyError):
                time.sleep(0.3)
        time.sleep(1.0)

    def pids(self) -> list[int]:
        assert self.proc is not None
        pgid = os.getpgid(self.proc.pid)
        out = []
        for d in Path("/proc").iterdir():
            if d.name.isdigit():
                try:
                    if os.getpgid(int(d.name)) == pgid:
                        out.append(int(d.name))
                except OSError:
                    pass
        return out

    def cpu_s(self) -> float:
        total = 0.0
        for pid in self.pids():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / CLK
            except OSError:
                pass
        return total

    def connections(self) -> list[int]:
        """Established client connections held by each process of the server, most first (workers that
        hold none are left out)."""
        wanted = f":{self.port:04X}"
        established: set[str] = set()
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            try:
                lines = Path(table).read_text().splitlines()[1:]
            except OSError:
                continue
            for line in lines:
                f = line.split()
                if f[1].endswith(wanted) and f[3] == "01":  # local address on our port, ESTABLISHED
                    established.add(f[9])  # inode
        counts = []
        for pid in self.pids():
            n = 0
            try:
                for fd in Path(f"/proc/{pid}/fd").iterdir():
                    target = os.readlink(fd)
                    if target.startswith("socket:[") and target[8:-1] in established:
                        n += 1
            except OSError:
                continue
            if n:
                counts.append(n)
        return sorted(counts, reverse=True)

    def evaluations(self) -> tuple[float, float]:
        """(seconds, count) of the workers' own evaluation histogram (``/metrics``, summed over workers)."""
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=10) as r:
            text = r.read().decode()
        got = {"sum": 0.0, "count": 0.0}
        for line in text.splitlines():
            for k in got:
                if line.startswith(f"mdtflag_evaluation_seconds_{k} "):
                    got[k] = float(line.split()[1])
        return got["sum"], got["count"]

    def rss_mb(self) -> dict[int, float]:
        out = {}
        for pid in self.pids():
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        out[pid] = int(line.split()[1]) / 1024
            except OSError:
                pass
        return out

    def stop(self) -> None:
        if self.proc is not None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc = None
            self.log.close()


async def client(
    port: int,
    data: list[bytes],
    offset: int,
    stop_at: float,
    lat: list[float],
    errors: dict[str, int],
    budget: list[int] | None = None,
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    i = offset
    try:
        while time.perf_counter() < stop_at:
            if budget is not None:
                if budget[0] <= 0:
                    break
                budget[0] -= 1
            body = data[i % len(data)]
            i += 1
            head = (
                f"POST /evaluate?as_of={AS_OF} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n"
            ).encode()
            t0 = time.perf_counter()
            writer.write(head + body)
            status_line = await reader.readline()
            length = 0
            while True:
                line = await reader.readline()
                if line in (b"\r\n", b""):
                    break
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            await reader.readexactly(length)
            lat.append(time.perf_counter() - t0)
            status = status_line.split(b" ", 2)[1].decode() if status_line else "closed"
            if status != "200":
                errors[status] = errors.get(status, 0) + 1
                if status == "closed":
                    break
    finally:
        writer.close()


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(len(s) * q))] * 1000 if s else float("nan")


async def load(svc: Service, data: list[bytes], clients: int, seconds: float, warmup: float) -> dict[str, Any]:
    warm: list[float] = []
    await asyncio.gather(
        *(client(svc.port, data, k * 7, time.perf_counter() + warmup, warm, {}) for k in range(clients))
    )
    lat: list[float] = []
    errors: dict[str, int] = {}
    cpu0, gen0, load0, ev0 = svc.cpu_s(), time.process_time(), os.getloadavg()[0], svc.evaluations()
    t0 = time.perf_counter()
    await asyncio.gather(*(client(svc.port, data, k * 7, t0 + seconds, lat, errors) for k in range(clients)))
    elapsed = time.perf_counter() - t0
    ev1 = svc.evaluations()
    return {
        "clients": clients,
        "seconds": round(elapsed, 2),
        "requests": len(lat),
        "errors": errors,
        "req_per_s": round(len(lat) / elapsed, 1),
        "p50_ms": round(pct(lat, 0.50), 2),
        "p90_ms": round(pct(lat, 0.90), 2),
        "p99_ms": round(pct(lat, 0.99), 2),
        "max_ms": round(max(lat) * 1000, 2),
        "server_cpu_s": round(svc.cpu_s() - cpu0, 2),
        "server_cpu_ms_per_req": round((svc.cpu_s() - cpu0) / max(1, len(lat)) * 1000, 3),
        "loadgen_cpu_s": round(time.process_time() - gen0, 2),
        "loadavg_1m_before": round(load0, 2),
        "loadavg_1m_after": round(os.getloadavg()[0], 2),
        **_in_server(ev0, ev1),
    }


WRK_SCRIPT = r"""
-- POST /evaluate with the example bodies in turn; prints one JSON line of latency percentiles at the end
local bodies = {}
local n = 0
local list = os.getenv("MDTFLAG_BENCH_BODIES")
for path in io.lines(list) do
  local f = io.open(path, "rb")
  bodies[#bodies + 1] = f:read("*a")
  f:close()
end
local tokens = {}
local token_list = os.getenv("MDTFLAG_BENCH_TOKENS")
if token_list and token_list ~= "" then
  for t in io.lines(token_list) do tokens[#tokens + 1] = t end
end
request = function()
  n = n + 1
  local body = bodies[(n % #bodies) + 1]
  local headers = {["Content-Type"] = "application/json"}
  if #tokens > 0 then headers["Authorization"] = "Bearer " .. tokens[((n - 1) % #tokens) + 1] end
  return wrk.format("POST", "/evaluate?as_of=2026-11-01", headers, body)
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d, ' ..
    '"non_2xx": %d, "connect_errors": %d, "read_errors": %d, "timeouts": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, e.status, e.connect, e.read, e.timeout))
end
"""


def mint_tokens(setup: Any, audience: str, count: int, path: Path) -> None:
    """``count`` valid tokens (each ``jti`` used once: a replay would be refused) for one endpoint."""
    with path.open("w") as f:
        for _ in range(count):
            f.write(setup.token(audience, lifetime_s=3600) + "\n")


def load_wrk(
    svc: Service, clients: int, seconds: float, warmup: float, tokens: tuple[Any, int] | None = None
) -> dict[str, Any]:
    """The same load from ``wrk`` (a C load generator, one thread): it needs far less CPU than the asyncio
    clients, which matters on a machine with as many cores as server workers."""
    script = svc.state / "evaluate.lua"
    script.write_text(WRK_SCRIPT)
    listing = svc.state / "bodies.txt"
    listing.write_text("".join(f"{p}\n" for p in sorted((ROOT / "fhir_examples").glob("[0-9][0-9]-*.json"))))
    env = {**os.environ, "MDTFLAG_BENCH_BODIES": str(listing)}
    url = f"http://127.0.0.1:{svc.port}"
    token_file = svc.state / "tokens.txt"

    def run(secs: float) -> tuple[dict[str, Any], float]:
        if tokens is not None:  # fresh tokens for every run: none is ever replayed
            setup, per_second = tokens
            mint_tokens(setup, f"{url}/evaluate", int(per_second * (secs + 2)) + 100, token_file)
            env["MDTFLAG_BENCH_TOKENS"] = str(token_file)
        g0 = os.times()
        proc = subprocess.Popen(
            ["wrk", "-t1", f"-c{clients}", f"-d{max(1, round(secs))}s", "--timeout", "30s", "-s", str(script), url],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        time.sleep(min(2.0, secs / 2))
        spread = svc.connections()
        out, _ = proc.communicate()
        if proc.returncode:
            raise RuntimeError(f"wrk failed with exit code {proc.returncode}")
        g1 = os.times()
        line = next(x for x in out.splitlines() if x.startswith("{"))
        got = json.loads(line)
        got["spread"] = spread
        return got, (g1.children_user - g0.children_user) + (g1.children_system - g0.children_system)

    run(warmup)
    cpu0, load0, ev0 = svc.cpu_s(), os.getloadavg()[0], svc.evaluations()
    got, gen_cpu = run(seconds)
    ev1 = svc.evaluations()
    elapsed = got["duration_us"] / 1e6
    done = got["requests"]
    errors = {k: got[k] for k in ("non_2xx", "connect_errors", "read_errors", "timeouts") if got[k]}
    return {
        "generator": "wrk",
        "auth": "none" if tokens is None else tokens[0].key.alg,
        "clients": clients,
        "max_connections": svc.max_connections,
        "connections_per_worker": got["spread"],
        "seconds": round(elapsed, 2),
        "requests": done,
        "errors": errors,
        "req_per_s": round(done / elapsed, 1),
        "p50_ms": round(got["p50_us"] / 1000, 2),
        "p90_ms": round(got["p90_us"] / 1000, 2),
        "p99_ms": round(got["p99_us"] / 1000, 2),
        "max_ms": round(got["max_us"] / 1000, 2),
        "server_cpu_s": round(svc.cpu_s() - cpu0, 2),
        "server_cpu_ms_per_req": round((svc.cpu_s() - cpu0) / max(1, done) * 1000, 3),
        "loadgen_cpu_s": round(gen_cpu, 2),
        "loadavg_1m_before": round(load0, 2),
        "loadavg_1m_after": round(os.getloadavg()[0], 2),
        **_in_server(ev0, ev1),
    }


def _in_server(before: tuple[float, float], after: tuple[float, float]) -> dict[str, float]:
    """The mean time of one evaluation inside the workers during the run (their own histogram)."""
    n = after[1] - before[1]
    return {
        "evaluations_in_server": n,
        "evaluation_in_server_mean_ms": round((after[0] - before[0]) / n * 1000, 3) if n else 0.0,
    }


async def soak(svc: Service, data: list[bytes], clients: int, total: int, samples: int) -> dict[str, Any]:
    per = total // samples
    rss: list[dict[str, Any]] = [{"requests": 0, "rss_mb": svc.rss_mb()}]
    done = 0
    lat: list[float] = []
    errors: dict[str, int] = {}
    t0 = time.perf_counter()
    for _ in range(samples):
        budget = [per]
        await asyncio.gather(
            *(client(svc.port, data, k * 7, float("inf"), lat, errors, budget) for k in range(clients))
        )
        done += per
        rss.append({"requests": done, "rss_mb": svc.rss_mb()})
    workers = [p for p in rss[-1]["rss_mb"] if p in rss[1]["rss_mb"]]
    return {
        "requests": done,
        "seconds": round(time.perf_counter() - t0, 1),
        "errors": errors,
        "p50_ms": round(pct(lat, 0.5), 2),
        "p99_ms": round(pct(lat, 0.99), 2),
        "samples": rss,
        "growth_after_first_sample_mb": {str(p): round(rss[-1]["rss_mb"][p] - rss[1]["rss_mb"][p], 1) for p in workers},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--server", choices=["granian", "uvicorn"], default="granian")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--clients", type=int, nargs="*", default=None, help="client counts (default: 2 per worker, 32)")
    ap.add_argument("--seconds", type=float, default=12.0)
    ap.add_argument("--warmup", type=float, default=2.0)
    ap.add_argument("--queue", type=int, default=64)
    ap.add_argument("--soak", type=int, default=0, help="requests for the memory soak (0: none)")
    ap.add_argument("--rounds", type=int, default=20, help="in-process rounds over the example bodies")
    ap.add_argument(
        "--generator",
        choices=["asyncio", "wrk"],
        default="wrk" if shutil.which("wrk") else "asyncio",
        help="load generator: wrk (C, little CPU; the default when installed) or Python asyncio clients",
    )
    ap.add_argument(
        "--auth",
        choices=["none", "RS384", "ES384"],
        default="none",
        help="send a fresh signed token with every request (wrk only); the server checks it, as in production",
    )
    ap.add_argument(
        "--cap",
        choices=["none", "clients", "both"],
        default="both",
        help="serve with no connection cap, with --max-connections equal to the run's client count "
        "(the workers then hold equal shares), or both (default)",
    )
    ap.add_argument("--max-rate", type=float, default=400.0, help="tokens minted per second of load (with --auth)")
    ap.add_argument("-o", "--output", default=None)
    args = ap.parse_args()
    if args.auth != "none" and args.generator != "wrk":
        ap.error("--auth needs --generator wrk")
    clients = args.clients or [2 * args.workers, 32]
    data = bodies()
    spread: list[float] = []
    report: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "loadavg_at_start": os.getloadavg(),
        },
        "server": args.server,
        "workers": args.workers,
        "bodies": len(data),
        "endpoint": "POST /evaluate",
        "generator": args.generator,
        "in_process_before": in_process(data, args.rounds, spread),
    }
    setup = None
    if args.auth != "none":
        sys.path.insert(0, str(ROOT / "tests"))
        from service_auth_keys import make_trust_setup  # the tests' key and trust-file helpers

        setup = make_trust_setup(Path(tempfile.mkdtemp(prefix="mdtflag-bench-trust-")), alg=args.auth)
    report["auth"] = args.auth
    trust = setup.trust_file if setup else None
    tokens = (setup, args.max_rate) if setup else None

    def measure(svc: Service, n: int) -> dict[str, Any]:
        # the machine's speed drifts over minutes: the in-process reference of a run is measured just before it
        near = in_process(data, max(2, args.rounds // 2))
        if args.generator == "wrk":
            got = load_wrk(svc, n, args.seconds, args.warmup, tokens)
        else:
            got = asyncio.run(load(svc, data, n, args.seconds, args.warmup))
        got["in_process_just_before"] = {
            k: near[k] for k in ("wall_median_ms", "wall_mean_ms", "cpu_mean_ms", "rate_per_s")
        }
        return got

    report["runs"] = []
    if args.cap in ("none", "both"):
        svc = Service(args.server, args.workers, args.queue, trust)
        try:
            svc.start()
            report["runs"] += [measure(svc, n) for n in clients]
            if args.soak:
                report["soak"] = asyncio.run(soak(svc, data, 2 * args.workers, args.soak, 10))
        finally:
            svc.stop()
    if args.cap in ("clients", "both"):
        if args.server != "granian":
            ap.error("--cap clients needs --server granian")
        for n in clients:
            svc = Service(args.server, args.workers, args.queue, trust, max_connections=n)
            try:
                svc.start()
                report["runs"].append(measure(svc, n))
            finally:
                svc.stop()
    report["in_process_after"] = in_process(data, args.rounds)
    base = min(report["in_process_before"]["rate_per_s"], report["in_process_after"]["rate_per_s"])
    median = max(report["in_process_before"]["wall_median_ms"], report["in_process_after"]["wall_median_ms"])
    cpu = min(report["in_process_before"]["cpu_mean_ms"], report["in_process_after"]["cpu_mean_ms"])
    checks = []
    for run in report["runs"]:
        n = run["clients"]
        near = run["in_process_just_before"]
        in_server = run["evaluation_in_server_mean_ms"]
        checks.append(
            {
                "clients": n,
                "max_connections": run.get("max_connections"),
                "connections_per_worker": run.get("connections_per_worker"),
                # against the slower of the in-process measurements before and after all runs
                "throughput_vs_workers_x_in_process": round(run["req_per_s"] / (args.workers * base), 3),
                # against the in-process measurement just before this run
                "throughput_vs_workers_x_in_process_just_before": round(
                    run["req_per_s"] / (args.workers * near["rate_per_s"]), 3
                ),
                # against the workers' own evaluation time during this run: what the server adds to evaluating
                "throughput_vs_workers_x_evaluation_in_server": round(
                    run["req_per_s"] * in_server / (args.workers * 1000), 3
                )
                if in_server
                else 0.0,
                "p99_over_p50": round(run["p99_ms"] / run["p50_ms"], 2),
                "p99_over_in_process_median": round(run["p99_ms"] / median, 2),
                "p99_over_in_process_median_just_before": round(run["p99_ms"] / near["wall_median_ms"], 2),
                # CPU ratios do not depend on what else the machine runs
                "server_cpu_per_req_over_in_process_cpu": round(run["server_cpu_ms_per_req"] / cpu, 3),
                "server_cpu_per_req_over_in_process_cpu_just_before": round(
                    run["server_cpu_ms_per_req"] / near["cpu_mean_ms"], 3
                ),
                "evaluation_in_server_over_in_process_just_before": round(in_server / near["wall_mean_ms"], 3),
                "cpu_bound_capacity_req_per_s": round(args.workers * 1000 / run["server_cpu_ms_per_req"], 1),
            }
        )
    report["checks"] = checks
    per_body = report["in_process_before"]["per_body_median_ms"]
    report["ideal_server"] = [ideal_server(per_body, args.workers, n) for n in clients]
    report["ideal_server_with_measured_spread"] = [
        ideal_server(per_body, args.workers, n, spread=spread) for n in clients
    ]
    text = json.dumps(report, indent=2)
    print(text)
    if args.output:
        Path(args.output).write_text(text + "\n")


if __name__ == "__main__":
    main()
