"""Files of a cohort run: running totals, result and index files, durable writes (fsync, atomic replace)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson

#: Unassigned resources listed by file and line in the run manifest (all are counted).
EXAMPLES_LIMIT = 100


def _empty_totals() -> dict[str, Any]:
    return {
        "results": 0,
        "errors": 0,
        "error_codes": {},
        "unassigned": 0,
        "unassigned_types": {},
        "unassigned_examples": [],
        "lines": {"read": 0, "blank": 0, "in_results": 0, "in_errors": 0, "unassigned": 0},
        "bulk_patients": 0,
        "bulk_bundles": 0,
    }


def _add(totals: dict[str, Any], st: dict[str, Any], bulk: bool) -> None:
    totals["results"] += st.get("results", 0)
    totals["errors"] += st.get("errors", 0)
    for code, n in st.get("codes", {}).items():
        totals["error_codes"][code] = totals["error_codes"].get(code, 0) + n
    lines = totals["lines"]
    if bulk:
        lines["in_results"] += st.get("lines_results", 0)
        lines["in_errors"] += st.get("lines_errors", 0)
    lines["read"] += st.get("lines", 0)
    lines["blank"] += st.get("blank", 0)
    lines["unassigned"] += st.get("unassigned", 0)
    totals["unassigned"] += st.get("unassigned", 0)
    totals["bulk_patients"] += st.get("patients", 0)
    totals["bulk_bundles"] += st.get("bundles", 0)
    for t, n in st.get("unassigned_types", {}).items():
        totals["unassigned_types"][t] = totals["unassigned_types"].get(t, 0) + n
    ex = totals["unassigned_examples"]
    for e in st.get("unassigned_examples", []):
        if len(ex) < EXAMPLES_LIMIT:
            ex.append(e)


def _idx_stats(path: str) -> dict[str, Any]:
    """Counts of a part file left by a worker that died (its ``.idx`` lines)."""
    st: dict[str, Any] = {"results": 0, "errors": 0, "lines_results": 0, "lines_errors": 0, "codes": {}}
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return st
    for line in data.splitlines():
        status, lines, _ = line.split(b"\t", 2)
        if status == b"ok":
            st["results"] += 1
            st["lines_results"] += int(lines)
        else:
            code = status.decode()
            st["errors"] += 1
            st["lines_errors"] += int(lines)
            st["codes"][code] = st["codes"].get(code, 0) + 1
    return st


def _complete_lines(path: str) -> tuple[int, int]:
    """(complete lines, bytes they take) of a part file; a line cut by a crash does not count."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return 0, 0
    end = data.rfind(b"\n") + 1
    return data.count(b"\n", 0, end), end


def _truncate_lines(path: str, keep: int) -> None:
    data = Path(path).read_bytes() if os.path.exists(path) else b""
    pos = 0
    for _ in range(keep):
        pos = data.index(b"\n", pos) + 1
    with open(path, "r+b" if data else "wb") as fh:
        fh.truncate(pos)


def _fsync_dir(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_json_atomic(path: str, doc: dict[str, Any]) -> None:
    tmp = path + ".tmp"
    with open(tmp, "wb") as fh:
        fh.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2) + b"\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    _fsync_dir(os.path.dirname(os.path.abspath(path)))


def _append_file(dst: int, src: str) -> int:
    """Append ``src`` to the open descriptor ``dst``; returns the bytes copied."""
    total = 0
    with open(src, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        try:
            while total < size:
                n = os.sendfile(dst, fh.fileno(), total, size - total)
                if n == 0:
                    break
                total += n
        except OSError:
            fh.seek(total)
            while True:
                block = fh.read(1024 * 1024)
                if not block:
                    break
                view = memoryview(block)
                while view:
                    view = view[os.write(dst, view) :]
                total += len(block)
    return total


def _summary_rows(idx_path: str) -> bytes:
    data = Path(idx_path).read_bytes()
    return b"".join(line.split(b"\t", 2)[2] for line in data.splitlines(keepends=True))
