"""Benchmark of ``mdtflag batch``: 1 vs 2 workers, against the in-process evaluation rate, and a large Bulk export.

    python bench/cohort.py                      # 2,000 patients as one-bundle-per-line NDJSON, 2 rounds
    python bench/cohort.py -n 4000 --rounds 3
    python bench/cohort.py --bulk 1000000       # also: a synthetic Bulk export of 1,000,000 patients
    python bench/cohort.py --skip-scaling --bulk 100000 --keep /big/disk

Scaling. The same input (patients built from fhir_examples/ by bench/synth_bulk.py, ids made distinct) is
evaluated in this process (load + validate + evaluate + compact JSON + summary row, one patient after
another: the in-process rate), then by ``mdtflag batch --workers 1`` and ``--workers 2``, interleaved in
rounds so that a shared machine's changing load falls on all alike. The batch rate is patients over the
run's evaluation time from its manifest (from the first worker ready to the last result written; the
rule compilation at start-up is reported apart). Targets: 2 workers ≥ 1.8 × 1 worker, and
N workers ≥ 0.85 × N × the in-process rate.

Bulk. ``--bulk N`` writes a Bulk export of N patients and runs ``mdtflag batch --workers 2`` over it under
/usr/bin/time -v, sampling the resident memory of the whole process tree (parent, workers) every 0.5 s.

CPU time (user + system) is reported beside wall time everywhere. Figures go to standard output and
bench/results/cohort.json.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
AS_OF = "2026-11-01"


def in_process_rate(bundles: Path, limit: int) -> dict[str, Any]:
    from mdtflag.api import Evaluator
    from mdtflag.cohort.summary import csv_line, summary_row
    from mdtflag.fhir.load import load_bundle
    from mdtflag.output.render import to_json

    ev = Evaluator(ROOT / "rules")
    lines = bundles.read_bytes().splitlines()[:limit]
    for raw in lines[:50]:  # warm-up: validation caches, first imports
        ev.run(load_bundle(raw), AS_OF)
    gc.freeze()
    t0, c0 = time.perf_counter(), time.process_time()
    for i, raw in enumerate(lines):
        b = load_bundle(raw, name=f"x:{i}")
        res = ev.run(b, AS_OF)[0]
        to_json(res, indent=False)
        csv_line(summary_row(res, b.source))
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {
        "patients": len(lines),
        "wall_s": round(wall, 3),
        "cpu_s": round(cpu, 3),
        "cpu_ms_per_patient": round(1000 * cpu / len(lines), 3),
        "patients_per_s": round(len(lines) / wall, 1),
        "patients_per_cpu_s": round(len(lines) / cpu, 1),
    }


def run_batch(inputs: Path, workers: int, out: Path, extra: tuple[str, ...] = ()) -> dict[str, Any]:
    before = os.times()
    t0 = time.perf_counter()
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "mdtflag.cli",
            "batch",
            str(inputs),
            "--as-of",
            AS_OF,
            "--workers",
            str(workers),
            "-o",
            str(out),
            "--no-progress",
            *extra,
        ],
        cwd=ROOT,
        capture_output=True,
        check=False,
    )
    wall = time.perf_counter() - t0
    after = os.times()
    if r.returncode not in (0, 2):
        raise SystemExit(r.stderr.decode())
    m = json.loads(Path(str(out) + ".manifest.json").read_bytes())
    t = m["timing"]
    units = m["counts"]["results"] + m["counts"]["errors"]
    return {
        "workers": workers,
        "patients": units,
        "wall_s": round(wall, 3),
        "startup_s": t["startup_s"],
        "evaluation_s": t["evaluation_s"],
        "patients_per_s": round(units / t["evaluation_s"], 1),
        "cpu_all_s": round(
            (after.children_user + after.children_system) - (before.children_user + before.children_system), 3
        ),
        "cpu_parent_s": t["cpu_parent_s"],
        "cpu_workers_s": t["cpu_workers_s"],
        "cpu_workers_startup_s": t["cpu_workers_startup_s"],
        "worker_cpu_ms_per_patient": round(1000 * (t["cpu_workers_s"] - t["cpu_workers_startup_s"]) / max(1, units), 3),
        "parent_cpu_ms_per_patient": round(1000 * t["cpu_parent_s"] / max(1, units), 3),
    }


def scaling(n: int, rounds: int, work: Path) -> dict[str, Any]:
    data = work / "scaling"
    subprocess.run(
        [sys.executable, str(ROOT / "bench" / "synth_bulk.py"), str(data), "-n", str(n), "--bundles"], check=True
    )
    bundles = data / "bundles.ndjson"
    runs: dict[int, list[dict[str, Any]]] = {1: [], 2: []}
    inproc: list[dict[str, Any]] = []
    for r in range(rounds):
        inproc.append(in_process_rate(bundles, min(n, 1500)))
        print(f"round {r + 1}: in-process {inproc[-1]['patients_per_s']}/s", file=sys.stderr)
        for w in (1, 2) if r % 2 == 0 else (2, 1):
            got = run_batch(data, w, work / f"out-{w}.ndjson")
            runs[w].append(got)
            print(
                f"round {r + 1}: {w} worker(s) {got['patients_per_s']}/s "
                f"(evaluation {got['evaluation_s']} s, start-up {got['startup_s']} s, CPU {got['cpu_all_s']} s)",
                file=sys.stderr,
            )
    one = statistics.median(x["patients_per_s"] for x in runs[1])
    two = statistics.median(x["patients_per_s"] for x in runs[2])
    rate = statistics.median(x["patients_per_s"] for x in inproc)
    same_round = [b["patients_per_s"] / a["patients_per_s"] for a, b in zip(runs[1], runs[2])]
    return {
        "patients": n,
        "rounds": rounds,
        "in_process": inproc,
        "batch": runs,
        "median_patients_per_s": {"in_process": rate, "1_worker": one, "2_workers": two},
        "two_vs_one": round(two / one, 3),
        "two_vs_one_per_round": [round(x, 3) for x in same_round],
        "efficiency_1": round(one / rate, 3),
        "efficiency_2": round(two / (2 * rate), 3),
        "efficiency_2_per_round": [
            round(b["patients_per_s"] / (2 * i["patients_per_s"]), 3) for i, b in zip(inproc, runs[2])
        ],
    }


class TreeRSS(threading.Thread):
    """Peak of the summed resident memory of a process and all its descendants."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.peak = 0
        self.stop = False

    def _tree(self) -> list[int]:
        out, todo = [], [self.pid]
        while todo:
            p = todo.pop()
            out.append(p)
            try:
                with open(f"/proc/{p}/task/{p}/children") as fh:
                    todo.extend(int(x) for x in fh.read().split())
            except OSError:
                pass
        return out

    def run(self) -> None:
        while not self.stop:
            total = 0
            for p in self._tree():
                try:
                    with open(f"/proc/{p}/status") as fh:
                        m = re.search(r"VmRSS:\s+(\d+)", fh.read())
                    total += int(m.group(1)) if m else 0
                except OSError:
                    pass
            self.peak = max(self.peak, total)
            time.sleep(0.5)


