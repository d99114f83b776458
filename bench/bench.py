"""Benchmark: per-patient latency, throughput and memory of the full pipeline, against the floor.

    python bench/bench.py                 # typical + large bundles, default and no-validation modes
    python bench/bench.py --soak 100000   # also: resident memory over 100,000 evaluations in one process

Typical bundles are the shipped examples (fhir_examples/*.json) grown with seeded history (earlier
labs, medications, vital signs, encounters) to 20–60 resources each; large bundles are grown to 500. The floor is
measured in the same run on the same patients: JSON parse (orjson) + durable-rules assert/drain of the
patient's encoded facts, nothing else. Every timing is taken in CPU time of the process and in wall-clock
time; the load average is recorded at the start and end. Figures go to stdout and bench/results/latest.json.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import os
import platform
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable, Optional

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mdtflag import __version__  # noqa: E402
from mdtflag.api import Evaluator  # noqa: E402
from mdtflag.evaluation import match as match_mod  # noqa: E402
from mdtflag.evaluation.decide import build_result  # noqa: E402
from mdtflag.fhir import fastvalid  # noqa: E402
from mdtflag.fhir.load import load_bundle  # noqa: E402
from mdtflag.output.render import to_json  # noqa: E402

AS_OF = "2026-11-01"


STAGES = (
    "load + validation (load.py)",
    "facts (facts.py)",
    "engine: encode + durable-rules (engine.py)",
    "criteria, three-valued (match.py)",
    "flags, reasons, decisions (decide.py)",
    "JSON (render.py)",
)


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def shipped_bundles() -> list[bytes]:
    files = sorted((ROOT / "fhir_examples").glob("*.json"))
    out = [p.read_bytes() for p in files if json.loads(p.read_bytes()).get("resourceType") == "Bundle"]
    if not out:
        raise SystemExit("no bundles in fhir_examples/")
    return out


# History that real oncology records carry next to the data the rules decide on: earlier lab panels,
# earlier ECOG scores, earlier and concomitant medication, vital signs and encounters. Values and dates
# vary per resource, so no two resources are the same.
_LABS = [
    ("718-7", "g/L", 90, 160, 150),
    ("1742-6", "U/L", 10, 90, 45),
    ("1920-8", "U/L", 10, 90, 35),
    ("1975-2", "umol/L", 3, 40, 22),
    ("2160-0", "umol/L", 40, 160, 90),
    ("26499-4", "10*9/L", 0.5, 9, None),
    ("777-3", "10*9/L", 60, 450, None),
]
_MEDS = ["L01BC02", "L01XA03", "C09AA05", "A02BC01", "N02BE01", "B01AC06", "H02AB04", "A04AA01"]


def _history(i: int, pid: str, rng: random.Random) -> dict[str, Any]:
    day = f"{rng.randint(2019, 2025)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    subject = {"reference": f"Patient/{pid}"}
    pick = i % 6
    if pick in (0, 1, 2):
        code, unit, lo, hi, high = _LABS[rng.randrange(len(_LABS))]
        q = {"value": round(rng.uniform(lo, hi), 1), "unit": unit, "system": "http://unitsofmeasure.org", "code": unit}
        r: dict[str, Any] = {
            "resourceType": "Observation",
            "status": "final",
            "category": [
                {
                    "coding": [
                        {"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory"}
                    ]
                }
            ],
            "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
            "subject": subject,
            "effectiveDateTime": day,
            "valueQuantity": q,
        }
        if high is not None:
            r["referenceRange"] = [{"high": {**q, "value": high}}]
        return r
    if pick == 3:
        return {
            "resourceType": "MedicationStatement",
            "status": rng.choice(["completed", "active"]),
            "medicationCodeableConcept": {"coding": [{"system": "http://www.whocc.no/atc", "code": rng.choice(_MEDS)}]},
            "subject": subject,
            "effectivePeriod": {"start": day},
        }
    if pick == 4:
        return {
            "resourceType": "Observation",
            "status": "final",
            "category": [
                {
                    "coding": [
                        {"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}
                    ]
                }
            ],
            "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
            "subject": subject,
            "effectiveDateTime": day,
            "valueQuantity": {
                "value": round(rng.uniform(45, 110), 1),
                "unit": "kg",
                "system": "http://unitsofmeasure.org",
                "code": "kg",
            },
        }
    return {
        "resourceType": "Encounter",
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "subject": subject,
        "period": {"start": day, "end": day},
    }


def grow(raw: bytes, size: int, seed: int) -> bytes:
    """The bundle with history resources added up to `size` entries (distinct ids, seeded values)."""
    rng = random.Random(seed)
    b = json.loads(raw)
    entries = b["entry"]
    pid = next(e["resource"]["id"] for e in entries if e["resource"]["resourceType"] == "Patient")
    i = 0
    while len(entries) < size:
        r = _history(i, pid, rng)
        r["id"] = f"{pid}-h{i}"
        entries.append({"fullUrl": f"urn:uuid:{seed:08x}-0000-4000-8000-{i:012x}", "resource": r})
        i += 1
    return orjson.dumps(b)


def typical_bundles() -> list[bytes]:
    """The shipped examples, each grown with history to a seeded size between 20 and 60 resources."""
    rng = random.Random(20261122)
    return [
        grow(raw, max(len(json.loads(raw)["entry"]), rng.randint(20, 60)), seed)
        for seed, raw in enumerate(shipped_bundles())
    ]


def enlarge(raw: bytes, size: int = 500) -> bytes:
    """A bundle grown to `size` resources with history (labs, ECOG-free vital signs, medications, encounters)."""
    return grow(raw, size, 10_000 + len(raw))


def interleaved(
    cases: list[tuple[str, Callable[[bytes], Any], Optional[Callable[[], Any]]]], inputs: list[bytes], n: int
) -> dict[str, tuple[list[float], list[float]]]:
    """Per case, `n` timings in ms as (CPU time of this process, wall-clock); case after case on each input."""
    times: dict[str, tuple[list[float], list[float]]] = {label: ([], []) for label, _, _ in cases}
    cpu, wall = time.process_time, time.perf_counter
    for k in range(n):
        raw = inputs[k % len(inputs)]
        for label, fn, before in cases:
            if before is not None:
                before()
            c, t = cpu(), wall()
            fn(raw)
            t2, c2 = wall(), cpu()
            got = times[label]
            got[0].append((c2 - c) * 1000)
            got[1].append((t2 - t) * 1000)
    return times


def _p99(sorted_values: list[float]) -> float:
    return sorted_values[max(0, int(len(sorted_values) * 0.99) - 1)]


def own_median_p99(times: list[float], patients: int) -> float:
    """The 99th percentile of every timing divided by the median of the same patient's timings.

    Timing ``k`` is of patient ``k % patients`` (the order :func:`interleaved` measures in). Patients
    differ in size, so the p99 over all timings is mostly the largest patients; this one is the spread
    of repeated evaluations of one input (collector passes, the machine, caches), pooled over patients.
    """
    if patients < 1 or len(times) < patients:
        return 0.0
    ratios: list[float] = []
    for i in range(patients):
        own = times[i::patients]
        med = statistics.median(own)
        if med > 0:
            ratios.extend(t / med for t in own)
    return round(_p99(sorted(ratios)), 2) if ratios else 0.0


def summary(cpu: list[float], wall: list[float], patients: int = 0) -> dict[str, float]:
    out: dict[str, float] = {"n": len(cpu)}
    for name, times in (("cpu", cpu), ("wall", wall)):
        s = sorted(times)
        med = statistics.median(s)
        p99 = _p99(s)
        out[f"{name}_median_ms"] = round(med, 4)
        out[f"{name}_p99_ms"] = round(p99, 4)
        out[f"{name}_mean_ms"] = round(statistics.fmean(s), 4)
        out[f"{name}_p99_x_median"] = round(p99 / med, 2) if med else 0.0
        if patients:
            out[f"{name}_p99_x_own_median"] = own_median_p99(times, patients)
    out["patients_per_s_cpu"] = round(1000 / out["cpu_mean_ms"], 1) if out["cpu_mean_ms"] else 0.0
    return out


def floor_fn(ev: Evaluator, inputs: list[bytes]) -> tuple[Callable[[bytes], Any], list[bytes]]:
    """JSON parse + durable-rules assert of the patient's already-encoded facts (the engine alone)."""
    crs = ev.compiled()
    payloads: dict[bytes, list[dict[str, Any]]] = {}
    for raw in inputs:
        fs = ev.facts(load_bundle(raw, validate="none"), datetime.date.fromisoformat(AS_OF))
        payloads[raw] = match_mod.engine_payload(crs, fs)[1]

    def run(raw: bytes) -> None:
        orjson.loads(raw)
        crs.engine.match(payloads[raw])

    return run, inputs


