"""Worker processes: read, parse, validate, evaluate and serialise; the parent only orders and accounts.

Each worker builds one :class:`~mdtflag.api.Evaluator` when it starts and then runs jobs (a task of
the plan, from a given input on) sent by the parent over a pipe. A job writes two part files:

* ``<prefix>.ndjson`` -- one compact result or error document per input, in input order;
* ``<prefix>.idx`` -- one line per input: ``status <TAB> lines <TAB> summary CSV row``, where ``status``
  is ``ok`` or the error code and ``lines`` the Bulk export lines the input was made of.

Each input's two lines are written before the next input starts, so when a worker dies the parent
can tell from the part files which input it died on: that input (and only that one) becomes an
``engine-crash`` error, and another worker continues the task after it, with its rules already
compiled. Workers die with the parent (``PR_SET_PDEATHSIG`` on Linux, else a thread polling the
parent's process id).

Grouping a Bulk export by patient is done in two passes. A spill task reads a range of one export file,
parses each line, finds the patient it belongs to and appends it to one of K buckets (a hash of the
patient reference); the buckets are written as one spill file with an index at its end. A group task
then reads its bucket of every spill file of the export, groups the lines by patient and evaluates
each patient. No worker ever holds more than one range or one bucket, whatever the size of the export.
"""

from __future__ import annotations

import ctypes
import datetime as dt
import gc
import gzip
import os
import signal
import struct
import sys
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO, Callable, Union

import orjson

from mdtflag.api import Evaluator, cached_evaluator, error_result
from mdtflag.cohort.plan import FilesTask, GroupTask, LinesTask, SpillTask, Task
from mdtflag.cohort.summary import csv_line, summary_row
from mdtflag.errors import InputError
from mdtflag.evaluation.result import ErrorBody, ErrorResult
from mdtflag.fhir.load import MAX_BYTES, LoadedBundle, collect_references, load_bundle
from mdtflag.output.render import to_json

_PATIENT_LINKS = ("subject", "patient", "individual")
_FOOTER = struct.Struct("<Q")
#: At most this many unassigned resources are listed per task (all are counted).
EXAMPLES_PER_TASK = 20
CRASH_MESSAGE = "the evaluation process died on this input; the run went on without it"


@dataclass(frozen=True)
class Job:
    """Run ``task`` from input ``skip`` on; input ``crashed_at`` (if set) killed a worker and becomes an error."""

    task_id: int
    segment: int
    task: Task
    skip: int
    crashed_at: int | None
    prefix: str
    attempt: int = 1


@dataclass(frozen=True)
class Config:
    rules_dir: str
    profile: str | None
    as_of: dt.date
    validate: str


# --------------------------------------------------------------------------------------------
# process life


def watch_parent(parent_pid: int) -> None:
    """Die with the parent: the kernel's parent-death signal on Linux, a polling thread elsewhere."""
    armed = False
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            armed = libc.prctl(1, int(signal.SIGKILL), 0, 0, 0) == 0  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            armed = False
    if os.getppid() != parent_pid:  # the parent died before the signal was armed
        os._exit(1)
    if not armed:

        def poll() -> None:
            while True:
                time.sleep(0.5)
                if os.getppid() != parent_pid:
                    os._exit(1)

        threading.Thread(target=poll, daemon=True, name="parent-watch").start()


