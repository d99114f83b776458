"""Measure what token checking costs: the shared replay store and a whole ``Authenticator.verify``.

Not a test (no timing is asserted); run ``python tests/service_auth_replay_bench.py [--n N]`` from the
repository root. Prints wall and CPU microseconds per operation for:

* ``ReplayStore.first_use`` in one process, and in 1, 2 and 4 processes writing the same database at
  once (the service's workers share it);
* ``Authenticator.verify`` of an ES384 and an RS384 token (signature, claims and replay insert).
"""
from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from service_auth_keys import make_trust_setup

from mdtflag.service.auth import Authenticator, ReplayStore


def _inserts(directory: str, n: int, start: multiprocessing.synchronize.Event, out: multiprocessing.Queue[tuple[float, float]]) -> None:
    store = ReplayStore(Path(directory))
    prefix = uuid.uuid4().hex
    start.wait()
    wall, cpu = time.perf_counter(), time.process_time()
    for i in range(n):
        store.first_use("https://ehr.example", f"{prefix}-{i}", time.time() + 300)
    out.put((time.perf_counter() - wall, time.process_time() - cpu))
    store.close()


def replay_store(n: int, processes: int) -> tuple[float, float]:
    """Mean wall and CPU microseconds per insert with ``processes`` writers at once."""
    ctx = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory() as tmp:
        ReplayStore(Path(tmp)).close()
        start = ctx.Event()
        out: multiprocessing.Queue[tuple[float, float]] = ctx.Queue()
        procs = [ctx.Process(target=_inserts, args=(tmp, n, start, out)) for _ in range(processes)]
        for p in procs:
            p.start()
        time.sleep(1.0)
        start.set()
        results = [out.get(timeout=600) for _ in procs]
        for p in procs:
            p.join(timeout=60)
    wall = sum(r[0] for r in results) / (n * processes) * 1e6
    cpu = sum(r[1] for r in results) / (n * processes) * 1e6
    return wall, cpu


def verify_cost(alg: str, n: int) -> tuple[float, float]:
    aud = "https://cds.example.org/cds-services/mdtflag-patient-view"
    with tempfile.TemporaryDirectory() as tmp:
        setup = make_trust_setup(Path(tmp), alg=alg)
        auth = Authenticator.from_trust_file(setup.trust_file, setup.replay_dir)
        values = [setup.bearer(aud) for _ in range(n)]

        async def run() -> tuple[float, float]:
            wall, cpu = time.perf_counter(), time.process_time()
            for value in values:
                await auth.verify(value, aud)
            return (time.perf_counter() - wall) / n * 1e6, (time.process_time() - cpu) / n * 1e6

        return asyncio.run(run())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=5000, help="operations per process")
    args = parser.parse_args()
    print(f"{'measure':<44} {'wall us/op':>10} {'cpu us/op':>10}")
    for processes in (1, 2, 4):
        wall, cpu = replay_store(args.n, processes)
        print(f"{'ReplayStore.first_use, ' + str(processes) + ' process(es) at once':<44} {wall:>10.1f} {cpu:>10.1f}")
    for alg in ("ES384", "RS384"):
        wall, cpu = verify_cost(alg, max(1, args.n // 5))
        print(f"{'Authenticator.verify ' + alg:<44} {wall:>10.1f} {cpu:>10.1f}")


if __name__ == "__main__":
    main()