def before_criteria_fn(ev: Evaluator) -> Callable[[bytes], Any]:
    """The default pipeline up to and including the engine, nothing after it: load and validation, facts,
    encoding and durable-rules. What any change confined to the criteria, reasons and JSON stages still
    costs: its ratio to the floor bounds what such a change can reach."""
    crs = ev.compiled()
    day = datetime.date.fromisoformat(AS_OF)

    def run(raw: bytes) -> None:
        fs = ev.facts(load_bundle(raw, validate="facts"), day)
        crs.engine.match(match_mod.engine_payload(crs, fs)[1])

    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rules", default=str(ROOT / "rules"))
    ap.add_argument("-n", type=int, default=3000, help="evaluations per typical measurement")
    ap.add_argument("--n-large", type=int, default=200, help="evaluations per large measurement")
    ap.add_argument("--soak", type=int, default=0, help="evaluations in the memory soak (0: skip)")
    ap.add_argument(
        "--no-freeze",
        action="store_true",
        help="do not call gc.freeze() after the warm-up (the process's default garbage collection)",
    )
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "latest.json"))
    args = ap.parse_args()

    t0 = time.perf_counter()
    ev = Evaluator(args.rules)
    load_ms = (time.perf_counter() - t0) * 1000
    crs = ev.compiled()
    typical = typical_bundles()
    large = [enlarge(raw) for raw in typical[:5]]
    sizes = [len(json.loads(r)["entry"]) for r in typical]

    def e2e(mode: str) -> Callable[[bytes], Any]:
        def run(raw: bytes) -> bytes:
            return to_json(ev.evaluate(raw, as_of=AS_OF, validate=mode))  # type: ignore[arg-type]

        return run

    report: dict[str, Any] = {
        "mdtflag": __version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "gc_freeze_after_warm_up": not args.no_freeze,
        "rules": {
            "name": crs.ruleset.name,
            "version": crs.ruleset.version,
            "rules": len(crs.rules),
            "atoms": len(crs.atoms),
            "load_and_compile_ms": round(load_ms, 1),
        },
        "typical_bundles": {"count": len(typical), "resources_min": min(sizes), "resources_max": max(sizes)},
        "large_bundles": {"count": len(large), "resources": 500},
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "results": {},
    }
    for label, inputs, n in (("typical", typical, args.n), ("large", large, args.n_large)):
        floor, _ = floor_fn(ev, inputs)
        # (label, function, hook run untimed before each call); measured interleaved, patient by
        # patient, so that a machine slowing down or speeding up during the run affects all alike
        # the default with the validation caches emptied before the patient: every resource shape is
        # met for the first time (what the first patients from a new source cost); it runs first, so
        # the warm default after it finds the shapes of this patient, and no others, already known
        cases: list[tuple[str, Callable[[bytes], Any], Optional[Callable[[], Any]]]] = [
            ("end-to-end, validate=facts, cold validation cache", e2e("facts"), fastvalid.clear_cache),
            ("floor (parse + engine)", floor, None),
            ("end-to-end, validate=none", e2e("none"), None),
            ("end-to-end, validate=facts", e2e("facts"), None),
            ("default up to the engine: no criteria, reasons or JSON", before_criteria_fn(ev), None),
        ]
        interleaved(cases, inputs, min(n, 50))  # warm-up
        if not args.no_freeze:
            # as a long-running host would, once the rules are compiled and the model classes a first
            # patient needs are imported: full collector passes then skip what lives as long as the process
            gc.collect()
            gc.freeze()
        res = {k: summary(*v, patients=len(inputs)) for k, v in interleaved(cases, inputs, n).items()}
        floor_res = res["floor (parse + engine)"]
        for v in res.values():
            for clock in ("cpu", "wall"):
                fl = floor_res[f"{clock}_median_ms"]
                v[f"{clock}_x_floor_median"] = round(v[f"{clock}_median_ms"] / fl, 2) if fl else 0.0
        report["results"][label] = res

    # where the time goes: every stage of the default pipeline timed in sequence, patient by patient
    stage_cpu: dict[str, list[float]] = {}
    stage_wall: dict[str, list[float]] = {}
    day = datetime.date.fromisoformat(AS_OF)

    def mark() -> tuple[float, float]:
        return (time.process_time(), time.perf_counter())

    for k in range(max(len(typical), args.n // 4)):
        raw = typical[k % len(typical)]
        marks = [mark()]
        bundle = load_bundle(raw, validate="facts")
        marks.append(mark())
        fs = ev.facts(bundle, day)
        marks.append(mark())
        enc, payload = match_mod.engine_payload(crs, fs)
        sets = crs.engine.match(payload)
        marks.append(mark())
        state = match_mod._Eval(crs, fs, enc, sets)
        evals = [state.rule(cr) for cr in crs.rules]
        marks.append(mark())
        doc = build_result(crs, fs, evals, day, __version__, notes=bundle.notes)
        marks.append(mark())
        to_json(doc)
        marks.append(mark())
        for name, a, b in zip(STAGES, marks, marks[1:]):
            stage_cpu.setdefault(name, []).append((b[0] - a[0]) * 1000)
            stage_wall.setdefault(name, []).append((b[1] - a[1]) * 1000)
    report["stages_typical_median_ms"] = {
        name: {
            "cpu": round(statistics.median(stage_cpu[name]), 3),
            "wall": round(statistics.median(stage_wall[name]), 3),
        }
        for name in stage_cpu
    }

    if args.soak:
        fn = e2e("facts")
        samples: list[dict[str, float]] = []
        for k in range(args.soak):
            fn(typical[k % len(typical)])
            if (k + 1) % max(1, args.soak // 10) == 0:
                gc.collect()
                samples.append({"evaluations": k + 1, "rss_mb": round(rss_mb(), 1)})
        base = samples[0]["rss_mb"]
        report["memory_soak"] = {
            "evaluations": args.soak,
            "samples": samples,
            "change_after_first_sample_pct": round((samples[-1]["rss_mb"] - base) / base * 100, 2),
            "max_deviation_pct": round(max(abs(m["rss_mb"] - base) for m in samples) / base * 100, 2),
        }

    report["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"rules: {report['rules']}")
    print(f"typical bundles: {report['typical_bundles']}")
    print(
        f"load average (1, 5, 15 min) at start {report['load_average_at_start']}, at end {report['load_average_at_end']}"
    )
    print(
        "| bundles | measurement | CPU median ms | CPU p99 ms | p99/median (CPU) | × floor (CPU) "
        "| p99 / same patient's median (CPU) | wall median ms | wall p99 ms | × floor (wall) | patients/s (CPU) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for label, res in report["results"].items():
        for k, v in res.items():
            print(
                f"| {label} | {k} | {v['cpu_median_ms']} | {v['cpu_p99_ms']} | {v['cpu_p99_x_median']} | "
                f"{v['cpu_x_floor_median']} | {v.get('cpu_p99_x_own_median', '')} | {v['wall_median_ms']} | {v['wall_p99_ms']} | {v['wall_x_floor_median']} | "
                f"{v['patients_per_s_cpu']} |"
            )
    print("where the time goes (typical, default, median per stage, CPU / wall ms):")
    for k, v in report["stages_typical_median_ms"].items():
        print(f"  {k}: {v['cpu']} / {v['wall']}")
    if "memory_soak" in report:
        m = report["memory_soak"]
        print(
            f"memory: {m['samples'][0]['rss_mb']} MB after {m['samples'][0]['evaluations']} → {m['samples'][-1]['rss_mb']} MB after "
            f"{m['evaluations']} evaluations (change {m['change_after_first_sample_pct']}%, max deviation {m['max_deviation_pct']}%)"
        )


if __name__ == "__main__":
    main()