def bulk(n: int, work: Path, workers: int) -> dict[str, Any]:
    data = work / "bulk"
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, str(ROOT / "bench" / "synth_bulk.py"), str(data), "-n", str(n), "--unassigned", "10"],
        check=True,
    )
    gen = time.perf_counter() - t0
    size = sum(f.stat().st_size for f in data.iterdir())
    out = work / "bulk.ndjson"
    t0 = time.perf_counter()
    before = os.times()
    proc = subprocess.Popen(
        [
            "/usr/bin/time",
            "-v",
            sys.executable,
            "-m",
            "mdtflag.cli",
            "batch",
            str(data),
            "--as-of",
            AS_OF,
            "--workers",
            str(workers),
            "-o",
            str(out),
            "--no-progress",
        ],
        cwd=ROOT,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
    )
    watch = TreeRSS(proc.pid)
    watch.start()
    _, err = proc.communicate()
    watch.stop = True
    wall = time.perf_counter() - t0
    after = os.times()
    text = err.decode(errors="replace")
    maxrss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
    m = json.loads(Path(str(out) + ".manifest.json").read_bytes())
    units = m["counts"]["results"] + m["counts"]["errors"]
    return {
        "patients": n,
        "export_mb": round(size / 1e6, 1),
        "generate_s": round(gen, 1),
        "wall_s": round(wall, 1),
        "patients_per_s": round(units / wall, 1),
        "cpu_s": round(
            (after.children_user + after.children_system) - (before.children_user + before.children_system), 1
        ),
        "peak_rss_tree_mb": round(watch.peak / 1024, 1),
        "max_rss_one_process_mb": round(int(maxrss.group(1)) / 1024, 1) if maxrss else None,
        "results_mb": round(out.stat().st_size / 1e6, 1),
        "counts": m["counts"],
        "timing": m["timing"],
        "exit": proc.returncode,
        "stderr_tail": text.strip().splitlines()[:4],
    }


