"""Benchmark: per-patient latency, throughput and memory of the full pipeline, against the floor.

    python bench/bench.py                 # typical + large bundles, default and no-validation modes
    python bench/bench.py --soak 100000   # also: resident memory over 100,000 evaluations in one process

Typical bundles are the shipped examples (fhir_examples/*.json, 20–60 resources); large bundles are
made from them by adding lab, ECOG and medication resources up to 500 resources. The floor is
measured in the same run on the same patients: JSON parse (orjson) + durable-rules assert/drain of the
patient's encoded facts, nothing else. Figures go to stdout and bench/results/latest.json.
"""
from __future__ import annotations

import argparse
import copy
import gc
import json
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mdtflag import __version__  # noqa: E402
from mdtflag.api import Evaluator  # noqa: E402
from mdtflag.load import load_bundle  # noqa: E402
from mdtflag.render import to_json  # noqa: E402

AS_OF = "2026-11-01"


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def typical_bundles() -> list[bytes]:
    files = sorted((ROOT / "fhir_examples").glob("*.json"))
    out = []
    for p in files:
        data = json.loads(p.read_bytes())
        if data.get("resourceType") == "Bundle":
            out.append(p.read_bytes())
    if not out:
        raise SystemExit("no bundles in fhir_examples/")
    return out


def enlarge(raw: bytes, size: int = 500) -> bytes:
    """A bundle grown to `size` resources with extra labs, ECOG and medications (distinct ids, dated)."""
    b = json.loads(raw)
    entries = b["entry"]
    pid = next(e["resource"]["id"] for e in entries if e["resource"]["resourceType"] == "Patient")
    templates = [
        {"resourceType": "Observation", "status": "final", "code": {"coding": [{"system": "http://loinc.org", "code": "718-7"}]},
         "valueQuantity": {"value": 120, "unit": "g/L", "system": "http://unitsofmeasure.org", "code": "g/L"},
         "referenceRange": [{"high": {"value": 150, "unit": "g/L", "system": "http://unitsofmeasure.org", "code": "g/L"}}]},
        {"resourceType": "Observation", "status": "final", "code": {"coding": [{"system": "http://loinc.org", "code": "89247-1"}]}, "valueInteger": 1},
        {"resourceType": "MedicationStatement", "status": "completed",
         "medicationCodeableConcept": {"coding": [{"system": "http://www.whocc.no/atc", "code": "L01BC02"}]}},
    ]
    i = 0
    while len(entries) < size:
        r = copy.deepcopy(templates[i % len(templates)])
        r["id"] = f"bench-{i}"
        r["subject"] = {"reference": f"Patient/{pid}"}
        day = f"2024-{1 + i % 12:02d}-{1 + i % 28:02d}"
        if r["resourceType"] == "Observation":
            r["effectiveDateTime"] = day
        else:
            r["effectivePeriod"] = {"start": day, "end": day}
        entries.append({"fullUrl": f"urn:uuid:00000000-0000-0000-0000-{i:012d}", "resource": r})
        i += 1
    return orjson.dumps(b)


def timeit(fn: Callable[[bytes], Any], inputs: list[bytes], n: int) -> list[float]:
    times = []
    for k in range(n):
        raw = inputs[k % len(inputs)]
        t = time.perf_counter()
        fn(raw)
        times.append((time.perf_counter() - t) * 1000)
    return times


def summary(times: list[float]) -> dict[str, float]:
    s = sorted(times)
    return {"n": len(s), "median_ms": round(statistics.median(s), 4), "p99_ms": round(s[int(len(s) * 0.99) - 1], 4),
            "mean_ms": round(statistics.fmean(s), 4), "patients_per_s": round(1000 / statistics.fmean(s), 1)}


