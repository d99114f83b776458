"""Build a synthetic FHIR Bulk Data export of N patients from the shipped examples.

    python bench/synth_bulk.py OUT -n 1000000            # OUT/Patient.ndjson, OUT/Condition.ndjson, ... + manifest.json
    python bench/synth_bulk.py OUT -n 100000 --gzip      # .ndjson.gz files
    python bench/synth_bulk.py OUT -n 5000 --bundles     # OUT/bundles.ndjson: one patient bundle per line

Patient i is a copy of example i mod N (N shipped examples) (fhir_examples/*.json) whose resource ids and references carry
the suffix ``-i``, so every patient is distinct and its resources refer to it. The lines of one
patient are spread over one file per resource type, as a Bulk export server writes them.
``--unassigned K`` adds K Observations without a subject (they belong to no patient).
"""

from __future__ import annotations

import argparse
import datetime
import gzip
import os
import sys
import time
from pathlib import Path
from typing import IO, Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
MARK = "@@N@@"


def _suffix_refs(obj: Any) -> Any:
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            if k == "reference" and isinstance(v, str) and "/" in v and not v.startswith(("urn:", "#")):
                out[k] = f"{v}-{MARK}"
            else:
                out[k] = _suffix_refs(v)
        return out
    if isinstance(obj, list):
        return [_suffix_refs(v) for v in obj]
    return obj


def templates() -> list[list[tuple[str, bytes]]]:
    """Per example: (resource type, resource JSON with the placeholder) in bundle order."""
    out = []
    for p in sorted((ROOT / "fhir_examples").glob("*.json")):
        bundle = orjson.loads(p.read_bytes())
        if bundle.get("resourceType") != "Bundle":
            continue
        rows = []
        for entry in bundle.get("entry", []):
            res = _suffix_refs(entry["resource"])
            if isinstance(res.get("id"), str):
                res["id"] = f"{res['id']}-{MARK}"
            rows.append((res["resourceType"], orjson.dumps(res)))
        out.append(rows)
    if not out:
        raise SystemExit("no bundles in fhir_examples/")
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path)
    ap.add_argument("-n", type=int, default=1000, help="patients (default 1000)")
    ap.add_argument("--gzip", action="store_true", help="write .ndjson.gz")
    ap.add_argument("--bundles", action="store_true", help="one patient bundle per line in bundles.ndjson instead")
    ap.add_argument("--unassigned", type=int, default=0, help="Observations without a subject to add")
    a = ap.parse_args(argv)
    a.out.mkdir(parents=True, exist_ok=True)
    tmpl = templates()
    t0 = time.monotonic()
    mark = MARK.encode()
    files: dict[str, IO[bytes]] = {}
    counts: dict[str, int] = {}
    ext = ".ndjson.gz" if a.gzip else ".ndjson"

    def sink(name: str) -> IO[bytes]:
        fh = files.get(name)
        if fh is None:
            path = a.out / f"{name}{ext}"
            if a.gzip:
                fh = gzip.open(path, "wb", compresslevel=1)  # noqa: SIM115 - closed after the loop
            else:
                fh = open(path, "wb", buffering=1 << 20)  # noqa: SIM115 - closed after the loop
            files[name] = fh
            counts[name] = 0
        return fh

    for i in range(a.n):
        rows = tmpl[i % len(tmpl)]
        tag = str(i).encode()
        if a.bundles:
            body = b",".join(b'{"resource":' + raw.replace(mark, tag) + b"}" for _, raw in rows)
            sink("bundles").write(b'{"resourceType":"Bundle","type":"collection","entry":[' + body + b"]}\n")
            counts["bundles"] += 1
            continue
        for rt, raw in rows:
            sink(rt).write(raw.replace(mark, tag) + b"\n")
            counts[rt] += 1
    for j in range(a.unassigned):
        orphan = {
            "resourceType": "Observation",
            "id": f"orphan-{j}",
            "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "89247-1"}]},
            "valueInteger": 1,
        }
        sink("Observation").write(orjson.dumps(orphan) + b"\n")
        counts["Observation"] += 1
    for fh in files.values():
        fh.close()
    if not a.bundles:
        manifest = {
            "transactionTime": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "request": "https://fhir.example.org/fhir/$export?_type=" + ",".join(sorted(counts)),
            "requiresAccessToken": False,
            "output": [
                {"type": rt, "url": f"https://fhir.example.org/bulk/{rt}{ext}", "count": n}
                for rt, n in sorted(counts.items())
            ],
            "error": [],
        }
        (a.out / "manifest.json").write_bytes(orjson.dumps(manifest, option=orjson.OPT_INDENT_2))
    size = sum(os.path.getsize(a.out / f"{name}{ext}") for name in counts)
    print(
        f"{a.n} patients, {sum(counts.values())} lines, {size / 1e6:.1f} MB in {a.out} ({time.monotonic() - t0:.1f} s)",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
