"""Results → canonical JSON (byte-identical for identical input) or text a clinician reads."""

from __future__ import annotations

from typing import Any

import orjson

from mdtflag.errors import one_line
from mdtflag.evaluation.result import ErrorResult, FlagDoc, Result
from mdtflag.output.summary import LEVEL, WORDS, is_deceased, summary_lines
from mdtflag.output.sv_text import polish_sv

MARK = {"met": "✓", "not_met": "✗", "unknown": "?"}
STATUS_LABEL = {
    "en": {
        "flagged": "FLAGGED",
        "not_flagged": "not flagged",
        "indeterminate": "INDETERMINATE",
        "not_applicable": "not applicable",
    },
    "sv": {
        "flagged": "FLAGGAD",
        "not_flagged": "ej flaggad",
        "indeterminate": "OBESTÄMD",
        "not_applicable": "ej tillämplig",
    },
}
HEAD = {
    "en": {
        "decision": "Decision",
        "flags": "Flags",
        "pending": "Pending (would take precedence if decided)",
        "dq": "Data quality",
        "missing": "Missing",
        "target": "Route to",
        "by": "decided by",
        "region": "region",
        "unknown_region": "healthcare region unknown",
        "cohorts": "Cohorts",
        "codes": "Suggested codes",
        "as_of": "as of",
        "others": "more not flagged or not applicable",
        "derived": "Derived facts (used by the rules above)",
    },
    "sv": {
        "decision": "Beslut",
        "flags": "Flaggor",
        "pending": "Väntar (skulle gå före om de avgjordes)",
        "dq": "Datakvalitet",
        "missing": "Saknas",
        "target": "Remiss till",
        "by": "avgjort av",
        "region": "region",
        "unknown_region": "sjukvårdsregion okänd",
        "cohorts": "Kohorter",
        "codes": "Föreslagna koder",
        "as_of": "per",
        "others": "till ej flaggade eller ej tillämpliga",
        "derived": "Härledda fakta (används av reglerna ovan)",
    },
}


def to_json(result: Result | ErrorResult | dict[str, Any], *, indent: bool = True) -> bytes:
    """Canonical JSON: fixed key order from the model, UTF-8, newline at the end."""
    data = result if isinstance(result, dict) else result.to_dict()
    opt = orjson.OPT_INDENT_2 if indent else 0
    return orjson.dumps(data, option=opt) + b"\n"


def to_text(result: Result, lang: str = "sv", *, detail: bool = False) -> str:
    """Clinician text: the summary first (decision, trial outcome, data to collect); with ``detail`` every
    rule with its reasons follows. Swedish text gets Swedish code words, µ units and decimal commas."""
    text = _text(result, lang, detail)
    if lang == "sv":
        text = "\n".join(polish_sv(line) for line in text.split("\n"))
    return text


def _text(result: Result, lang: str, detail: bool) -> str:
    h = HEAD[lang]
    out: list[str] = []
    rs = result.ruleset
    out.append(
        f"{result.patient} — {h['as_of']} {result.as_of} — {rs.name} {rs.version} ({rs.digest[:19]}…), {rs.profile}"
    )
    out.append("")
    out.extend(summary_lines(result, lang))
    if not detail or is_deceased(result):
        if not is_deceased(result):
            out.append("")
            out.append(WORDS[lang]["detail"])
        return "\n".join(map(one_line, out)) + "\n"  # each item is one line: data cannot start another
    out.append("")
    for name, d in result.decisions.items():
        level = LEVEL[lang].get(d.level, d.level) if name == "mdk" else d.level
        out.append(f"{h['decision']} {name.upper()}: {level.upper()}")
        out.append(f"  {getattr(d.text, lang)}")
        if d.rules:
            out.append(f"  ({h['by']} {', '.join(d.rules)})")
        if d.target is not None:
            centre = getattr(d.target.centre, lang) if d.target.centre else h["unknown_region"]
            region = getattr(d.target.region_name, lang) if d.target.region_name else h["unknown_region"]
            out.append(f"  {h['target']}: {centre} [{h['region']}: {region}]")
        for p in d.pending:
            out.append(f"  {h['pending']}: {p.rule} ({p.level})")
            for line in dict.fromkeys(getattr(m.text, lang) for m in p.missing):
                out.append(f"    ? {line}")
        out.append("")
    order = {"flagged": 0, "indeterminate": 1, "not_flagged": 2, "not_applicable": 3}
    out.append(h["flags"])
    for f in sorted((f for f in result.flags if f.kind != "derived"), key=lambda f: (order[f.status], f.rule)):
        out.extend(_flag_text(f, lang))
    derived = [f for f in result.flags if f.kind == "derived"]
    if derived:
        out.append("")
        out.append(h["derived"])
        for f in derived:
            out.append(f"  {f.rule}: {STATUS_LABEL[lang][f.status]} — {getattr(f.text, lang)}")
    if result.data_quality:
        out.append("")
        out.append(h["dq"])
        for n in result.data_quality:
            where = f" [{n.resource}{'.' + n.element if n.element else ''}]" if n.resource else ""
            out.append(f"  - {n.code}: {n.message}{where}")
    return "\n".join(map(one_line, out)) + "\n"  # each item is one line: data cannot start another


def _flag_text(f: FlagDoc, lang: str) -> list[str]:
    h = HEAD[lang]
    label = STATUS_LABEL[lang][f.status]
    lines = [
        f"  [{label}] {f.rule} v{f.version} — {getattr(f.title, lang)} ({f.tag})",
        f"      {getattr(f.text, lang)}",
    ]
    if f.target is not None and f.target.centre is not None:
        lines.append(f"      {h['target']}: {getattr(f.target.centre, lang)}")
    for r in f.reasons:
        # a flag that did not fire shows what blocked it; a flag that fired or is open shows everything
        if f.status in ("not_flagged", "not_applicable") and r.outcome == "met":
            continue
        ev = ", ".join(sorted({e.resource for e in r.evidence}))
        if r.evidence_omitted:
            ev += f" +{r.evidence_omitted}"
        # a data-quality criterion that is not met means the data are there ("ECOG 1 on file"): ✓ reads right
        mark = "✓" if f.kind == "data-quality" and r.outcome == "not_met" else MARK[r.outcome]
        lines.append(f"      {mark} {r.criterion}: {getattr(r.text, lang)}" + (f"  [{ev}]" if ev else ""))
    if f.cohorts:
        shown = [c for c in f.cohorts if c.status in ("flagged", "indeterminate")]
        rest = len(f.cohorts) - len(shown)
        lines.append(f"      {h['cohorts']}:" + (f" ({rest} {h['others']})" if rest else ""))
        for c in shown:
            extra = []
            # a flagged row's inner criteria that read "not met" are part of why it fired (an age outside the
            # on-label range makes a drug off-label): marking them ✗ beside FLAGGED would read as a failure
            if c.failed and c.status != "flagged":
                extra.append("✗ " + ", ".join(c.failed))
            if c.unknown:
                extra.append("? " + ", ".join(c.unknown))
            state = f" ({c.state}{' ' + str(c.enrolled) + '/8' if c.enrolled is not None else ''})" if c.state else ""
            lines.append(
                f"        {c.key}{state}: {STATUS_LABEL[lang][c.status]}" + (f"  {'; '.join(extra)}" if extra else "")
            )
    if f.suggested_codes:
        for s in f.suggested_codes:
            codes = "; ".join(f"{k} {', '.join(v)}" for k, v in s.codes.items() if v)
            lines.append(f"      {h['codes']} ({s.key}): {codes}")
    return lines
