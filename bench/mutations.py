"""Single-value corruption of the shipped examples: how often does a decision flip silently?

    python bench/mutations.py [-n 3000] [--seed 1] [--out FILE]

Each trial takes one shipped example, picks one scalar leaf of one resource (a code, a system, a status, a
display or text, a number, a boolean, a date; never an id, a reference or meta) and corrupts it: junk appended,
upper or lower case, another system, garbage text, a number as a string or negated, a boolean as a string, an
impossible date. It evaluates the bundle again and compares with the uncorrupted one.

A *definite flip* is a rule going from flagged to not flagged or back. It is *silent* when the result carries
no data-quality note on the corrupted resource. DQ-* and MDK-LOC-1 are counted apart: they follow other
outcomes by design. A measurement, not a test: tests/test_open_world_mutations.py holds the properties.
"""

from __future__ import annotations

import argparse
import copy
import json
import random
import re
import time
from collections import Counter
from pathlib import Path
from typing import Any

from mdtflag import Evaluator
from mdtflag.output.render import to_json

EXAMPLES = Path(__file__).resolve().parent.parent / "fhir_examples"
AS_OF = "2026-11-01"
DEFINITE = ("flagged", "not_flagged")
SKIP = frozenset({"id", "reference", "fullUrl", "resourceType", "subject", "patient", "meta"})
DATES = frozenset({"birthDate", "onsetDateTime", "effectiveDateTime", "issued", "start", "end", "authoredOn"})
TEXTS = frozenset({"display", "text", "title"})
DATE_FORM = re.compile(r"^\d{4}(-\d\d(-\d\d)?)?(T.*)?$")


def leaves(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[tuple[Any, ...], Any]]:
    if isinstance(node, dict):
        return [leaf for k, v in node.items() if k not in SKIP for leaf in leaves(v, (*path, k))]
    if isinstance(node, list):
        return [leaf for i, v in enumerate(node) for leaf in leaves(v, (*path, i))]
    return [(path, node)]


def corruptions(path: tuple[Any, ...], value: Any, rng: random.Random) -> list[tuple[str, Any]]:
    key = next((p for p in reversed(path) if isinstance(p, str)), "")
    if isinstance(value, bool):
        return [("bool as string", "true" if value else "false")]
    if isinstance(value, (int, float)):
        return [("number as string", str(value)), ("negated", -value or -1)]
    if not isinstance(value, str):
        return []
    if key in DATES and DATE_FORM.match(value):
        return [("impossible date", "2026-13-45")]
    if key in TEXTS:
        return [("garbage text", "zz#" + "".join(rng.choice("qxjkvw ") for _ in range(8)))]
    if key in ("code", "system", "status", "unit", "gender", "intent"):
        out = [("junk appended", value + "X9"), ("upper case", value.upper()), ("lower case", value.lower())]
        return out + ([("another system", "urn:example:other")] if key == "system" else [])
    return []


def at(node: Any, path: tuple[Any, ...]) -> Any:
    for p in path[:-1]:
        node = node[p]
    return node


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=3000, help="trials")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", type=Path, help="write every trial that changed something here (JSON)")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    ev = Evaluator()

    def statuses(bundle: Any) -> tuple[dict[str, str], list[dict[str, Any]]]:
        doc = json.loads(to_json(ev.evaluate(bundle, as_of=AS_OF)))
        return {f["rule"]: f["status"] for f in doc["flags"]}, doc["data_quality"]

    files = sorted(EXAMPLES.glob("*.json"))
    bundles = {f.name: json.loads(f.read_text(encoding="utf-8")) for f in files}
    base = {name: statuses(b)[0] for name, b in bundles.items()}
    counts: Counter[str] = Counter()
    by_design: Counter[str] = Counter()
    patterns: Counter[str] = Counter()
    changed: list[dict[str, Any]] = []
    start = time.perf_counter()
    for _ in range(args.n):
        name = rng.choice(files).name
        bundle = copy.deepcopy(bundles[name])
        entries = [e for e in bundle["entry"] if e["resource"].get("resourceType") != "Patient"]
        resource = rng.choice(entries)["resource"]
        sites = [(p, v, c) for p, v in leaves(resource) for c in corruptions(p, v, rng)]
        if not sites:
            continue
        path, old, (kind, new) = rng.choice(sites)
        at(resource, path)[path[-1]] = new
        counts["trials"] += 1
        try:
            after, notes = statuses(bundle)
        except Exception as exc:  # an exception is a finding: count it and keep going
            counts["exceptions"] += 1
            changed.append({"file": name, "path": list(map(str, path)), "exception": repr(exc)})
            continue
        before = base[name]
        where = f"{resource['resourceType']}/{resource.get('id')}"
        flips = {r: (before[r], after[r]) for r in before if {before[r], after[r]} == set(DEFINITE)}
        design = [r for r in flips if r.startswith("DQ-") or r == "MDK-LOC-1"]
        real = {r: f for r, f in flips.items() if r not in design}
        noted = any(n["resource"] == where for n in notes)
        by_design.update(design)
        if after != before:
            counts["decision changed"] += 1
        if real:
            counts["definite flips"] += 1
            counts["definite flips with a note" if noted else "SILENT definite flips"] += 1
            if not noted:
                shape = ".".join("[]" if isinstance(p, int) else p for p in path)
                patterns[f"{resource['resourceType']} {shape} ({kind})"] += 1
        if after != before:
            changed.append(
                {
                    "file": name,
                    "resource": where,
                    "path": list(map(str, path)),
                    "old": old,
                    "new": new,
                    "kind": kind,
                    "flips": real,
                    "by_design": design,
                    "noted": noted,
                }
            )
    print(f"seed {args.seed}, {counts['trials']} trials, {time.perf_counter() - start:.1f} s")
    for key in (
        "decision changed",
        "definite flips",
        "definite flips with a note",
        "SILENT definite flips",
        "exceptions",
    ):
        print(f"  {key:30} {counts[key]}")
    print(f"  flips of DQ-* / MDK-LOC-1 (by design): {dict(by_design.most_common())}")
    for pattern, n in patterns.most_common():
        print(f"  silent: {n:4} {pattern}")
    if args.out:
        args.out.write_text(json.dumps(changed, indent=1, default=str), encoding="utf-8")


if __name__ == "__main__":
    main()
