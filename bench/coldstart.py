"""Cold start: `mdtflag evaluate` on one patient in a new process, and where that time goes.

    python bench/coldstart.py [-n 15] [--rules rules] [--bundle fhir_examples/X.json] [--validate facts]

Each measurement runs in fresh child processes started one after the other, with Python's bytecode
cache written (as an installed package has it; ``PYTHONDONTWRITEBYTECODE`` is removed for the children)
and the compiled-rule-set cache in a folder of its own:

* **command, warm cache, shapes met before** -- ``python -m mdtflag evaluate BUNDLE --as-of … -o /dev/null``
  with the compiled rule set in the cache and the validation plans of the patient's resource shapes
  in it too (the usual case after the first run of data from the same source): wall-clock time and
  the child's CPU time (user + system, ``resource.getrusage(RUSAGE_CHILDREN)``), median, min and max;
* **command, warm cache, new shapes** -- the same with the validation plans removed before each run
  (the first patient of a new source: fhir.resources' models are imported and built);
* **command, no cache** -- the same with ``MDTFLAG_NO_CACHE=1`` (what every start cost before the cache);
* the three are run in turn, round after round, so that a machine that slows down meanwhile affects all;
* with ``--against DIR`` (another checkout, e.g. ``git worktree add DIR main``), the same command from
  DIR with a cache of its own joins every round, and the CPU time here minus there is reported round
  by round: a before/after comparison that the machine's drift does not decide;
* **split** -- the steps of the command timed inside a child, with a warm cache (shapes met before, and
  new): imports (what ``mdtflag evaluate`` imports), the rule set from the cache (key, read, check,
  unpickle, engine), and the first evaluation with its JSON; and, with the cache off, reading the rule
  set (YAML and rule model), checking and compiling it.

Wall time on a loaded machine includes waiting for a core; CPU time does not. The load average is
reported with the figures. Results go to standard output and ``bench/results/coldstart.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Optional

ROOT = Path(__file__).resolve().parent.parent
AS_OF = "2026-11-01"
AGAINST = "warm cache, known shapes, other checkout"

# runs in the child: every step timed in CPU and wall time, printed as one JSON line
_SPLIT = r"""
import json, sys, time
marks = [(time.process_time(), time.perf_counter())]
def mark():
    marks.append((time.process_time(), time.perf_counter()))
import mdtflag.cli.main
from mdtflag.cli.common import load_evaluator
from mdtflag.output.render import to_json
mark()
ev = load_evaluator(sys.argv[1], None, checked=True)
mark()
to_json(ev.evaluate(sys.argv[2], as_of=sys.argv[3], validate=sys.argv[4]))
mark()
names = ["imports", sys.argv[5], "first evaluation + JSON"]
print(json.dumps({n: {"cpu_ms": (b[0] - a[0]) * 1000, "wall_ms": (b[1] - a[1]) * 1000}
                  for n, a, b in zip(names, marks, marks[1:])}))