def group_only(n: int, work: Path) -> dict[str, Any]:
    """Group a Bulk export of ``n`` patients by patient (both passes, one process, no evaluation)."""
    import resource

    from mdtflag.cohort import plan as plan_mod
    from mdtflag.cohort.worker import Config, Job, Worker

    data = work / "group-only"
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, str(ROOT / "bench" / "synth_bulk.py"), str(data), "-n", str(n), "--unassigned", "10"],
        check=True,
    )
    gen = time.perf_counter() - t0
    size = sum(f.stat().st_size for f in data.iterdir())
    spill_dir = work / "group-only-work"
    (spill_dir / "spill").mkdir(parents=True, exist_ok=True)
    (spill_dir / "parts").mkdir(parents=True, exist_ok=True)
    import datetime as dt

    worker = Worker(Config(str(ROOT / "rules"), None, dt.date(2026, 11, 1), "facts"))
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0, c0 = time.perf_counter(), time.process_time()
    items, exports = plan_mod.discover([str(data)])
    plan = plan_mod.make_plan(items, exports, str(spill_dir))
    t_plan = time.perf_counter() - t0
    lines = spilled = 0
    for i, task in enumerate(plan.tasks):
        if isinstance(task, plan_mod.SpillTask):
            st = worker.run(Job(i, 0, task, 0, None, str(spill_dir / "parts" / f"t{i}")), lambda u, e: None)
            lines += st["lines"]
            spilled += st["spilled"]
    t_spill = time.perf_counter() - t0
    patients = grouped = 0
    for task in plan.tasks:
        if isinstance(task, plan_mod.GroupTask):
            for unit in worker._group_units(task):
                patients += 1
                grouped += unit.lines
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    shutil.rmtree(spill_dir, ignore_errors=True)
    shutil.rmtree(data, ignore_errors=True)
    return {
        "patients_grouped": patients,
        "export_mb": round(size / 1e6, 1),
        "generate_s": round(gen, 1),
        "lines": lines,
        "lines_spilled": spilled,
        "lines_grouped": grouped,
        "buckets": sum(1 for t in plan.tasks if isinstance(t, plan_mod.GroupTask)),
        "spill_tasks": sum(1 for t in plan.tasks if isinstance(t, plan_mod.SpillTask)),
        "plan_s": round(t_plan, 1),
        "spill_s": round(t_spill - t_plan, 1),
        "group_s": round(wall - t_spill, 1),
        "wall_s": round(wall, 1),
        "cpu_s": round(cpu, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "rss_before_mb": round(rss0 / 1024, 1),
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=2000, help="patients for the scaling runs (default 2000)")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--bulk", type=int, default=0, help="also run a Bulk export of this many patients")
    ap.add_argument("--bulk-workers", type=int, default=2)
    ap.add_argument("--skip-scaling", action="store_true")
    ap.add_argument(
        "--group-only",
        type=int,
        default=0,
        help="also group a Bulk export of this many patients in one process, without evaluating",
    )
    ap.add_argument("--keep", type=Path, default=None, help="work folder (kept); default: a temporary one")
    a = ap.parse_args(argv)
    work = a.keep or Path(tempfile.mkdtemp(prefix="mdtflag-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"cpus": os.cpu_count(), "load_avg_start": os.getloadavg()}
    try:
        if not a.skip_scaling:
            report["scaling"] = scaling(a.n, a.rounds, work)
            s = report["scaling"]
            print(
                f"in-process {s['median_patients_per_s']['in_process']}/s; 1 worker "
                f"{s['median_patients_per_s']['1_worker']}/s; 2 workers {s['median_patients_per_s']['2_workers']}/s; "
                f"2 vs 1: {s['two_vs_one']}x (target ≥ 1.8); 2 workers vs 2 × in-process: {s['efficiency_2']} "
                f"(target ≥ 0.85)"
            )
        if a.bulk:
            report["bulk"] = b = bulk(a.bulk, work, a.bulk_workers)
            print(
                f"Bulk export of {b['patients']} patients ({b['export_mb']} MB): {b['wall_s']} s wall, "
                f"{b['patients_per_s']} patients/s, CPU {b['cpu_s']} s, peak memory of all processes "
                f"{b['peak_rss_tree_mb']} MB (largest process {b['max_rss_one_process_mb']} MB)"
            )
        if a.group_only:
            report["group_only"] = g = group_only(a.group_only, work)
            print(
                f"grouping only, {g['patients_grouped']} patients ({g['export_mb']} MB): {g['wall_s']} s wall "
                f"(spill {g['spill_s']} s, group {g['group_s']} s), CPU {g['cpu_s']} s, peak memory {g['peak_rss_mb']} MB"
            )
    finally:
        report["load_avg_end"] = os.getloadavg()
        out = ROOT / "bench" / "results" / "cohort.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=1) + "\n")
        if a.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
