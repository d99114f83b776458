"""The parent process of a cohort run: hand out tasks, write results in order, account, checkpoint.

The parent never parses a patient. It lists the inputs and cuts them into tasks
(:mod:`mdtflag.cohort.plan`), keeps each worker busy with one job, appends each finished task's part
files to the results (and the summary CSV) in task order, and every couple of seconds makes what it
has written durable (fsync) and records it in the run manifest. ``resume=True`` truncates the results
to the last checkpoint and continues with the next task; it refuses when the rule set, ``as_of``, the
profile, the validation mode or the inputs differ from the manifest.

Accounting, checked at the end and written to the manifest: every input ends as a result, a named
error or (a Bulk export line) a resource that belongs to no patient; for Bulk exports every line is
counted where it ended (in a result, in an error, unassigned, or blank).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import multiprocessing as mp
import os
import resource
import shutil
import signal
import sys
import tempfile
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from mdtflag._version import __version__
from mdtflag.cohort.files import (
    _add,
    _append_file,
    _complete_lines,
    _empty_totals,
    _idx_stats,
    _summary_rows,
    _truncate_lines,
    write_json_atomic,
)
from mdtflag.cohort.plan import (
    BUCKET_BYTES,
    FILES_PER_TASK,
    LINES_BYTES,
    SPILL_BYTES,
    GroupTask,
    Plan,
    SpillTask,
    copy_stdin,
    discover,
    make_plan,
)
from mdtflag.cohort.summary import csv_header
from mdtflag.cohort.worker import Config, Job, Sink, _write_spill, crash_doc, worker_main

MANIFEST_SCHEMA = "mdtflag.run/1"
CHECKPOINT_SECONDS = 1.0
#: Tasks allowed to run ahead of the oldest unwritten task, per worker.
WINDOW_PER_WORKER = 8
#: Inputs listed one by one in the manifest (beyond this, only their count and digest).
LIST_LIMIT = 10_000


class ResumeRefused(Exception):
    """``--resume`` cannot continue this run; the message says why."""


class RunFailed(Exception):
    """The run could not go on (workers cannot start, the output cannot be written)."""


@dataclass
class RuleSetId:
    root: str
    name: str
    version: str
    digest: str


@dataclass
class Options:
    inputs: Sequence[str]
    ruleset: RuleSetId
    as_of: dt.date
    profile: str
    validate: str
    workers: int = 1
    output: str | None = None  # None: standard output
    summary: str | None = None
    manifest: str | None = None
    resume: bool = False
    recursive: bool = True
    progress: bool = False
    as_of_given: bool = True


@dataclass
class Outcome:
    results: int
    errors: int
    unassigned: int
    manifest: dict[str, Any]
    manifest_path: str | None
    interrupted: bool = False

    @property
    def inputs(self) -> int:
        return self.results + self.errors + self.unassigned


@dataclass
class _TaskState:
    segments: list[str] = field(default_factory=list)
    stats: list[dict[str, Any]] = field(default_factory=list)
    done: bool = False
    attempt: int = 1


class _Handle:
    def __init__(self, ctx: Any, config: Config) -> None:
        parent_conn, child_conn = ctx.Pipe()
        self.proc = ctx.Process(
            target=worker_main, args=(child_conn, os.getpid(), config), daemon=True, name="mdtflag-worker"
        )
        self.proc.start()
        child_conn.close()
        self.conn: Connection = parent_conn
        self.ready = False
        self.broken = False
        self.job: Job | None = None


class Runner:
    def __init__(self, opts: Options, stdin: BinaryIO | None = None) -> None:
        self.opts = opts
        self.stdin = stdin
        self.t0 = time.monotonic()
        self.cpu0 = resource.getrusage(resource.RUSAGE_SELF)
        self.children0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.manifest_path = opts.manifest or (opts.output + ".manifest.json" if opts.output else None)
        self.tmp_work: str | None = None
        if opts.output:
            self.work = opts.output + ".work"
        else:
            self.tmp_work = tempfile.mkdtemp(prefix="mdtflag-batch-")
            self.work = self.tmp_work
        self.totals = _empty_totals()
        self.bar: Any = None
        self.shown_units = 0
        self.shown_errors = 0
        self.startup_cpu = 0.0

    # ------------------------------------------------------------------ planning and the manifest

    def _plan(self) -> tuple[Plan, str | None]:
        os.makedirs(os.path.join(self.work, "spill"), exist_ok=True)
        os.makedirs(os.path.join(self.work, "parts"), exist_ok=True)
        stdin_path = stdin_digest = None
        if "-" in self.opts.inputs:
            stdin_path = os.path.join(self.work, "stdin.ndjson")
            src = self.stdin if self.stdin is not None else sys.stdin.buffer
            stdin_digest = copy_stdin(stdin_path + ".new", src)
            os.replace(stdin_path + ".new", stdin_path)
        items, exports = discover(
            self.opts.inputs, recursive=self.opts.recursive, stdin_path=stdin_path, stdin_digest=stdin_digest
        )
        return make_plan(items, exports, self.work), stdin_digest

    def _identity(self, plan: Plan) -> dict[str, Any]:
        rs = self.opts.ruleset
        found = plan.found
        listed = [
            {
                "path": f.name,
                "kind": f.kind,
                "size": f.size,
                "mtime_ns": f.mtime_ns,
                **({"digest": f.digest} if f.digest else {}),
            }
            for f in found[:LIST_LIMIT]
        ]
        exports = [
            {
                "folder": ex.files[0].name.rsplit(os.sep, 1)[0] if os.sep in ex.files[0].name else ".",
                "files": [f.name for f in ex.files],
                "manifest": ex.manifest,
                "declared_counts": ex.declared,
            }
            for ex in plan.exports
        ]
        return {
            "ruleset": {"name": rs.name, "version": rs.version, "digest": rs.digest, "root": rs.root},
            "as_of": self.opts.as_of.isoformat(),
            "profile": self.opts.profile,
            "validate": self.opts.validate,
            "recursive": self.opts.recursive,
            "arguments": list(self.opts.inputs),
            "inputs": {
                "digest": plan.inputs_digest(),
                "files": len(found),
                "bytes": sum(f.size for f in found),
                "problems": len(plan.problems),
                "listed": listed,
                "complete_list": len(found) <= LIST_LIMIT,
            },
            "exports": exports,
            "plan": {
                "tasks": len(plan.tasks),
                "files_per_task": FILES_PER_TASK,
                "lines_bytes": LINES_BYTES,
                "spill_bytes": SPILL_BYTES,
                "bucket_bytes": BUCKET_BYTES,
            },
        }

    def _check_resume(self, old: dict[str, Any], ident: dict[str, Any]) -> None:
        def differs(what: str, a: object, b: object) -> None:
            if a != b:
                raise ResumeRefused(f"{what} changed since the interrupted run ({a} → {b}); start a new run instead")

        differs("the rule set", old["ruleset"]["digest"], ident["ruleset"]["digest"])
        differs("as_of", old["as_of"], ident["as_of"])
        differs("the profile", old["profile"], ident["profile"])
        differs("the validation mode", old["validate"], ident["validate"])
        if old["inputs"]["digest"] != ident["inputs"]["digest"]:
            before = {x["path"]: x for x in old["inputs"]["listed"]}
            now = {x["path"]: x for x in ident["inputs"]["listed"]}
            changed = sorted(p for p in set(before) | set(now) if before.get(p) != now.get(p))
            detail = f" ({', '.join(changed[:5])}{' …' if len(changed) > 5 else ''})" if changed else ""
            raise ResumeRefused(f"the inputs changed since the interrupted run{detail}; start a new run instead")
        differs("the way inputs are cut into tasks", old["plan"], ident["plan"])

    def _load_manifest(self) -> dict[str, Any]:
        if not self.manifest_path or not os.path.exists(self.manifest_path):
            raise ResumeRefused(f"nothing to resume: no run manifest at {self.manifest_path}")
        old: dict[str, Any] = orjson.loads(Path(self.manifest_path).read_bytes())
        if old.get("schema") != MANIFEST_SCHEMA:
            raise ResumeRefused(f"{self.manifest_path} is not a run manifest")
        return old

    # ------------------------------------------------------------------ the run

    def run(self) -> Outcome:
        old: dict[str, Any] | None = None
        if self.opts.resume:
            if not self.opts.output:
                raise ResumeRefused("--resume needs the results file (-o) of the interrupted run")
            old = self._load_manifest()
            if not self.opts.as_of_given:
                self.opts.as_of = dt.date.fromisoformat(old["as_of"])
            if old.get("state") == "complete":
                c = old["counts"]
                return Outcome(c["results"], c["errors"], c["unassigned"], old, self.manifest_path)
        plan, _ = self._plan()
        ident = self._identity(plan)
        self.buckets = {t.export: t.bucket + 1 for t in plan.tasks if isinstance(t, GroupTask)}
        start = 0
        out_bytes = sum_bytes = 0
        if old is not None:
            self._check_resume(old, ident)
            prog = old["progress"]
            start = prog["tasks_committed"]
            out_bytes = prog["results_bytes"]
            sum_bytes = prog["summary_bytes"]
            self.totals = prog["totals"]
            if self.opts.summary is None:
                self.opts.summary = old.get("summary")
            elif os.path.abspath(self.opts.summary) != old.get("summary"):
                raise ResumeRefused(
                    f"the interrupted run wrote its summary to {old.get('summary') or 'no file'}, "
                    f"not {self.opts.summary}"
                )
        shutil.rmtree(os.path.join(self.work, "parts"), ignore_errors=True)
        os.makedirs(os.path.join(self.work, "parts"), exist_ok=True)
        self.manifest: dict[str, Any] = {
            "schema": MANIFEST_SCHEMA,
            "state": "running",
            "mdtflag": __version__,
            "started": (old or {}).get("started") or dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "results": os.path.abspath(self.opts.output) if self.opts.output else None,
            "summary": os.path.abspath(self.opts.summary) if self.opts.summary else None,
            "resumed": ((old or {}).get("resumed", 0) + 1) if old else 0,
            **ident,
        }
        out_fd, sum_fd = self._open_outputs(out_bytes, sum_bytes, old is not None)
        self.out_fd, self.sum_fd = out_fd, sum_fd
        self.out_bytes = out_bytes
        interrupted = False
        try:
            interrupted = self._loop(plan, start)
        finally:
            self._close_outputs()
        return self._finish(plan, interrupted)

    def _open_outputs(self, out_bytes: int, sum_bytes: int, resuming: bool) -> tuple[int, int | None]:
        if self.opts.output and self.opts.output != "-":
            out_fd = self._open_truncated(self.opts.output, out_bytes, resuming, "results")
        else:
            out_fd = sys.stdout.buffer.fileno()
            sys.stdout.flush()
        sum_fd = None
        self.sum_bytes = sum_bytes
        if self.opts.summary:
            keep = resuming and sum_bytes > 0
            sum_fd = self._open_truncated(self.opts.summary, sum_bytes, keep, "summary")
            if not keep:
                head = csv_header()
                os.write(sum_fd, head)
                self.sum_bytes = len(head)
        return out_fd, sum_fd

    def _open_truncated(self, path: str, keep: int, resuming: bool, what: str) -> int:
        if resuming:
            try:
                size = os.path.getsize(path)
            except OSError:
                size = -1
            if size < keep:
                raise ResumeRefused(
                    f"the {what} file {path} is shorter than the run manifest records; it was changed or removed"
                )
            fd = os.open(path, os.O_WRONLY)
            os.ftruncate(fd, keep)
            os.lseek(fd, keep, os.SEEK_SET)
            return fd
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        return fd

    def _close_outputs(self) -> None:
        if self.opts.output and self.opts.output != "-":
            os.close(self.out_fd)
        if self.sum_fd is not None:
            os.close(self.sum_fd)

    def _checkpoint(self, committed: int) -> None:
        durable = bool(self.opts.output and self.opts.output != "-")
        if durable:
            os.fsync(self.out_fd)
        if self.sum_fd is not None:
            os.fsync(self.sum_fd)
        self.manifest["progress"] = {
            "tasks_committed": committed,
            "results_bytes": self.out_bytes,
            "summary_bytes": self.sum_bytes if self.sum_fd is not None else 0,
            "totals": orjson.loads(orjson.dumps(self.totals)),
        }
        self.manifest["updated"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        if self.manifest_path and durable:
            write_json_atomic(self.manifest_path, self.manifest)

    def _loop(self, plan: Plan, start: int) -> bool:
        opts = self.opts
        ctx = mp.get_context("spawn")
        config = Config(opts.ruleset.root, opts.profile, opts.as_of, opts.validate)
        tasks = plan.tasks
        states: dict[int, _TaskState] = {}
        done_ids: set[int] = set(range(start))
        queue: deque[Job] = deque()
        next_task = start
        commit = start
        handles: list[_Handle] = [_Handle(ctx, config) for _ in range(max(1, opts.workers))]
        window = WINDOW_PER_WORKER * max(1, opts.workers)
        start_failures = 0
        last_checkpoint = time.monotonic()
        self.first_ready: float | None = None
        self._progress_open(plan, start)
        stop = {"signal": False}

        def on_term(signum: int, frame: Any) -> None:
            stop["signal"] = True

        old_term = signal.signal(signal.SIGTERM, on_term) if _main_thread() else None
        self._checkpoint(commit)
        try:
            while commit < len(tasks):
                if stop["signal"]:
                    return True
                for h in handles:
                    if not h.ready or h.job is not None or h.broken:
                        continue
                    job: Job | None = queue.popleft() if queue else None
                    if job is None and next_task < len(tasks) and next_task - commit < window:
                        deps = plan.deps.get(next_task, ())
                        if all(d in done_ids for d in deps):
                            prefix = os.path.join(self.work, "parts", f"t{next_task}.s0")
                            states[next_task] = _TaskState([prefix])
                            job = Job(next_task, 0, tasks[next_task], 0, None, prefix)
                            next_task += 1
                    if job is None:
                        break
                    try:
                        h.conn.send(job)
                    except OSError:  # the worker died since it last spoke
                        queue.appendleft(job)
                        h.broken = True
                        continue
                    h.job = job
                conns = [h.conn for h in handles] + [h.proc.sentinel for h in handles]
                for obj in wait(conns, timeout=0.5):
                    hit = next((x for x in handles if x.conn is obj or x.proc.sentinel == obj), None)
                    if hit is None:
                        continue
                    if obj is hit.conn:
                        try:
                            while hit.conn.poll():
                                self._message(hit, hit.conn.recv(), states, done_ids, tasks)
                        except (EOFError, OSError):
                            pass
                for h in list(handles):
                    if h.proc.is_alive():
                        continue
                    try:
                        while h.conn.poll():
                            self._message(h, h.conn.recv(), states, done_ids, tasks)
                    except (EOFError, OSError):
                        pass
                    h.proc.join()
                    h.conn.close()
                    handles.remove(h)
                    if not h.ready:
                        start_failures += 1
                        if start_failures > 2 * max(1, opts.workers):
                            raise RunFailed(f"worker processes cannot start (exit code {h.proc.exitcode})")
                    if h.job is not None:
                        self._died(h.job, states, queue, done_ids, tasks)
                    handles.append(_Handle(ctx, config))
                while commit < len(tasks) and commit in done_ids:
                    if commit in states:
                        self._commit(commit, states.pop(commit), tasks, plan)
                    commit += 1
                if time.monotonic() - last_checkpoint >= CHECKPOINT_SECONDS:
                    self._checkpoint(commit)
                    last_checkpoint = time.monotonic()
            self._checkpoint(commit)
            return False
        except KeyboardInterrupt:
            return True
        finally:
            if old_term is not None:
                signal.signal(signal.SIGTERM, old_term)
            self.end_eval = time.monotonic()
            self.committed = commit
            for h in handles:
                with contextlib.suppress(OSError):
                    h.conn.send(None)
            deadline = time.monotonic() + 5
            for h in handles:
                h.proc.join(timeout=max(0.0, deadline - time.monotonic()))
                if h.proc.is_alive():
                    h.proc.kill()
                    h.proc.join()
            if self.bar is not None:
                self.bar.close()

    def _message(
        self, h: _Handle, msg: tuple[Any, ...], states: dict[int, _TaskState], done_ids: set[int], tasks: Sequence[Any]
    ) -> None:
        kind = msg[0]
        if kind == "ready":
            h.ready = True
            self.startup_cpu += msg[2]
            if self.first_ready is None:
                self.first_ready = time.monotonic()
        elif kind == "progress":
            self._progress(msg[2], msg[3])
        elif kind == "done":
            _, task_id, segment, stats = msg
            st = states[task_id]
            st.stats.append(stats)
            if segment == len(st.segments) - 1:
                st.done = True
                done_ids.add(task_id)
            self._progress(stats.get("unreported_units", 0), stats.get("unreported_errors", 0))
            if isinstance(tasks[task_id], SpillTask) and self.bar is not None:
                self.bar.total = (self.bar.total or 0) + stats.get("patients", 0) + stats.get("bundles", 0)
            h.job = None

    def _died(
        self, job: Job, states: dict[int, _TaskState], queue: deque[Job], done_ids: set[int], tasks: Sequence[Any]
    ) -> None:
        """A worker died running ``job``: its current input becomes an error, the task goes on elsewhere."""
        st = states[job.task_id]
        task = tasks[job.task_id]
        if isinstance(task, SpillTask):
            if job.attempt == 1:
                queue.appendleft(Job(job.task_id, job.segment, task, 0, None, job.prefix, attempt=2))
                return
            sink = Sink(job.prefix)
            where = f"lines {task.first_line}–{task.first_line + (task.lines or 1) - 1}" if not task.gz else "the file"
            doc = crash_doc(task.name, task.first_line)
            doc["error"]["message"] = f"the process reading {where} died twice; these lines were not read"
            sink.put(doc, task.name, 0)
            sink.close()
            _write_spill(task.out, [[] for _ in range(task.buckets)], [])
            st.stats.append(sink.stats())
            st.done = True
            done_ids.add(job.task_id)
            return
        nd, idx = job.prefix + ".ndjson", job.prefix + ".idx"
        n_nd, _ = _complete_lines(nd)
        n_idx, _ = _complete_lines(idx)
        _truncate_lines(nd, n_idx)
        _truncate_lines(idx, n_idx)
        st.stats.append(_idx_stats(idx))
        if n_nd > n_idx:
            at, crashed = job.skip + n_idx, None  # died after its last input, before the next
        else:
            at = job.skip + n_idx
            crashed = at
        segment = len(st.segments)
        prefix = job.prefix.rsplit(".s", 1)[0] + f".s{segment}"
        st.segments.append(prefix)
        queue.appendleft(Job(job.task_id, segment, task, at, crashed, prefix))

    def _commit(self, task_id: int, st: _TaskState, tasks: Sequence[Any], plan: Plan) -> None:
        for prefix in st.segments:
            nd = prefix + ".ndjson"
            if os.path.exists(nd):
                self.out_bytes += _append_file(self.out_fd, nd)
                os.unlink(nd)
            idx = prefix + ".idx"
            if os.path.exists(idx):
                if self.sum_fd is not None:
                    rows = _summary_rows(idx)
                    view = memoryview(rows)
                    while view:
                        view = view[os.write(self.sum_fd, view) :]
                    self.sum_bytes += len(rows)
                os.unlink(idx)
        task = tasks[task_id]
        bulk = isinstance(task, (SpillTask, GroupTask))
        for stats in st.stats:
            _add(self.totals, stats, bulk)
        if isinstance(task, GroupTask) and task.bucket == self.buckets[task.export] - 1:
            for path in task.spills:
                with contextlib.suppress(OSError):
                    os.unlink(path)

    # ------------------------------------------------------------------ progress and the end

    def _progress_open(self, plan: Plan, start: int) -> None:
        if not self.opts.progress:
            return
        from tqdm import tqdm

        self.bar = tqdm(
            total=plan.expected_units or None,
            unit=" patients",
            file=sys.stderr,
            dynamic_ncols=True,
            smoothing=0.1,
            initial=self.totals["results"] + self.totals["errors"] if start else 0,
        )

    def _progress(self, units: int, errors: int) -> None:
        self.shown_errors += errors
        if self.bar is not None and units:
            self.bar.update(units)
            self.bar.set_postfix(errors=self.shown_errors, refresh=False)

    def _finish(self, plan: Plan, interrupted: bool) -> Outcome:
        t = self.totals
        lines = t["lines"]
        complete = not interrupted and self.committed >= len(plan.tasks)
        balanced = lines["read"] == lines["blank"] + lines["in_results"] + lines["in_errors"] + lines["unassigned"]
        wall = time.monotonic() - self.t0
        cpu = resource.getrusage(resource.RUSAGE_SELF)
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        ready = self.first_ready or self.t0
        units = t["results"] + t["errors"]
        evaluating = max(1e-9, self.end_eval - ready)
        self.manifest["timing"] = {
            "wall_s": round(wall, 3),
            "startup_s": round(ready - self.t0, 3),
            "evaluation_s": round(evaluating, 3),
            "units_per_s": round(units / evaluating, 2) if complete else None,
            "cpu_parent_s": round(cpu.ru_utime + cpu.ru_stime - self.cpu0.ru_utime - self.cpu0.ru_stime, 3),
            "cpu_workers_s": round(
                kids.ru_utime + kids.ru_stime - self.children0.ru_utime - self.children0.ru_stime, 3
            ),
            "cpu_workers_startup_s": round(self.startup_cpu, 3),
            "peak_rss_parent_mb": round(cpu.ru_maxrss / 1024, 1),
            "peak_rss_worker_mb": round(kids.ru_maxrss / 1024, 1),
            "workers": self.opts.workers,
        }
        self.manifest["counts"] = {
            "inputs": units + t["unassigned"],
            "results": t["results"],
            "errors": t["errors"],
            "unassigned": t["unassigned"],
            "error_codes": dict(sorted(t["error_codes"].items())),
            "lines": lines,
            "lines_balanced": balanced,
            "bulk_patients": t["bulk_patients"],
            "bulk_bundles": t["bulk_bundles"],
        }
        self.manifest["unassigned"] = {
            "count": t["unassigned"],
            "by_type": dict(sorted(t["unassigned_types"].items())),
            "examples": t["unassigned_examples"],
        }
        self.manifest["state"] = "complete" if complete else "interrupted"
        self.manifest["updated"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        if self.manifest_path and (self.opts.output or self.opts.manifest):
            write_json_atomic(self.manifest_path, self.manifest)
        if complete:
            shutil.rmtree(self.work, ignore_errors=True)
        elif self.tmp_work:
            shutil.rmtree(self.tmp_work, ignore_errors=True)
        if complete and not balanced:
            raise RunFailed(f"the line accounting does not balance: {lines}")
        return Outcome(t["results"], t["errors"], t["unassigned"], self.manifest, self.manifest_path, not complete)


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def run(opts: Options, stdin: BinaryIO | None = None) -> Outcome:
    """Run (or resume) a cohort run; see the module documentation."""
    return Runner(opts, stdin).run()
