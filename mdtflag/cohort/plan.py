"""Find the inputs of a cohort run and cut them into tasks for the worker processes.

The parent process only looks at names, sizes and line boundaries here; workers do the reading,
parsing and evaluation. The plan is a pure function of the inputs and the sizes below, so that a
resumed run cuts the same tasks and can continue at the task where it stopped.

Inputs:

* a ``.json`` file is one patient bundle (any file named on the command line is, whatever its suffix);
* a ``.ndjson`` / ``.ndjson.gz`` file whose first line is a Bundle holds one patient bundle per line;
* any other ``.ndjson`` / ``.ndjson.gz`` file is part of a FHIR Bulk Data export: the resource files in
  one folder form one export, grouped by patient out of core (see :mod:`mdtflag.cohort.worker`); the
  export's ``manifest.json`` names its files;
* ``-`` is NDJSON on standard input (copied to the run's work folder first);
* a folder is walked in name order, recursively unless ``recursive=False``.

An entry that cannot be used (a dangling link, a folder that cannot be listed, a file named in the
export's manifest that is missing, a folder with no input in it) becomes a named error in the results.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Union

import orjson

#: Bundle files per task.
FILES_PER_TASK = 32
#: Bytes of a one-bundle-per-line NDJSON file per task.
LINES_BYTES = 512 * 1024
#: Bytes of a Bulk export file per grouping (spill) task.
SPILL_BYTES = 16 * 1024 * 1024
#: Target bytes of one patient group file (all of it is held by one worker at a time).
BUCKET_BYTES = 8 * 1024 * 1024
#: Compressed NDJSON is counted this many times its size when sizing groups.
GZIP_RATIO = 8
MIN_BUCKETS = 16
MAX_BUCKETS = 4096

_SUFFIXES = (".json", ".ndjson", ".ndjson.gz")
STDIN_NAME = "<stdin>"


@dataclass(frozen=True)
class Problem:
    """An input that cannot be used, as the fields of an ``InputError``."""

    code: str
    source: str
    message: str
    line: int | None = None


@dataclass(frozen=True)
class FileItem:
    """One bundle file (``path``) or a problem found while listing the inputs."""

    name: str
    path: str | None = None
    problem: Problem | None = None


@dataclass(frozen=True)
class FilesTask:
    """Evaluate bundle files, one result per item."""

    items: tuple[FileItem, ...]


@dataclass(frozen=True)
class LinesTask:
    """Evaluate the one-bundle-per-line NDJSON lines starting in ``[start, end)`` (whole file when gzip)."""

    name: str
    path: str
    start: int
    end: int
    first_line: int
    gz: bool


@dataclass(frozen=True)
class SpillTask:
    """Group a range of a Bulk export file by patient into a spill file (``out``) of ``buckets`` parts."""

    export: int
    file_index: int
    name: str
    path: str
    start: int
    end: int
    first_line: int
    lines: int | None
    gz: bool
    buckets: int
    out: str


@dataclass(frozen=True)
class GroupTask:
    """Evaluate the patients of one bucket of an export, reading that bucket of every spill file."""

    export: int
    bucket: int
    spills: tuple[str, ...]
    names: tuple[str, ...]


Task = Union[FilesTask, LinesTask, SpillTask, GroupTask]


@dataclass
class Found:
    """One input file as listed: what it is and its identity for the run manifest."""

    name: str
    path: str
    kind: str  # "bundle", "bundles" (one per line), "resources" (Bulk export part)
    size: int
    mtime_ns: int
    gz: bool = False
    digest: str | None = None


@dataclass
class ExportInfo:
    folder: str
    files: list[Found] = field(default_factory=list)
    declared: dict[str, int] = field(default_factory=dict)  # file name -> count in the export's manifest
    manifest: str | None = None


@dataclass
class Plan:
    tasks: list[Task]
    found: list[Found]
    problems: list[Problem]
    exports: list[ExportInfo]
    deps: dict[int, list[int]]  # group task index -> spill task indexes it needs
    export_of_task: dict[int, int]
    expected_units: int  # bundles known before the run (files and lines); exports add later
    line_counts: dict[str, int]  # uncompressed NDJSON file -> physical lines

    def inputs_digest(self) -> str:
        h = hashlib.sha256()
        for f in self.found:
            h.update(orjson.dumps([f.name, f.path, f.kind, f.size, f.mtime_ns, f.digest]))
        for p in self.problems:
            h.update(orjson.dumps([p.code, p.source, p.message]))
        return "sha256:" + h.hexdigest()


# --------------------------------------------------------------------------------------------
# listing


def _suffix_ok(name: str) -> bool:
    low = name.lower()
    return low.endswith(_SUFFIXES)


def _is_gz(name: str) -> bool:
    return name.lower().endswith(".gz")


def _is_ndjson(name: str) -> bool:
    return name.lower().endswith((".ndjson", ".ndjson.gz"))


def _bulk_manifest(path: str) -> dict[str, object] | None:
    """The Bulk Data export manifest in ``path``, or ``None`` when the file is not one."""
    try:
        if os.path.getsize(path) > 16 * 1024 * 1024:
            return None
        with open(path, "rb") as fh:
            obj = orjson.loads(fh.read())
    except (OSError, orjson.JSONDecodeError):
        return None
    if isinstance(obj, dict) and isinstance(obj.get("output"), list) and "resourceType" not in obj:
        return obj
    return None


def _walk(
    folder: str,
    shown: str,
    recursive: bool,
    seen: set[str],
    out: list[tuple[str, str] | Problem],
    manifests: dict[str, tuple[str, dict[str, object]]],
) -> int:
    """Append (shown name, path) of every input file under ``folder``; returns how many were found."""
    real = os.path.realpath(folder)
    if real in seen:
        return 0
    seen.add(real)
    try:
        with os.scandir(folder) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError as exc:
        out.append(Problem("not-found", shown, f"folder cannot be read: {exc.strerror or exc}"))
        return 0
    count = 0
    for e in entries:
        sub = os.path.join(shown, e.name)
        try:
            is_link = e.is_symlink()
            if is_link and not os.path.exists(e.path):
                if _suffix_ok(e.name) or recursive:
                    out.append(Problem("not-found", sub, f"dangling link to {os.readlink(e.path)}"))
                continue
            is_dir = e.is_dir()
            is_file = e.is_file()
        except OSError as exc:
            out.append(Problem("not-found", sub, f"cannot be read: {exc.strerror or exc}"))
            continue
        if is_dir:
            if recursive:
                count += _walk(e.path, sub, recursive, seen, out, manifests)
            continue
        if e.name.lower() == "manifest.json":
            man = _bulk_manifest(e.path)
            if man is not None:
                manifests[os.path.realpath(folder)] = (sub, man)
                continue
        if not _suffix_ok(e.name):
            continue
        if not is_file:
            out.append(Problem("not-found", sub, "not a regular file"))
            continue
        out.append((sub, e.path))
        count += 1
    return count


def _first_line(path: str, gz: bool) -> bytes:
    opener = gzip.open if gz else open
    try:
        with opener(path, "rb") as fh:
            for _ in range(1000):
                raw = fh.readline(64 * 1024 * 1024)
                if not raw:
                    return b""
                if raw.strip():
                    return raw
    except (OSError, EOFError, gzip.BadGzipFile):
        return b""
    return b""


def _kind(path: str, gz: bool) -> str:
    """``bundles`` when the first line of an NDJSON file is a Bundle, else ``resources``."""
    raw = _first_line(path, gz)
    try:
        obj = orjson.loads(raw.lstrip(b"\xef\xbb\xbf"))
    except orjson.JSONDecodeError:
        return "resources"
    if isinstance(obj, dict) and obj.get("resourceType") == "Bundle":
        return "bundles"
    return "resources"


def discover(
    inputs: Sequence[str], *, recursive: bool = True, stdin_path: str | None = None, stdin_digest: str | None = None
) -> tuple[list[Found | Problem], list[ExportInfo]]:
    """Every input file (in order) and every problem met while listing; exports by folder."""
    listed: list[tuple[str, str] | Problem] = []
    manifests: dict[str, tuple[str, dict[str, object]]] = {}
    for arg in inputs:
        if arg == "-":
            if stdin_path is None:
                raise ValueError("standard input was not copied to a file")
            listed.append((STDIN_NAME, stdin_path))
            continue
        if os.path.islink(arg) and not os.path.exists(arg):
            listed.append(Problem("not-found", arg, f"dangling link to {os.readlink(arg)}"))
        elif os.path.isdir(arg):
            before = len(listed)
            n = _walk(arg, arg, recursive, set(), listed, manifests)
            if n == 0 and not any(isinstance(x, Problem) for x in listed[before:]):
                where = "in it or its subfolders" if recursive else "in it (subfolders not read)"
                listed.append(Problem("not-found", arg, f"no .json, .ndjson or .ndjson.gz file {where}"))
        elif os.path.isfile(arg):
            listed.append((arg, arg))
        elif os.path.exists(arg):
            listed.append(Problem("not-found", arg, "not a regular file or folder"))
        else:
            listed.append(Problem("not-found", arg, "no such file or folder"))

    out: list[Found | Problem] = []
    exports: dict[str, ExportInfo] = {}
    export_list: list[ExportInfo] = []
    for x in listed:
        if isinstance(x, Problem):
            out.append(x)
            continue
        shown, path = x
        try:
            st = os.stat(path)
        except OSError as exc:
            out.append(Problem("not-found", shown, f"cannot be read: {exc.strerror or exc}"))
            continue
        gz = _is_gz(shown)
        if shown == STDIN_NAME or _is_ndjson(shown):
            kind = _kind(path, gz)
        else:
            kind = "bundle"
        f = Found(shown, path, kind, st.st_size, st.st_mtime_ns, gz, stdin_digest if shown == STDIN_NAME else None)
        if kind == "resources":
            folder = os.path.realpath(os.path.dirname(path)) if shown != STDIN_NAME else STDIN_NAME
            ex = exports.get(folder)
            if ex is None:
                ex = exports[folder] = ExportInfo(folder)
                export_list.append(ex)
                out.append(f)  # the export is read at the position of its first file
            ex.files.append(f)
            continue
        out.append(f)

    for real, (mshown, man) in manifests.items():
        ex = exports.get(real)
        listed_names = {os.path.basename(f.path) for f in ex.files} if ex else set()
        outputs = man.get("output")
        for entry in outputs if isinstance(outputs, list) else []:
            if not isinstance(entry, dict) or not isinstance(entry.get("url"), str):
                continue
            base = os.path.basename(str(entry["url"]).split("?")[0])
            count = entry.get("count")
            if ex is not None and isinstance(count, int):
                ex.declared[base] = count
            if base not in listed_names:
                at = next((i for i, x in enumerate(out) if ex is not None and x is ex.files[0]), len(out))
                out.insert(
                    at,
                    Problem(
                        "not-found",
                        os.path.join(os.path.dirname(mshown), base),
                        f"listed in the export's {os.path.basename(mshown)} but not in the folder",
                    ),
                )
        if ex is not None:
            ex.manifest = mshown
    return out, export_list


# --------------------------------------------------------------------------------------------
# cutting into tasks


def _ranges(path: str, target: int) -> Iterator[tuple[int, int, int, int]]:
    """(start, end, first line number, physical lines) of line-aligned ranges of about ``target`` bytes."""
    start = 0
    line = 1
    with open(path, "rb") as fh:
        while True:
            block = fh.read(target)
            if not block:
                return
            length = len(block)
            lines = block.count(b"\n")
            ended = block.endswith(b"\n")
            del block
            while not ended:  # finish the line the block cut, without holding it
                piece = fh.readline(1024 * 1024)
                if not piece:
                    lines += 1  # the file's last line has no line break
                    break
                length += len(piece)
                ended = piece.endswith(b"\n")
                lines += ended
            yield start, start + length, line, lines
            start += length
            line += lines


def make_plan(items: Sequence[Found | Problem], exports: Sequence[ExportInfo], workdir: str) -> Plan:
    tasks: list[Task] = []
    deps: dict[int, list[int]] = {}
    export_of_task: dict[int, int] = {}
    found: list[Found] = []
    problems: list[Problem] = []
    expected = 0
    line_counts: dict[str, int] = {}
    pending: list[FileItem] = []
    export_index = {id(ex.files[0]): k for k, ex in enumerate(exports)}

    def flush() -> None:
        nonlocal pending
        for i in range(0, len(pending), FILES_PER_TASK):
            tasks.append(FilesTask(tuple(pending[i : i + FILES_PER_TASK])))
        pending = []

    for x in items:
        if isinstance(x, Problem):
            problems.append(x)
            pending.append(FileItem(x.source, None, x))
            expected += 1
            continue
        if x.kind == "bundle":
            found.append(x)
            pending.append(FileItem(x.name, x.path))
            expected += 1
            continue
        flush()
        if x.kind == "bundles":
            found.append(x)
            if x.gz:
                tasks.append(LinesTask(x.name, x.path, 0, x.size, 1, True))
                continue
            total = 0
            for s, e, first, n in _ranges(x.path, LINES_BYTES):
                tasks.append(LinesTask(x.name, x.path, s, e, first, False))
                total += n
            line_counts[x.name] = total
            expected += total
            continue
        k = export_index[id(x)]
        ex = exports[k]
        found.extend(ex.files)
        size = sum(f.size * (GZIP_RATIO if f.gz else 1) for f in ex.files)
        buckets = max(MIN_BUCKETS, min(MAX_BUCKETS, math.ceil(size / BUCKET_BYTES)))
        spill_ids: list[int] = []
        names = tuple(f.name for f in ex.files)
        for fi, f in enumerate(ex.files):
            if f.gz:
                ranges: list[tuple[int, int, int, int | None]] = [(0, f.size, 1, None)]
            else:
                ranges = []
                total = 0
                for s, e, first, count in _ranges(f.path, SPILL_BYTES):
                    ranges.append((s, e, first, count))
                    total += count
                line_counts[f.name] = total
            for s, e, first, lines in ranges:
                out = os.path.join(workdir, "spill", f"e{k}-t{len(tasks)}.spill")
                spill_ids.append(len(tasks))
                export_of_task[len(tasks)] = k
                tasks.append(SpillTask(k, fi, f.name, f.path, s, e, first, lines, f.gz, buckets, out))
        spills = tuple(t.out for t in (tasks[i] for i in spill_ids) if isinstance(t, SpillTask))
        for b in range(buckets):
            deps[len(tasks)] = spill_ids
            export_of_task[len(tasks)] = k
            tasks.append(GroupTask(k, b, spills, names))
    flush()
    return Plan(tasks, found, problems, list(exports), deps, export_of_task, expected, line_counts)


def copy_stdin(src: os.PathLike[str] | str, fh_in: BinaryIO) -> str:
    """Copy a binary stream to ``src``; returns its SHA-256 digest."""
    h = hashlib.sha256()
    read = fh_in.read
    with open(src, "wb") as out:
        while True:
            block = read(1024 * 1024)
            if not block:
                break
            h.update(block)
            out.write(block)
        out.flush()
        os.fsync(out.fileno())
    return "sha256:" + h.hexdigest()


def workdir_for(output: str | None) -> Path | None:
    """The work folder beside a results file (spill files, task parts, standard input)."""
    return Path(output + ".work") if output else None