def floor_fn(ev: Evaluator, inputs: list[bytes]) -> tuple[Callable[[bytes], Any], list[bytes]]:
    """JSON parse + durable-rules assert of the patient's already-encoded facts (the engine alone)."""
    crs = ev.compiled()
    sent = crs.sent_fields
    payloads: dict[bytes, list[dict[str, Any]]] = {}
    for raw in inputs:
        fs = ev.facts(load_bundle(raw, validate="none"), __import__("datetime").date.fromisoformat(AS_OF))
        enc = [f.engine_fields() for f in fs.facts]
        payloads[raw] = [{k: v for k, v in e.items() if k == "kind" or k in sent.get(e["kind"], ())} for e in enc]

    def run(raw: bytes) -> None:
        orjson.loads(raw)
        crs.engine.match(payloads[raw])

    return run, inputs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rules", default=str(ROOT / "rules"))
    ap.add_argument("-n", type=int, default=3000, help="evaluations per typical measurement")
    ap.add_argument("--n-large", type=int, default=200, help="evaluations per large measurement")
    ap.add_argument("--soak", type=int, default=0, help="evaluations in the memory soak (0: skip)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "latest.json"))
    args = ap.parse_args()

    t0 = time.perf_counter()
    ev = Evaluator(args.rules)
    load_ms = (time.perf_counter() - t0) * 1000
    crs = ev.compiled()
    typical = typical_bundles()
    large = [enlarge(raw) for raw in typical[:5]]
    sizes = [len(json.loads(r)["entry"]) for r in typical]
    gc.freeze()

    def e2e(mode: str) -> Callable[[bytes], Any]:
        def run(raw: bytes) -> bytes:
            return to_json(ev.evaluate(raw, as_of=AS_OF, validate=mode))  # type: ignore[arg-type]
        return run

    report: dict[str, Any] = {
        "mdtflag": __version__, "python": platform.python_version(), "machine": platform.machine(),
        "rules": {"name": crs.ruleset.name, "version": crs.ruleset.version, "rules": len(crs.rules), "atoms": len(crs.atoms),
                  "load_and_compile_ms": round(load_ms, 1)},
        "typical_bundles": {"count": len(typical), "resources_min": min(sizes), "resources_max": max(sizes)},
        "large_bundles": {"count": len(large), "resources": 500},
        "results": {},
    }
    for label, inputs, n in (("typical", typical, args.n), ("large", large, args.n_large)):
        floor, _ = floor_fn(ev, inputs)
        timeit(floor, inputs, min(n, 200))  # warm-up
        res = {"floor (parse + engine)": summary(timeit(floor, inputs, n))}
        for mode in ("none", "facts"):
            fn = e2e(mode)
            timeit(fn, inputs, min(n, 50))
            res[f"end-to-end, validate={mode}"] = summary(timeit(fn, inputs, n))
        fl = res["floor (parse + engine)"]["median_ms"]
        for k, v in res.items():
            v["x_floor_median"] = round(v["median_ms"] / fl, 2) if fl else None
        report["results"][label] = res

    if args.soak:
        fn = e2e("facts")
        marks = []
        for k in range(args.soak):
            fn(typical[k % len(typical)])
            if (k + 1) % max(1, args.soak // 10) == 0:
                gc.collect()
                marks.append({"evaluations": k + 1, "rss_mb": round(rss_mb(), 1)})
        base = marks[0]["rss_mb"]
        report["memory_soak"] = {"evaluations": args.soak, "samples": marks,
                                 "change_after_first_sample_pct": round((marks[-1]["rss_mb"] - base) / base * 100, 2),
                                 "max_deviation_pct": round(max(abs(m["rss_mb"] - base) for m in marks) / base * 100, 2)}

    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"rules: {report['rules']}")
    print(f"typical bundles: {report['typical_bundles']}")
    print("| bundles | measurement | median ms | p99 ms | patients/s | × floor (median) |")
    print("|---|---|---|---|---|---|")
    for label, res in report["results"].items():
        for k, v in res.items():
            print(f"| {label} | {k} | {v['median_ms']} | {v['p99_ms']} | {v['patients_per_s']} | {v['x_floor_median']} |")
    if "memory_soak" in report:
        m = report["memory_soak"]
        print(f"memory: {m['samples'][0]['rss_mb']} MB after {m['samples'][0]['evaluations']} → {m['samples'][-1]['rss_mb']} MB after "
              f"{m['evaluations']} evaluations (change {m['change_after_first_sample_pct']}%, max deviation {m['max_deviation_pct']}%)")


if __name__ == "__main__":
    main()