def worker_main(conn: Any, parent_pid: int, config: Config) -> None:
    """Entry point of a worker process."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides what an interrupt means
    watch_parent(parent_pid)
    worker = Worker(config)
    gc.freeze()  # compiled rules live as long as the process
    conn.send(("ready", os.getpid(), time.process_time()))
    while True:
        try:
            job = conn.recv()
        except EOFError:
            return
        if job is None:
            return

        def progress(units: int, errors: int, task_id: int = job.task_id) -> None:
            conn.send(("progress", task_id, units, errors))

        stats = worker.run(job, progress)
        conn.send(("done", job.task_id, job.segment, stats))


# --------------------------------------------------------------------------------------------
# reading lines


def _open(path: str, gz: bool) -> BinaryIO:
    if gz:
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return open(path, "rb")


Line = tuple[int, Union[bytes, InputError]]


def _lines(name: str, path: str, start: int, end: int, first_line: int, gz: bool) -> Iterator[Line]:
    """(line number, raw line) from ``[start, end)``; a line above the size limit or a read failure
    comes as an ``InputError`` and reading stops after a read failure."""
    lineno = first_line - 1
    try:
        fh = _open(path, gz)
    except OSError as exc:
        yield first_line, InputError("not-found", name, f"cannot be read: {exc.strerror or exc}")
        return
    with fh:
        try:
            if not gz:
                fh.seek(start)
            pos = start
            while gz or pos < end:
                raw = fh.readline(MAX_BYTES + 2)
                if not raw:
                    return
                pos += len(raw)
                lineno += 1
                if len(raw) > MAX_BYTES + 1 and not raw.endswith(b"\n"):
                    while raw and not raw.endswith(b"\n"):
                        raw = fh.readline(1024 * 1024)
                        pos += len(raw)
                    yield (
                        lineno,
                        InputError(
                            "too-large", name, f"line is longer than the limit of {MAX_BYTES} bytes (50 MiB)", lineno
                        ),
                    )
                    continue
                yield lineno, raw
        except (OSError, EOFError, gzip.BadGzipFile, zlib.error) as exc:
            yield lineno + 1, InputError("not-found", name, f"read failed: {exc}", lineno + 1)


def _strip(raw: bytes) -> bytes:
    raw = raw.rstrip(b"\r\n")
    if raw[:3] == b"\xef\xbb\xbf":
        raw = raw[3:]
    return raw


def _bad_json(raw: bytes, exc: orjson.JSONDecodeError, name: str, line: int) -> InputError:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as uexc:
        return InputError("not-utf8", name, f"not UTF-8 text (invalid byte at offset {uexc.start})", line)
    if "recursion" in exc.msg or "depth" in exc.msg:
        return InputError("too-deep", name, "JSON nesting deeper than the limit", line)
    return InputError("not-json", name, f"not valid JSON: {exc.msg}", line)


def _describe(obj: object) -> str:
    if isinstance(obj, dict):
        return "a JSON object without resourceType"
    if isinstance(obj, list):
        return "a JSON array"
    return f"a JSON {type(obj).__name__}" if obj is not None else "JSON null"


def patient_key(resource: dict[str, Any]) -> str | None:
    """``Patient/<id>`` the resource belongs to (a Patient to itself), else ``None``."""
    if resource.get("resourceType") == "Patient":
        pid = resource.get("id")
        return f"Patient/{pid}" if isinstance(pid, str) and pid else None
    for link in _PATIENT_LINKS:
        ref = resource.get(link)
        if isinstance(ref, dict) and isinstance(ref.get("reference"), str):
            parts = ref["reference"].split("/_history/")[0].rstrip("/").split("/")
            if len(parts) >= 2 and parts[-2] == "Patient" and parts[-1]:
                return f"Patient/{parts[-1]}"
    return None


def bucket_of(key: str, buckets: int) -> int:
    return zlib.crc32(key.encode("utf-8")) % buckets


def _references(obj: object) -> set[str]:
    out: set[str] = set()
    collect_references(obj, out)
    return out


def read_index(path: str) -> dict[str, Any]:
    with open(path, "rb") as fh:
        fh.seek(-_FOOTER.size, os.SEEK_END)
        (length,) = _FOOTER.unpack(fh.read(_FOOTER.size))
        fh.seek(-_FOOTER.size - length, os.SEEK_END)
        index: dict[str, Any] = orjson.loads(fh.read(length))
    return index


def _segment(path: str, where: list[int]) -> bytes:
    off, length = where
    if not length:
        return b""
    with open(path, "rb") as fh:
        fh.seek(off)
        return fh.read(length)


# --------------------------------------------------------------------------------------------
# units of work


@dataclass
class Unit:
    """One input of a task: its name (for a crash error), and how to load it."""

    name: str
    line: int | None
    load: Callable[[], LoadedBundle | InputError]
    lines: int = 0


class Sink:
    """The part files of one job; every input's lines are written before the next input starts."""

    def __init__(self, prefix: str) -> None:
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND
        self.nd = os.open(prefix + ".ndjson", flags, 0o644)
        self.idx = os.open(prefix + ".idx", flags, 0o644)
        self.results = 0
        self.errors = 0
        self.lines_results = 0
        self.lines_errors = 0
        self.codes: dict[str, int] = {}

    def put(self, doc: dict[str, Any], source: str, lines: int) -> None:
        line = to_json(doc, indent=False)
        error = doc.get("schema") == "mdtflag.error/1"
        status = doc["error"]["code"] if error else "ok"
        idx = f"{status}\t{lines}\t".encode() + csv_line(summary_row(doc, source))
        _write_all(self.nd, line)
        _write_all(self.idx, idx)
        if error:
            self.errors += 1
            self.lines_errors += lines
            self.codes[status] = self.codes.get(status, 0) + 1
        else:
            self.results += 1
            self.lines_results += lines

    def close(self) -> None:
        os.close(self.nd)
        os.close(self.idx)

    def stats(self) -> dict[str, Any]:
        return {
            "results": self.results,
            "errors": self.errors,
            "lines_results": self.lines_results,
            "lines_errors": self.lines_errors,
            "codes": self.codes,
        }


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def crash_doc(name: str, line: int | None) -> dict[str, Any]:
    return ErrorResult(source=name, error=ErrorBody(code="engine-crash", message=CRASH_MESSAGE, line=line)).to_dict()