"""


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _stats(values: list[float]) -> dict[str, float]:
    s = sorted(values)
    return {"median_ms": round(statistics.median(s), 1), "min_ms": round(s[0], 1), "max_ms": round(s[-1], 1)}


def _interleaved(
    cases: list[tuple[str, list[str], dict[str, str], Optional[Callable[[], None]]]],
    n: int,
    cwd: Optional[dict[str, Path]] = None,
) -> dict[str, dict[str, Any]]:
    """Each case run ``n`` times, one case after the other in every round (a machine that slows down or
    speeds up meanwhile affects all alike); the hook runs, untimed, before its case. ``cwd``: the folder
    a case runs in (default: this checkout)."""
    wall: dict[str, list[float]] = {label: [] for label, _, _, _ in cases}
    cpu: dict[str, list[float]] = {label: [] for label, _, _, _ in cases}
    for _ in range(n):
        for label, cmd, env, before in cases:
            if before is not None:
                before()
            folder = (cwd or {}).get(label, ROOT)
            c, t = _children_cpu(), time.perf_counter()
            subprocess.run(cmd, check=True, cwd=folder, env=env, timeout=300, stdout=subprocess.DEVNULL)
            wall[label].append((time.perf_counter() - t) * 1000)
            cpu[label].append((_children_cpu() - c) * 1000)
    return {
        label: {
            "wall": _stats(wall[label]),
            "cpu": _stats(cpu[label]),
            "cpu_ms_each": [round(x, 1) for x in cpu[label]],
        }
        for label in wall
    }


def _split(
    args: argparse.Namespace, env: dict[str, str], label: str, before: Optional[Callable[[], None]] = None
) -> dict[str, dict[str, float]]:
    runs = []
    for _ in range(args.n):
        if before is not None:
            before()
        out = subprocess.run(
            [sys.executable, "-c", _SPLIT, args.rules, args.bundle, AS_OF, args.validate, label],
            check=True,
            cwd=ROOT,
            env=env,
            timeout=300,
            capture_output=True,
            text=True,
        ).stdout
        runs.append(json.loads(out))
    return {
        name: {clock: round(statistics.median(r[name][clock] for r in runs), 1) for clock in ("cpu_ms", "wall_ms")}
        for name in runs[0]
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=15, help="processes per measurement")
    ap.add_argument("--rules", default="rules")
    ap.add_argument("--bundle", default=str(sorted((ROOT / "fhir_examples").glob("01-*.json"))[0]))
    ap.add_argument("--validate", default="facts", choices=["facts", "all", "none"])
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "coldstart.json"))
    ap.add_argument(
        "--against",
        default=None,
        help="another checkout (e.g. a git worktree of main): its command, shapes met before, joins every round",
    )
    args = ap.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="mdtflag-coldstart-") as cache,
        tempfile.TemporaryDirectory(prefix="mdtflag-coldstart-other-") as other_cache,
    ):
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "MDTFLAG_NO_CACHE")}
        env.update(PYTHONPATH=str(ROOT), MDTFLAG_CACHE_DIR=cache)
        off = {**env, "MDTFLAG_NO_CACHE": "1"}
        cmd = [sys.executable, "-m", "mdtflag", "evaluate", args.bundle, "--as-of", AS_OF]
        cmd += ["--rules", args.rules, "--validate", args.validate, "-o", os.devnull]
        subprocess.run(cmd, check=True, cwd=ROOT, env=env, timeout=300)  # bytecode, OS file cache, the entry
        plans = {p: p.read_bytes() for p in Path(cache).glob("*.plans")}  # the patient's validation plans

        def known_shapes() -> None:
            for path, data in plans.items():
                path.write_bytes(data)

        def new_shapes() -> None:
            for path in Path(cache).glob("*.plans"):
                path.unlink()

        cases: list[tuple[str, list[str], dict[str, str], Optional[Callable[[], None]]]] = [
            ("warm cache, known shapes", cmd, env, known_shapes),
            ("warm cache, new shapes", cmd, env, new_shapes),
            ("no cache", cmd, off, None),
        ]
        where: dict[str, Path] = {}
        if args.against:
            other = Path(args.against).resolve()
            other_env = {**env, "PYTHONPATH": str(other), "MDTFLAG_CACHE_DIR": other_cache}
            for _ in range(2):  # its bytecode, its compiled rule set and the patient's plans
                subprocess.run(cmd, check=True, cwd=other, env=other_env, timeout=300)
            cases.insert(1, (AGAINST, cmd, other_env, None))
            where[AGAINST] = other
        load_before = [round(x, 2) for x in os.getloadavg()]
        runs = _interleaved(cases, args.n, where)
        split_warm = _split(args, env, "rule set from the cache", known_shapes)
        split_new = _split(args, env, "rule set from the cache", new_shapes)
        split_off = _split(args, off, "rule set: read, check (every profile), compile")
        load_after = [round(x, 2) for x in os.getloadavg()]
    warm, new, cold = runs["warm cache, known shapes"], runs["warm cache, new shapes"], runs["no cache"]
    report: dict[str, Any] = {
        "python": sys.version.split()[0],
        "processes": args.n,
        "validate": args.validate,
        "load_average_before": load_before,
        "load_average_after": load_after,
        "command_warm_cache": warm,
        "command_warm_cache_new_shapes": new,
        "command_no_cache": cold,
        "split_median_warm_cache": split_warm,
        "split_median_warm_cache_new_shapes": split_new,
        "split_median_no_cache": split_off,
    }
    if args.against:
        mine, theirs = runs["warm cache, known shapes"]["cpu_ms_each"], runs[AGAINST]["cpu_ms_each"]
        diff = [a - b for a, b in zip(mine, theirs)]
        report["against"] = {
            "checkout": str(Path(args.against).resolve()),
            "command_warm_cache": runs[AGAINST],
            "cpu_ms_this_minus_against_same_round": {
                "median": round(statistics.median(diff), 1),
                "mean": round(statistics.fmean(diff), 1),
                "rounds_this_faster": sum(d < 0 for d in diff),
                "rounds": len(diff),
            },
        }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"load average {load_before} -> {load_after}; --validate {args.validate}; {args.n} processes each")
    for name, got in (
        ("warm cache, resource shapes met before", warm),
        ("warm cache, new resource shapes", new),
        ("no cache", cold),
    ):
        print(
            f"mdtflag evaluate, one patient, {name}: wall median {got['wall']['median_ms']} ms "
            f"(min {got['wall']['min_ms']}), CPU median {got['cpu']['median_ms']} ms (min {got['cpu']['min_ms']})"
        )
    if args.against:
        got, d = runs[AGAINST], report["against"]["cpu_ms_this_minus_against_same_round"]
        print(
            f"the same in {args.against}: wall median {got['wall']['median_ms']} ms, CPU median "
            f"{got['cpu']['median_ms']} ms; CPU here minus there, round by round: median {d['median']} ms, "
            f"mean {d['mean']} ms, here faster in {d['rounds_this_faster']} of {d['rounds']} rounds"
        )
    for title, split in (
        ("split, warm cache, shapes met before", split_warm),
        ("split, warm cache, new shapes", split_new),
        ("split, no cache", split_off),
    ):
        print(title)
        for name, v in split.items():
            print(f"  {name}: CPU {v['cpu_ms']} ms, wall {v['wall_ms']} ms")


if __name__ == "__main__":
    main()
