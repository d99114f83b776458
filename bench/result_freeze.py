"""What read-only result documents cost: building results with and without the read-only lists, interleaved.

    python bench/result_freeze.py [-n 30]

For every shipped example, evaluates once (facts and criteria), then times ``build_result`` (flags,
reasons, decisions: the stage that builds the documents) ``n`` times in each mode, alternating, so a
drifting machine affects both alike. "plain" switches the conversion off (lists stay lists) to show what
it adds (dict's own constructor); the JSON of both must be byte-identical. Prints median CPU and wall time per result.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mdtflag._version import __version__  # noqa: E402
from mdtflag.api import Evaluator, parse_date  # noqa: E402
from mdtflag.evaluation import result as docs  # noqa: E402
from mdtflag.evaluation.decide import build_result  # noqa: E402
from mdtflag.evaluation.match import evaluate_facts  # noqa: E402
from mdtflag.fhir.load import load_bundle  # noqa: E402
from mdtflag.output.render import to_json  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=30, help="timed builds per example and mode")
    args = ap.parse_args()
    ev = Evaluator(str(ROOT / "rules"))
    crs = ev.compiled()
    day = parse_date("2026-11-01")
    with_lists = {c: c.__dict__["__init__"] for c in docs.DOC_MODELS if "__init__" in c.__dict__}

    def mode(frozen: bool) -> None:
        # plain: documents are built by dict's own constructor, as before they were read-only
        for c, init in with_lists.items():
            c.__init__ = init if frozen else dict.__init__  # type: ignore[method-assign]

    cpu: dict[bool, list[float]] = {True: [], False: []}
    wall: dict[bool, list[float]] = {True: [], False: []}
    whole: dict[bool, list[float]] = {True: [], False: []}
    for path in sorted((ROOT / "fhir_examples").glob("*.json")):
        bundle = load_bundle(path)
        fs = ev.facts(bundle, day)
        evals = evaluate_facts(crs, fs)
        out = {}
        for frozen in (True, False):
            mode(frozen)
            out[frozen] = to_json(build_result(crs, fs, evals, day, __version__, notes=bundle.notes))
        assert out[True] == out[False], path
        for _ in range(args.n):
            for frozen in (True, False):
                mode(frozen)
                c0, w0 = time.process_time(), time.perf_counter()
                build_result(crs, fs, evals, day, __version__, notes=bundle.notes)
                cpu[frozen].append(time.process_time() - c0)
                wall[frozen].append(time.perf_counter() - w0)
        raw = path.read_bytes()
        for _ in range(max(1, args.n // 5)):
            for frozen in (True, False):
                mode(frozen)
                c0 = time.process_time()
                ev.evaluate(raw, as_of=day)
                whole[frozen].append(time.process_time() - c0)
    mode(True)
    for frozen in (False, True):
        name = "read-only" if frozen else "plain"
        print(
            f"{name:9}  build_result median: wall {statistics.median(wall[frozen]) * 1e3:.3f} ms, "
            f"CPU {statistics.median(cpu[frozen]) * 1e3:.3f} ms  ({len(cpu[frozen])} builds)"
        )
        print(f"{name:9}  whole evaluation median CPU {statistics.median(whole[frozen]) * 1e3:.3f} ms")
    extra = statistics.median(wall[True]) - statistics.median(wall[False])
    cpu_extra = statistics.median(cpu[True]) - statistics.median(cpu[False])
    print(
        f"read-only documents add {extra * 1e3:+.3f} ms wall, {cpu_extra * 1e3:+.3f} ms CPU per result (median); "
        "JSON byte-identical"
    )


if __name__ == "__main__":
    main()
