"""Reporters of a ``mdtflag rules test`` run: text, JSON (as data) and JUnit XML."""
from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

from mdtflag.authoring.casefile import COVERAGE_FILE
from mdtflag.authoring.coverage import OUTCOMES, CoverageReport
from mdtflag.authoring.runner import CaseResult, TestRun
from mdtflag.authoring.words import count
from mdtflag.evaluation.kleene import MET, NOT_MET, UNKNOWN

MARK = {MET: "✓", NOT_MET: "✗", UNKNOWN: "?"}


def failure_lines(res: CaseResult) -> list[str]:
    out: list[str] = []
    if res.status == "error":
        return [f"    {res.error}"]
    for f in res.failures:
        out.append(f"    {f.where} (line {f.pos.line}): expected {f.expected}, got {f.got}")
    if res.result is None:
        return out
    for group in dict.fromkeys(f.where.split(".")[1] for f in res.failures if f.where.startswith("decisions.")):
        d = res.result.decisions.get(group)
        if d is not None:
            pend = ", ".join(p.rule for p in d.pending) or "none"
            region = d.target.healthcare_region if d.target is not None else None
            out.append(f"    decision {group}: {d.level} by {', '.join(d.rules) or 'no rule'}; region {region or 'unknown'}; pending {pend}")
    for rid in dict.fromkeys(f.rule for f in res.failures if f.rule):
        out.extend(rule_lines(res, rid))
    return out


def rule_lines(res: CaseResult, rid: str) -> list[str]:
    flag = res.result.flag(rid)
    ev = res.evals.get(rid)
    if flag is None or ev is None:
        return []
    row = f", row {ev.best.row.get('key')}" if ev.best is not None and ev.best.row is not None else ""
    out = [f"    {rid} is {flag.status}{row}:"]
    for reason in flag.reasons:
        text = reason.text.en  # the generic text already starts with the id ("T-ANC: met")
        shown = text if text.startswith(f"{reason.criterion}: ") else f"{reason.criterion}: {text}"
        out.append(f"      {MARK[reason.outcome]} {shown}")
    for c in flag.cohorts or []:
        extra = "".join([f"  ✗ {', '.join(c.failed)}" if c.failed else "", f"  ? {', '.join(c.unknown)}" if c.unknown else ""])
        out.append(f"      row {c.key}: {c.status}{extra}")
    for m in flag.missing:
        out.append(f"      missing: {m.fact} ({m.reason}{', ' + m.field if m.field else ''}) – {m.text.en}")
    return out


def render_text(run: TestRun) -> str:
    out = [d.format() for d in run.diagnostics]
    for res in run.results:
        word = {"pass": "PASS", "fail": "FAIL", "error": "ERROR"}[res.status]
        out.append(f"{word} {res.case.name} ({res.case.file}:{res.case.line})")
        if res.status != "pass":
            out.extend(failure_lines(res))
            out.append(f"    explain: mdtflag explain {res.case.file} --case '{res.case.name}'"
                       + "".join(f" --rule {r}" for r in dict.fromkeys(f.rule for f in res.failures if f.rule)))
    for cov in run.coverage:
        out.extend(coverage_lines(cov))
    if not run.results:
        out.append("no test cases ran")
    out.append(f"{run.passed} passed, {run.failed} failed")
    return "\n".join(out) + "\n"


def coverage_lines(cov: CoverageReport) -> list[str]:
    d = cov.to_dict()
    head = (f"coverage of {cov.rules_dir}: {d['percent']:.1f}% ({d['seen']} of {d['counted']} criterion outcomes seen; "
            f"{count(len(cov.criteria), 'criterion', 'criteria')}, {count(len(d['impossible']), 'outcome')} impossible by construction, "
            f"{sum(len(v['outcomes']) for v in d['ignored'].values())} ignored)")
    out = [head]
    for o in OUTCOMES:
        never = d["never"][o]
        if never:
            out.append(f"  never {o} ({len(never)}): {', '.join(never)}")
    for item in d["ignored_but_seen"]:
        out.append(f"  ignored but seen: {item} (remove it from tests/{COVERAGE_FILE})")
    return out


def render_json(run: TestRun) -> dict[str, Any]:
    return {
        "cases": [
            {"name": r.case.name, "file": r.case.file, "line": r.case.line, "status": r.status,
             "failures": [{"where": f.where, "expected": f.expected, "got": f.got, "line": f.pos.line} for f in r.failures],
             "error": r.error or None}
            for r in run.results
        ],
        "diagnostics": [d.to_dict() for d in run.diagnostics],
        "coverage": [c.to_dict() for c in run.coverage],
        "summary": {"passed": run.passed, "failed": run.failed, "invalid": run.invalid},
    }


def render_junit(run: TestRun) -> str:
    suites = ET.Element("testsuites", name="mdtflag rules test", tests=str(len(run.results)),
                        failures=str(sum(1 for r in run.results if r.status == "fail")),
                        errors=str(sum(1 for r in run.results if r.status == "error")))
    by_file: dict[str, list[CaseResult]] = {}
    for r in run.results:
        by_file.setdefault(r.case.file, []).append(r)
    for file, results in by_file.items():
        suite = ET.SubElement(suites, "testsuite", name=file, tests=str(len(results)),
                              failures=str(sum(1 for r in results if r.status == "fail")),
                              errors=str(sum(1 for r in results if r.status == "error")))
        for r in results:
            tc = ET.SubElement(suite, "testcase", classname=file, name=r.case.name, file=file, line=str(r.case.line))
            if r.status != "pass":
                first = r.failures[0] if r.failures else None
                msg = f"{first.where}: expected {first.expected}, got {first.got}" if first else r.error
                el = ET.SubElement(tc, "failure" if r.status == "fail" else "error", message=msg)
                el.text = "\n".join(line.strip() for line in failure_lines(r))
    if run.diagnostics:
        suite = ET.SubElement(suites, "testsuite", name="test files", tests=str(len(run.diagnostics)), failures="0",
                              errors=str(sum(1 for d in run.diagnostics if d.severity == "error")))
        for d in run.diagnostics:
            tc = ET.SubElement(suite, "testcase", classname="diagnostics", name=f"{d.pos}: {d.code}")
            if d.severity == "error":
                ET.SubElement(tc, "error", message=d.message).text = d.format()
    ET.indent(suites)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"