class Worker:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.ev: Evaluator = cached_evaluator(config.rules_dir, config.profile)  # compiled once, shared by the workers
        self.profile = config.profile
        self._shared: dict[tuple[str, ...], dict[str, bytes]] = {}
        self._fault = os.environ.get("MDTFLAG_FAULT_CRASH_ON")  # fault injection, for crash tests

    # ---- evaluation tasks

    def run(self, job: Job, progress: Callable[[int, int], None]) -> dict[str, Any]:
        if isinstance(job.task, SpillTask):
            return self._spill(job, job.task)
        sink = Sink(job.prefix)
        try:
            last = time.monotonic()
            done = errors = 0
            for k, unit in enumerate(self._units(job.task)):
                if k < job.skip:
                    continue
                if k == job.crashed_at:
                    sink.put(crash_doc(unit.name, unit.line), unit.name, unit.lines)
                    continue
                if self._fault and unit.name.endswith(self._fault):
                    os._exit(139)
                item = unit.load()
                if isinstance(item, InputError):
                    doc: dict[str, Any] = error_result(item).to_dict()
                    source = item.source
                else:
                    try:
                        doc = self.ev.run(item, self.config.as_of, self.profile)[0]
                        source = item.source
                    except InputError as e:
                        doc = error_result(e).to_dict()
                        source = e.source
                before = sink.errors
                sink.put(doc, source, unit.lines)
                done += 1
                errors += sink.errors - before
                now = time.monotonic()
                if now - last > 1.0:
                    progress(done, errors)
                    done = errors = 0
                    last = now
            stats = sink.stats()
            stats["unreported_units"] = done
            stats["unreported_errors"] = errors
            return stats
        finally:
            sink.close()

    def _units(self, task: Task) -> Iterator[Unit]:
        if isinstance(task, FilesTask):
            yield from self._file_units(task)
        elif isinstance(task, LinesTask):
            yield from self._line_units(task)
        elif isinstance(task, GroupTask):
            yield from self._group_units(task)

    def _file_units(self, task: FilesTask) -> Iterator[Unit]:
        validate = self.config.validate
        for item in task.items:
            if item.problem is not None:
                p = item.problem
                err = InputError(p.code, p.source, p.message, p.line)
                yield Unit(item.name, None, lambda err=err: err)  # type: ignore[misc]
                continue
            path = item.path or ""

            def load(path: str = path, name: str = item.name) -> LoadedBundle | InputError:
                try:
                    return load_bundle(path, validate=validate, name=name)  # type: ignore[arg-type]
                except InputError as e:
                    return e

            yield Unit(item.name, None, load)

    def _line_units(self, task: LinesTask) -> Iterator[Unit]:
        validate = self.config.validate
        for lineno, raw in _lines(task.name, task.path, task.start, task.end, task.first_line, task.gz):
            if isinstance(raw, InputError):
                err = raw
                yield Unit(task.name, lineno, lambda err=err: err)  # type: ignore[misc]
                continue
            if not raw.strip():
                continue

            def load(raw: bytes = raw, lineno: int = lineno) -> LoadedBundle | InputError:
                try:
                    return load_bundle(
                        _strip(raw),
                        validate=validate,  # type: ignore[arg-type]
                        name=f"{task.name}:{lineno}",
                    )
                except InputError as e:
                    e.source = task.name
                    e.line = lineno
                    return e

            yield Unit(task.name, lineno, load)

    # ---- Bulk export, pass 2: one bucket, grouped by patient

    def _shared_for(self, task: GroupTask) -> dict[str, bytes]:
        got = self._shared.get(task.spills)
        if got is None:
            got = {}
            for path in task.spills:
                data = _segment(path, read_index(path)["shared"])
                for rec in data.splitlines():
                    head, raw = rec.split(b"\t", 1)
                    key = orjson.loads(head)[0]
                    got[key] = raw
            self._shared = {task.spills: got}  # one export at a time
        return got

    def _group_units(self, task: GroupTask) -> Iterator[Unit]:
        groups: dict[str, list[tuple[str, int, int, bytes]]] = {}
        for path in task.spills:
            data = _segment(path, read_index(path)["buckets"][task.bucket])
            for rec in data.splitlines():
                head, raw = rec.split(b"\t", 1)
                key, rt, fi, ln = orjson.loads(head)
                groups.setdefault(key, []).append((rt, fi, ln, raw))
            del data
        shared = self._shared_for(task)
        validate = self.config.validate
        names = task.names
        for key in list(groups):
            members = groups.pop(key)
            if key.startswith("B:"):
                _, fi, ln, raw = members[0]

                def load_line(raw: bytes = raw, name: str = names[fi], ln: int = ln) -> LoadedBundle | InputError:
                    try:
                        return load_bundle(raw, validate=validate, name=f"{name}:{ln}")  # type: ignore[arg-type]
                    except InputError as e:
                        e.source = name
                        e.line = ln
                        return e

                yield Unit(names[fi], ln, load_line, 1)
                continue
            patients = [m for m in members if m[0] == "Patient"]
            first = patients[0] if patients else members[0]
            source = f"{names[first[1]]}#{key}"

            def load_group(
                members: list[tuple[str, int, int, bytes]] = members,
                key: str = key,
                source: str = source,
                has_patient: bool = bool(patients),
            ) -> LoadedBundle | InputError:
                if not has_patient:
                    return InputError(
                        "no-patient", source, f"{len(members)} resources refer to {key}, which is not in the export"
                    )
                body = (
                    b'{"resourceType":"Bundle","type":"collection","entry":['
                    + b",".join(b'{"resource":' + m[3] + b"}" for m in members)
                    + b"]}"
                )
                try:
                    if not shared:
                        return load_bundle(body, validate=validate, name=source)  # type: ignore[arg-type]
                    bundle = orjson.loads(body)
                    extra = [orjson.loads(shared[r]) for r in sorted(_references(bundle)) if r in shared]
                    bundle["entry"].extend({"resource": r} for r in extra)
                    return load_bundle(bundle, validate=validate, name=source)  # type: ignore[arg-type]
                except InputError as e:
                    return e

            yield Unit(source, None, load_group, len(members))

    # ---- Bulk export, pass 1: a range of one file into buckets

    def _spill(self, job: Job, task: SpillTask) -> dict[str, Any]:
        sink = Sink(job.prefix)
        buckets: list[list[bytes]] = [[] for _ in range(task.buckets)]
        shared: list[bytes] = []
        st: dict[str, Any] = {
            "lines": 0,
            "blank": 0,
            "spilled": 0,
            "patients": 0,
            "bundles": 0,
            "unassigned": 0,
            "unassigned_types": {},
            "unassigned_examples": [],
        }
        try:
            for lineno, raw in _lines(task.name, task.path, task.start, task.end, task.first_line, task.gz):
                if isinstance(raw, InputError):
                    if raw.code == "too-large":
                        st["lines"] += 1
                    sink.put(error_result(raw).to_dict(), raw.source, 1 if raw.code == "too-large" else 0)
                    continue
                st["lines"] += 1
                line = _strip(raw)
                if not line.strip():
                    st["blank"] += 1
                    continue
                try:
                    res = orjson.loads(line)
                except orjson.JSONDecodeError as exc:
                    err = _bad_json(line, exc, task.name, lineno)
                    sink.put(error_result(err).to_dict(), err.source, 1)
                    continue
                rt = res.get("resourceType") if isinstance(res, dict) else None
                if not isinstance(rt, str) or not rt:
                    err = InputError(
                        "not-bundle", task.name, f"expected one FHIR resource per line, found {_describe(res)}", lineno
                    )
                    sink.put(error_result(err).to_dict(), err.source, 1)
                    continue
                if rt == "Bundle":
                    key: str | None = f"B:{task.file_index}:{lineno}"
                    st["bundles"] += 1
                else:
                    key = patient_key(res)
                if key is None:
                    if rt == "Patient":
                        err = InputError("no-patient", task.name, "Patient resource without an id", lineno)
                        sink.put(error_result(err).to_dict(), err.source, 1)
                        continue
                    rid = res.get("id")
                    ref = f"{rt}/{rid}" if isinstance(rid, str) and rid else f"{rt}/(no id)"
                    st["unassigned"] += 1
                    types = st["unassigned_types"]
                    types[rt] = types.get(rt, 0) + 1
                    if len(st["unassigned_examples"]) < EXAMPLES_PER_TASK:
                        st["unassigned_examples"].append({"file": task.name, "line": lineno, "resource": ref})
                    if isinstance(rid, str) and rid:
                        shared.append(orjson.dumps([ref, rt, task.file_index, lineno]) + b"\t" + line + b"\n")
                    continue
                if rt == "Patient":
                    st["patients"] += 1
                st["spilled"] += 1
                head = orjson.dumps([key, rt, task.file_index, lineno])
                buckets[bucket_of(key, task.buckets)].append(head + b"\t" + line + b"\n")
            _write_spill(task.out, buckets, shared)
        finally:
            sink.close()
        st.update(sink.stats())
        st["unreported_units"] = sink.results + sink.errors
        st["unreported_errors"] = sink.errors
        return st


def _write_spill(out: str, buckets: list[list[bytes]], shared: list[bytes]) -> None:
    index: dict[str, Any] = {"buckets": []}
    tmp = out + ".tmp"
    with open(tmp, "wb") as fh:
        pos = 0
        for recs in buckets:
            data = b"".join(recs)
            fh.write(data)
            index["buckets"].append([pos, len(data)])
            pos += len(data)
            recs.clear()
        data = b"".join(shared)
        fh.write(data)
        index["shared"] = [pos, len(data)]
        blob = orjson.dumps(index)
        fh.write(blob)
        fh.write(_FOOTER.pack(len(blob)))
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, out)
