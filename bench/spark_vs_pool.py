"""Spark local mode beside the process pool, on the same synthetic cohort.

    python bench/spark_vs_pool.py [-n 3000] [--rounds 1] [--cores 2]

Builds N patient bundles from the shipped examples (patient i is example i mod 41 with its Patient id
suffixed ``-i``), one bundle per line in one NDJSON file, then runs, interleaved in each round:

* ``pool-1``: ``python -m mdtflag.cli batch FILE --workers 1``
* ``pool-2``: ``python -m mdtflag.cli batch FILE --workers 2``
* ``spark``:  a driver process with Spark ``local[CORES]``: ``spark.read.text`` → ``mdtflag.cohort.spark.evaluate_dataframe``
  (``mapInArrow``) → ``write.text``; the session start-up and the job are timed apart

Each run is a separate process tree. Wall time is measured around it; CPU time is the user + system
time of every process in the tree (the JVM and Spark's Python workers included), sampled from /proc
every 0.1 s (a process's last 0.1 s before it exits can be missed). The in-process evaluation rate
(``Evaluator`` over the same bundles, one process) is measured in the same run for reference. Every
engine's result lines are compared with the pool's (as sorted lists: Spark writes partitions).

Results: standard output and ``bench/results/spark_vs_pool.json``. The machine is shared: compare
figures from the same round, not across runs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this checkout's mdtflag
AS_OF = "2026-11-01"
TICK = os.sysconf("SC_CLK_TCK")


def make_cohort(n: int, out: Path) -> int:
    examples = sorted((ROOT / "fhir_examples").glob("*.json"))
    bundles = [orjson.loads(p.read_bytes()) for p in examples]
    size = 0
    with open(out, "wb") as fh:
        for i in range(n):
            b = bundles[i % len(bundles)]
            patient = next(e["resource"] for e in b["entry"] if e["resource"]["resourceType"] == "Patient")
            old = patient["id"]
            raw = orjson.dumps(b).replace(f'"Patient/{old}"'.encode(), f'"Patient/{old}-{i}"'.encode())
            raw = raw.replace(f'"id":"{old}"'.encode(), f'"id":"{old}-{i}"'.encode(), 1)
            fh.write(raw + b"\n")
            size += len(raw) + 1
    return size


# ----------------------------------------------------------------------------------------------- measuring


def _tree(root: int) -> list[int]:
    parent: dict[int, int] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat", "rb") as fh:
                    fields = fh.read().rsplit(b")", 1)[1].split()
                parent[int(d)] = int(fields[1])
            except (OSError, IndexError, ValueError):
                continue
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(c for c, pp in parent.items() if pp == p)
    return out


def _cpu(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime of the process itself
    except (OSError, IndexError, ValueError):
        return None


def run_measured(cmd: list[str], env: dict[str, str]) -> dict[str, Any]:
    """Run ``cmd``; wall seconds, CPU seconds of its process tree, and its standard output."""
    seen: dict[int, float] = {}  # pid -> the largest CPU time seen
    start = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            for pid in _tree(proc.pid):
                c = _cpu(pid)
                if c is not None:
                    seen[pid] = max(seen.get(pid, 0.0), c)
            done.wait(0.1)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    out, err = proc.communicate(timeout=3600)
    wall = time.monotonic() - start
    done.set()
    t.join()
    if proc.returncode not in (0, 2):
        raise SystemExit(f"{cmd[:4]} failed ({proc.returncode}):\n{err.decode(errors='replace')[-3000:]}")
    return {"wall_s": wall, "cpu_s": sum(seen.values()), "stdout": out.decode("utf-8", errors="replace")}


def in_process_rate(path: Path, limit: int) -> dict[str, float]:
    from mdtflag.api import Evaluator
    from mdtflag.fhir.load import load_bundle
    from mdtflag.output.render import to_json

    ev = Evaluator(ROOT / "rules")
    lines = path.read_bytes().splitlines()[:limit]
    ev.run(load_bundle(lines[0]), AS_OF)  # warm-up
    t0, c0 = time.perf_counter(), time.process_time()
    for raw in lines:
        to_json(ev.run(load_bundle(raw), AS_OF)[0], indent=False)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"patients": len(lines), "wall_s": wall, "cpu_s": cpu, "patients_per_s": len(lines) / wall}


# ----------------------------------------------------------------------------------------------- the Spark driver


def spark_driver(src: str, out: str, cores: int) -> None:
    """Run inside the measured driver process: prints one JSON line of timings."""
    t0 = time.monotonic()
    from pyspark.sql import SparkSession

    spark = (
        SparkSession.builder.master(f"local[{cores}]")
        .appName("mdtflag-bench")
        .config("spark.ui.enabled", "false")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.sql.files.maxPartitionBytes", str(max(1 << 20, os.path.getsize(src) // (4 * cores))))
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    t1 = time.monotonic()
    from mdtflag.cohort.spark import evaluate_dataframe

    df = spark.read.text(src).withColumnRenamed("value", "bundle")
    partitions = df.rdd.getNumPartitions()
    evaluate_dataframe(df, rules=ROOT / "rules", as_of=AS_OF).select("result").write.mode("overwrite").text(out)
    t2 = time.monotonic()
    spark.stop()
    print(json.dumps({"session_s": t1 - t0, "job_s": t2 - t1, "partitions": partitions}))


# ----------------------------------------------------------------------------------------------- main


def _lines_of(path: Path) -> list[bytes]:
    if path.is_dir():
        return sorted(line for f in sorted(path.glob("part-*")) for line in f.read_bytes().splitlines())
    return sorted(path.read_bytes().splitlines())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=3000, help="patients in the synthetic cohort")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--cores", type=int, default=2, help="Spark local[N] and the larger pool")
    ap.add_argument("--driver", nargs=2, metavar=("SRC", "OUT"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.driver:
        spark_driver(a.driver[0], a.driver[1], a.cores)
        return
    work = Path(tempfile.mkdtemp(prefix="mdtflag-spark-bench-"))
    env = {
        **os.environ,
        "PYSPARK_PYTHON": sys.executable,
        "PYTHONPATH": os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]),
    }
    try:
        src = work / "bundles.ndjson"
        size = make_cohort(a.n, src)
        print(f"cohort: {a.n} patients, {size / 1e6:.1f} MB, one bundle per line", flush=True)
        rounds: list[dict[str, Any]] = []
        reference: list[bytes] | None = None
        for r in range(a.rounds):
            got: dict[str, Any] = {}
            for name in ("pool-1", f"pool-{a.cores}", "spark"):
                out = work / f"{name}-{r}"
                if name == "spark":
                    cmd = [
                        sys.executable,
                        str(Path(__file__).resolve()),
                        "--driver",
                        str(src),
                        str(out),
                        "--cores",
                        str(a.cores),
                    ]
                else:
                    cmd = [
                        sys.executable,
                        "-m",
                        "mdtflag.cli",
                        "batch",
                        str(src),
                        "--as-of",
                        AS_OF,
                        "--workers",
                        name.split("-")[1],
                        "-o",
                        str(out),
                    ]
                m = run_measured(cmd, env)
                lines = _lines_of(out)
                reference = reference if reference is not None else lines
                m["patients"] = len(lines)
                m["same_lines_as_pool_1"] = lines == reference
                m["patients_per_s"] = len(lines) / m["wall_s"]
                m["cpu_ms_per_patient"] = 1000 * m["cpu_s"] / max(1, len(lines))
                if name == "spark":
                    timing = json.loads(m["stdout"].strip().splitlines()[-1])
                    m.update(
                        session_s=timing["session_s"],
                        job_s=timing["job_s"],
                        partitions=timing["partitions"],
                        job_patients_per_s=len(lines) / timing["job_s"],
                    )
                m.pop("stdout")
                got[name] = m
                shutil.rmtree(out, ignore_errors=True) if out.is_dir() else out.unlink(missing_ok=True)
                extra = (
                    f"  (session {m['session_s']:.1f} s, job {m['job_s']:.1f} s = {m['job_patients_per_s']:.0f}/s)"
                    if name == "spark"
                    else ""
                )
                print(
                    f"round {r + 1} {name:8s} wall {m['wall_s']:7.1f} s  {m['patients_per_s']:6.0f} patients/s  "
                    f"CPU {m['cpu_s']:7.1f} s ({m['cpu_ms_per_patient']:.2f} ms/patient)  "
                    f"identical={m['same_lines_as_pool_1']}{extra}",
                    flush=True,
                )
            rounds.append(got)
        ip = in_process_rate(src, min(a.n, 1000))
        print(
            f"in process: {ip['patients_per_s']:.0f} patients/s ({1000 * ip['cpu_s'] / ip['patients']:.2f} ms CPU per patient)"
        )
        result = {
            "patients": a.n,
            "cohort_mb": size / 1e6,
            "cores": a.cores,
            "as_of": AS_OF,
            "cpus_online": os.cpu_count(),
            "loadavg_at_end": os.getloadavg(),
            "rounds": rounds,
            "in_process": ip,
            "python": sys.version.split()[0],
        }
        try:
            import pyspark

            result["pyspark"] = pyspark.__version__
        except ImportError:
            pass
        dest = ROOT / "bench" / "results" / "spark_vs_pool.json"
        dest.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        print(f"written: {dest.relative_to(ROOT)}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
