"""A self-contained HTML report of a cohort run, for trial coordinators.

One file that opens offline on any desktop: the style sheet is inline, the plots (matplotlib, drawn
without pyplot) are SVG images embedded as ``data:`` URIs, there is no script, and a Content Security
Policy forbids the page from loading anything. Every text taken from the results (patient ids,
sources, titles, messages) is HTML-escaped.

Sections: the run's accounting and rule set identity; patients per MDK level and healthcare region;
every flag's counts; undecided patients grouped by the data that would decide them (what to chase
first); per trial cohort (and per hereditary or paediatric flag) a funnel of where patients drop out
and the list of candidates with their reasons; the errors. Swedish by default, English with
``lang="en"``.
"""

from __future__ import annotations

import base64
import html
import io
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from mdtflag.cohort.report_data import (
    UNIT_KINDS,
    Summary,
    Unit,
    as_mapping,
    as_text,
    count_of,
    drop_points,
    find_key,
    flatten,
    read_manifest,
    summarise,
)

LEVELS = ("national", "regional", "local", "paediatric", "undetermined")
LEVEL_COLOURS = {
    "national": "#1f5f8b",
    "regional": "#4f9bd0",
    "local": "#9cc9e8",
    "paediatric": "#7a5ca8",
    "undetermined": "#b8bec6",
}

T: Mapping[str, Mapping[str, str]] = {
    "sv": {
        "title": "Kohortscreening – rapport",
        "from": "Resultatfil",
        "run": "Körning och regelverk",
        "ruleset": "Regelverk",
        "version": "Version",
        "digest": "Kontrollsumma (digest)",
        "profile": "Profil",
        "as_of": "Bedömningsdag (as of)",
        "engine": "Motor",
        "accounting": "Redovisning",
        "inputs": "Indata",
        "results": "Resultat",
        "errors": "Fel",
        "unassigned": "Utan patient",
        "unreadable": "Oläsbara rader",
        "in_file": "I resultatfilen",
        "in_manifest": "Enligt körningens manifest",
        "no_manifest": "Inget manifest angavs; redovisningen bygger enbart på resultatfilen.",
        "bad_manifest": "Manifestet kunde inte läsas",
        "incomplete": "Körningen är inte avslutad enligt manifestet (state: {state}); siffrorna gäller det som hunnit skrivas.",
        "mismatch": "Manifestet och resultatfilen stämmer inte överens",
        "several_rulesets": "Resultaten kommer från flera regelverk eller bedömningsdagar",
        "manifest": "Manifestets innehåll",
        "levels": "MDK-nivå och sjukvårdsregion",
        "levels_lead": "Antal patienter per beslutad MDK-nivå och sjukvårdsregionen för remissmålet.",
        "region": "Sjukvårdsregion",
        "unknown_region": "okänd region",
        "total": "Summa",
        "flags": "Flaggor",
        "flags_lead": "Antal patienter per regel och utfall (härledda hjälpregler visas inte).",
        "rule": "Regel",
        "kind": "Typ",
        "chase": "Obestämda patienter – vad som saknas",
        "chase_lead": "Patienter vars flaggor eller kohorter inte kan avgöras, grupperade efter de uppgifter som "
        "skulle avgöra dem. Störst grupp först: komplettera dessa uppgifter först.",
        "missing": "Saknad uppgift",
        "patients": "Patienter",
        "decides": "Skulle avgöra",
        "no_chase": "Inga obestämda patienter.",
        "cohorts": "Kohorter",
        "cohorts_lead": "Per kohort: hur många patienter som klarar varje kriterium och var de faller bort, och kandidaterna med skäl.",
        "funnel": "Tratt",
        "step": "Steg",
        "criterion": "Kriterium",
        "remaining": "Kvar",
        "not_met": "Ej uppfyllt",
        "unknown": "Kan ej bedömas",
        "example": "Exempel på skäl",
        "screened": "Bedömda",
        "applicable": "Regeln gäller",
        "not_applicable": "Ej tillämplig",
        "other": "Ej flaggad av annat skäl",
        "not_listed": "Kohorten ej bedömd för patienten",
        "candidates": "Kandidater",
        "no_candidates": "Inga kandidater.",
        "patient": "Patient",
        "level": "MDK-nivå",
        "centre": "Remiss till",
        "reasons": "Skäl",
        "show_reasons": "visa skäl",
        "and_more": "och {n} till – se tabellen (Parquet/CSV)",
        "flagged": "Flaggade",
        "indeterminate": "Obestämda",
        "not_flagged": "Ej flaggade",
        "error_list": "Fel",
        "no_errors": "Inga fel.",
        "code": "Kod",
        "count": "Antal",
        "sources": "Exempel på källor",
        "message": "Meddelande",
        "footer": "Beslutsstöd inför multidisciplinär konferens – aldrig ett beslut om "
        "inklusion eller behandling. Skapad av mdtflag.",
        "line": "rad",
        "of": "av",
        "funnel_alt": "Tratt för {name}: kvarvarande patienter efter varje kriterium",
        "levels_alt": "Stapeldiagram: patienter per MDK-nivå och sjukvårdsregion",
        "patients_axis": "patienter",
        "start": "Bedömda patienter",
    },
    "en": {
        "title": "Cohort screening – report",
        "from": "Results file",
        "run": "Run and rule set",
        "ruleset": "Rule set",
        "version": "Version",
        "digest": "Digest",
        "profile": "Profile",
        "as_of": "Evaluated as of",
        "engine": "Engine",
        "accounting": "Accounting",
        "inputs": "Inputs",
        "results": "Results",
        "errors": "Errors",
        "unassigned": "Unassigned",
        "unreadable": "Unreadable lines",
        "in_file": "In the results file",
        "in_manifest": "In the run's manifest",
        "no_manifest": "No manifest was given; the accounting rests on the results file alone.",
        "bad_manifest": "The manifest could not be read",
        "incomplete": "The run is not complete according to its manifest (state: {state}); the figures cover what was written.",
        "mismatch": "The manifest and the results file disagree",
        "several_rulesets": "The results come from several rule sets or evaluation dates",
        "manifest": "Manifest contents",
        "levels": "MDK level and healthcare region",
        "levels_lead": "Patients per decided MDK level and the healthcare region of the routing target.",
        "region": "Healthcare region",
        "unknown_region": "region unknown",
        "total": "Total",
        "flags": "Flags",
        "flags_lead": "Patients per rule and outcome (derived helper rules are not shown).",
        "rule": "Rule",
        "kind": "Kind",
        "chase": "Undecided patients – what is missing",
        "chase_lead": "Patients whose flags or cohorts cannot be decided, grouped by the data that would decide "
        "them. Largest group first: chase this data first.",
        "missing": "Missing data",
        "patients": "Patients",
        "decides": "Would decide",
        "no_chase": "No undecided patients.",
        "cohorts": "Cohorts",
        "cohorts_lead": "Per cohort: how many patients pass each criterion and where they drop out, and the candidates with reasons.",
        "funnel": "Funnel",
        "step": "Step",
        "criterion": "Criterion",
        "remaining": "Remaining",
        "not_met": "Not met",
        "unknown": "Cannot be decided",
        "example": "Example reason",
        "screened": "Screened",
        "applicable": "Rule applies",
        "not_applicable": "Not applicable",
        "other": "Not flagged for another reason",
        "not_listed": "Cohort not assessed for the patient",
        "candidates": "Candidates",
        "no_candidates": "No candidates.",
        "patient": "Patient",
        "level": "MDK level",
        "centre": "Route to",
        "reasons": "Reasons",
        "show_reasons": "show reasons",
        "and_more": "and {n} more – see the table (Parquet/CSV)",
        "flagged": "Flagged",
        "indeterminate": "Undecided",
        "not_flagged": "Not flagged",
        "error_list": "Errors",
        "no_errors": "No errors.",
        "code": "Code",
        "count": "Count",
        "sources": "Example sources",
        "message": "Message",
        "footer": "Decision support for a multidisciplinary team conference – never an "
        "inclusion or treatment decision. Made by mdtflag.",
        "line": "line",
        "of": "of",
        "funnel_alt": "Funnel for {name}: patients remaining after each criterion",
        "levels_alt": "Bar chart: patients per MDK level and healthcare region",
        "patients_axis": "patients",
        "start": "Patients screened",
    },
}

LEVEL_TEXT = {
    "sv": {
        "national": "Nationell",
        "regional": "Regional",
        "local": "Lokal",
        "paediatric": "Barn",
        "undetermined": "Ej avgjord",
    },
    "en": {
        "national": "National",
        "regional": "Regional",
        "local": "Local",
        "paediatric": "Paediatric",
        "undetermined": "Undetermined",
    },
}
KIND_TEXT = {
    "sv": {
        "mdk": "MDK",
        "trial": "studie",
        "hereditary": "ärftlighet",
        "paediatric": "barn",
        "data-quality": "datakvalitet",
        "derived": "härledd",
    },
    "en": {
        "mdk": "MDK",
        "trial": "trial",
        "hereditary": "hereditary",
        "paediatric": "paediatric",
        "data-quality": "data quality",
        "derived": "derived",
    },
}
STATUSES = ("flagged", "indeterminate", "not_flagged", "not_applicable")


def _svg_img(fig: Any, alt: str) -> str:
    import matplotlib

    buf = io.BytesIO()
    with matplotlib.rc_context({"svg.hashsalt": "mdtflag", "svg.fonttype": "path"}):
        fig.savefig(buf, format="svg", metadata={"Date": None})
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f'<img class="plot" alt="{_h(alt)}" src="data:image/svg+xml;base64,{data}">'


def _levels_plot(s: Summary, regions: Sequence[str], lang: str) -> str:
    from matplotlib.figure import Figure

    tx = T[lang]
    names = [s.region_names.get(r, r) if r else tx["unknown_region"] for r in regions]
    fig = Figure(figsize=(9.0, 0.45 * len(regions) + 1.4))
    fig.subplots_adjust(left=0.3, right=0.97, top=0.97, bottom=0.6 / (0.45 * len(regions) + 1.4) + 0.05)
    ax = fig.subplots()
    left = [0] * len(regions)
    for level in _levels_present(s):
        vals = [s.levels.get((level, r), 0) for r in regions]
        ax.barh(
            names, vals, left=left, color=LEVEL_COLOURS.get(level, "#888888"), label=LEVEL_TEXT[lang].get(level, level)
        )
        left = [a + b for a, b in zip(left, vals)]
    ax.invert_yaxis()
    ax.set_xlabel(tx["patients_axis"])
    ax.legend(loc="lower right", fontsize=9, frameon=False)
    ax.spines[["top", "right"]].set_visible(False)
    return _svg_img(fig, tx["levels_alt"])


def _funnel_plot(unit: Unit, steps: Sequence[tuple[str, int]], lang: str) -> str:
    from matplotlib.figure import Figure

    tx = T[lang]
    labels = [label for label, _ in steps]
    vals = [v for _, v in steps]
    height = 0.32 * len(steps) + 1.0
    fig = Figure(figsize=(9.0, height))
    fig.subplots_adjust(left=0.22, right=0.97, top=1 - 0.15 / height, bottom=0.55 / height)
    ax = fig.subplots()
    bars = ax.barh(range(len(steps)), vals, color="#4f9bd0")
    if vals:
        bars[-1].set_color("#1b7f3b")
    ax.set_yticks(range(len(steps)), labels, fontsize=9)
    ax.invert_yaxis()
    top = max(vals) if vals else 0
    for i, v in enumerate(vals):
        ax.text(v + top * 0.01 + 0.05, i, str(v), va="center", fontsize=9)
    ax.set_xlim(0, top * 1.12 + 1)
    ax.set_xlabel(tx["patients_axis"])
    ax.spines[["top", "right"]].set_visible(False)
    return _svg_img(fig, tx["funnel_alt"].format(name=unit.name))


# ----------------------------------------------------------------------------------------------
# HTML


def _h(v: object) -> str:
    return html.escape(as_text(v), quote=True)


def _levels_present(s: Summary) -> list[str]:
    seen = {lv for lv, _ in s.levels}
    return [lv for lv in LEVELS if lv in seen] + sorted(seen - set(LEVELS))


def _table(head: Sequence[tuple[str, bool]], rows: Iterable[Sequence[str]], cls: str = "") -> str:
    """``head``: (label, numeric); cells in ``rows`` are already HTML."""
    th = "".join(f"<th{' class=n' if num else ''}>{_h(label)}</th>" for label, num in head)
    body = []
    for r in rows:
        tds = "".join(f"<td{' class=n' if head[i][1] else ''}>{cell}</td>" for i, cell in enumerate(r))
        body.append(f"<tr>{tds}</tr>")
    return f"<table{f' class={cls}' if cls else ''}><thead><tr>{th}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _funnel_steps(unit: Unit, s: Summary, tx: Mapping[str, str]) -> tuple[list[tuple[str, int]], list[list[str]]]:
    counts = s.screened(unit)
    screened = sum(counts.values())
    remaining = screened - counts.get("not_applicable", 0)
    steps: list[tuple[str, int]] = [(tx["screened"], screened)]
    rows: list[list[str]] = [[_h(tx["screened"]), str(screened), "", "", ""]]
    if counts.get("not_applicable"):
        steps.append((tx["applicable"], remaining))
        rows.append([_h(tx["applicable"]), str(remaining), str(counts["not_applicable"]), "", ""])
    if counts.get("not_listed"):
        remaining -= counts["not_listed"]
        steps.append((tx["not_listed"], remaining))
        rows.append([_h(tx["not_listed"]), str(remaining), str(counts["not_listed"]), "", ""])
    order = s.criteria.get(unit.rule, [])
    drops = drop_points(unit, order)
    pos = {c: i for i, c in enumerate(order)}
    crits = sorted({c for c, _ in drops if c}, key=lambda c: (pos.get(c, len(pos)), c))
    for c in crits:
        nm, unk = drops.get((c, "not_met"), 0), drops.get((c, "unknown"), 0)
        remaining -= nm + unk
        ex = unit.examples.get((c, "not_met")) or unit.examples.get((c, "unknown")) or ""
        steps.append((c, remaining))
        rows.append(
            [f'<span class="id">{_h(c)}</span>', str(remaining), str(nm) if nm else "", str(unk) if unk else "", _h(ex)]
        )
    other = drops.get(("", "other"), 0)
    if other:
        remaining -= other
        steps.append((tx["other"], remaining))
        rows.append([_h(tx["other"]), str(remaining), str(other), "", ""])
    return steps, rows


def _decides(decides: Counter[str], tx: Mapping[str, str]) -> str:
    """``RULE (patients): cohort, cohort, …`` per rule, largest first."""
    rules: dict[str, list[str]] = {}
    for key in decides:
        rule, _, cohort = key.partition(" · ")
        rules.setdefault(rule, [])
        if cohort:
            rules[rule].append(cohort)
    out = []
    for rule in sorted(rules, key=lambda r: (-decides.get(r, 0), r)):
        n = decides.get(rule) or max(decides[f"{rule} · {c}"] for c in rules[rule])
        cohorts = ", ".join(_h(c) for c in sorted(rules[rule], key=lambda c: (-decides[f"{rule} · {c}"], c)))
        out.append(
            f'<span class="id">{_h(rule)}</span> ({n})'
            + (f" – {_h(tx['cohorts'].lower())}: {cohorts}" if cohorts else "")
        )
    return "<br>".join(out)


def _status_cards(pairs: Sequence[tuple[str, str, int]]) -> str:
    return (
        '<div class="cards">'
        + "".join(
            f'<div class="card {cls}"><div class="v">{n}</div><div class="k">{_h(label)}</div></div>'
            for cls, label, n in pairs
        )
        + "</div>"
    )


def render_html(s: Summary, manifest: Mapping[str, Any] | None, manifest_problem: str | None, results_name: str) -> str:
    """The report page for a summary (``summarise``) and an optional manifest."""
    lang = s.lang
    tx = T[lang]
    parts: list[str] = []
    add = parts.append

    # -- run and rule set
    add(f'<section id="run"><h2>{_h(tx["run"])}</h2>')
    ident = s.identities.most_common(1)[0][0] if s.identities else ("",) * 6
    man = manifest or {}
    fields = [
        (tx["ruleset"], ident[0] or as_text(find_key(man, "name"))),
        (tx["version"], ident[1] or as_text(find_key(man, "version"))),
        (tx["digest"], ident[2] or as_text(find_key(man, "digest"))),
        (tx["profile"], ident[3] or as_text(find_key(man, "profile"))),
        (tx["as_of"], ident[4] or as_text(find_key(man, "as_of"))),
        (tx["engine"], ident[5]),
    ]
    add('<dl class="ident">' + "".join(f"<dt>{_h(k)}</dt><dd>{_h(v)}</dd>" for k, v in fields if v) + "</dl>")
    if len(s.identities) > 1:
        add(
            f'<p class="warn">{_h(tx["several_rulesets"])}: '
            + "; ".join(_h(f"{i[0]} {i[1]} {i[2][:19]}… {i[3]} {i[4]} ({n})") for i, n in s.identities.most_common())
            + "</p>"
        )
    for key, label in (("digest", "digest"), ("as_of", "as_of"), ("profile", "profile")):
        want = find_key(man, key) if manifest else None
        got = {"digest": ident[2], "as_of": ident[4], "profile": ident[3]}[key]
        if isinstance(want, str) and got and want != got:
            add(f'<p class="warn">{_h(tx["mismatch"])}: {_h(tx[label])} {_h(want)} ≠ {_h(got)}</p>')

    add(f"<h3>{_h(tx['accounting'])}</h3>")
    add(
        _status_cards(
            [("", tx["results"], s.results), ("error", tx["errors"], s.errors_total)]
            + ([("error", tx["unreadable"], len(s.unreadable))] if s.unreadable else [])
        )
    )
    acc_rows = [[_h(tx["in_file"]), "", str(s.results), str(s.errors_total), "", str(len(s.unreadable))]]
    if manifest is not None:
        counts = as_mapping(man.get("counts")) or man
        m_in = count_of(counts.get("inputs"))
        m_res, m_err, m_un = (count_of(counts.get(k)) for k in ("results", "errors", "unassigned"))

        def cell(v: int | None) -> str:
            return "" if v is None else str(v)

        acc_rows.append([_h(tx["in_manifest"]), cell(m_in), cell(m_res), cell(m_err), cell(m_un), ""])
        if (m_res is not None and m_res != s.results) or (m_err is not None and m_err != s.errors_total):
            add(
                f'<p class="warn">{_h(tx["mismatch"])}: {_h(tx["results"])} {m_res} / {s.results}, '
                f"{_h(tx['errors'])} {m_err} / {s.errors_total}</p>"
            )
    state = man.get("state")
    if isinstance(state, str) and state not in ("complete", "completed", "done"):
        add(f'<p class="warn">{_h(tx["incomplete"].format(state=state))}</p>')
    add(
        _table(
            [
                ("", False),
                (tx["inputs"], True),
                (tx["results"], True),
                (tx["errors"], True),
                (tx["unassigned"], True),
                (tx["unreadable"], True),
            ],
            acc_rows,
        )
    )
    if manifest_problem is not None:
        add(f'<p class="warn">{_h(tx["bad_manifest"])}: {_h(manifest_problem)}</p>')
    elif manifest is None:
        add(f'<p class="lead">{_h(tx["no_manifest"])}</p>')
    else:
        add(
            f"<details><summary>{_h(tx['manifest'])}</summary>"
            + _table([("", False), ("", False)], ([f"<code>{_h(k)}</code>", _h(v)] for k, v in flatten(manifest)))
            + "</details>"
        )
    add("</section>")

    # -- levels × regions
    add(f'<section id="levels"><h2>{_h(tx["levels"])}</h2><p class="lead">{_h(tx["levels_lead"])}</p>')
    if s.results:
        regions = sorted({r for _, r in s.levels}, key=lambda r: (r == "", s.region_names.get(r, r)))
        levels = _levels_present(s)
        add(_levels_plot(s, regions, lang))
        rows = []
        for r in regions:
            vals = [s.levels.get((lv, r), 0) for lv in levels]
            rows.append(
                [_h(s.region_names.get(r, r) if r else tx["unknown_region"])]
                + [str(v) for v in vals]
                + [str(sum(vals))]
            )
        totals = [sum(s.levels.get((lv, r), 0) for r in regions) for lv in levels]
        rows.append([f"<b>{_h(tx['total'])}</b>"] + [f"<b>{v}</b>" for v in totals] + [f"<b>{sum(totals)}</b>"])
        add(
            _table(
                [(tx["region"], False)]
                + [(LEVEL_TEXT[lang].get(lv, lv), True) for lv in levels]
                + [(tx["total"], True)],
                rows,
            )
        )
    add("</section>")

    # -- flags
    add(f'<section id="flags"><h2>{_h(tx["flags"])}</h2><p class="lead">{_h(tx["flags_lead"])}</p>')
    frows = []
    for rule in sorted(
        s.flags,
        key=lambda r: (list(KIND_TEXT["en"]).index(s.flags[r][0]) if s.flags[r][0] in KIND_TEXT["en"] else 99, r),
    ):
        kind, title = s.flags[rule]
        frows.append(
            [f'<span class="id">{_h(rule)}</span> {_h(title)}', _h(KIND_TEXT[lang].get(kind, kind))]
            + [str(s.flag_status.get((rule, st), 0)) for st in STATUSES]
        )
    add(
        _table(
            [
                (tx["rule"], False),
                (tx["kind"], False),
                (tx["flagged"], True),
                (tx["indeterminate"], True),
                (tx["not_flagged"], True),
                (tx["not_applicable"], True),
            ],
            frows,
        )
    )
    add("</section>")

    # -- what to chase
    add(f'<section id="chase"><h2>{_h(tx["chase"])}</h2><p class="lead">{_h(tx["chase_lead"])}</p>')
    if s.groups:
        grows = []
        for words, g in sorted(s.groups.items(), key=lambda kv: (-kv[1].patients, kv[0])):
            ids = ", ".join(f'<span class="id">{_h(p)}</span>' for p in g.ids)
            if g.patients > len(g.ids):
                ids += " " + _h(tx["and_more"].format(n=g.patients - len(g.ids)))
            dec = _decides(g.decides, tx)
            grows.append([_h(words), str(g.patients), dec, ids])
        add(
            _table(
                [(tx["missing"], False), (tx["patients"], True), (tx["decides"], False), (tx["patient"], False)], grows
            )
        )
    else:
        add(f"<p>{_h(tx['no_chase'])}</p>")
    add("</section>")

    # -- cohorts
    add(f'<section id="cohorts"><h2>{_h(tx["cohorts"])}</h2><p class="lead">{_h(tx["cohorts_lead"])}</p>')
    units = sorted(s.units.values(), key=lambda u: (UNIT_KINDS.index(u.kind), u.rule, u.cohort))
    for i, unit in enumerate(units, 1):
        add(f'<article class="cohort" id="u{i}"><h3><span class="id">{_h(unit.name)}</span> – {_h(unit.title)}</h3>')
        counts = s.screened(unit)
        add(
            _status_cards(
                [
                    ("flag", tx["flagged"], counts.get("flagged", 0)),
                    ("undecided", tx["indeterminate"], counts.get("indeterminate", 0)),
                    ("", tx["not_flagged"], counts.get("not_flagged", 0) + counts.get("not_listed", 0)),
                    ("", tx["not_applicable"], counts.get("not_applicable", 0)),
                ]
            )
        )
        steps, rows = _funnel_steps(unit, s, tx)
        add(f"<h4>{_h(tx['funnel'])}</h4>")
        add(_funnel_plot(unit, steps, lang))
        add(
            _table(
                [
                    (tx["step"], False),
                    (tx["remaining"], True),
                    (tx["not_met"], True),
                    (tx["unknown"], True),
                    (tx["example"], False),
                ],
                rows,
            )
        )
        add(f"<h4>{_h(tx['candidates'])} ({unit.statuses.get('flagged', 0)})</h4>")
        if unit.candidates:
            crows = []
            for c in unit.candidates:
                reasons = "".join(f"<li>{_h(r)}</li>" for r in c.reasons if r)
                crows.append(
                    [
                        f'<span class="id">{_h(c.patient)}</span>',
                        _h(LEVEL_TEXT[lang].get(c.level, c.level)),
                        _h(c.centre),
                        (
                            f"<details><summary>{_h(tx['show_reasons'])} ({len(c.reasons)})</summary>"
                            f'<ul class="reasons">{reasons}</ul></details>'
                        ),
                    ]
                )
            add(
                _table(
                    [(tx["patient"], False), (tx["level"], False), (tx["centre"], False), (tx["reasons"], False)], crows
                )
            )
            more = unit.statuses.get("flagged", 0) - len(unit.candidates)
            if more > 0:
                add(f"<p>{_h(tx['and_more'].format(n=more))}</p>")
        else:
            add(f"<p>{_h(tx['no_candidates'])}</p>")
        add("</article>")
    add("</section>")

    # -- errors
    add(f'<section id="errors"><h2>{_h(tx["error_list"])}</h2>')
    if s.errors or s.unreadable:
        erows = []
        for code, n in s.errors.most_common():
            ex = "<br>".join(f'<span class="id">{_h(src)}</span>: {_h(msg)}' for src, msg in s.error_examples[code])
            erows.append([f"<code>{_h(code)}</code>", str(n), ex])
        if s.unreadable:
            ex = "<br>".join(f"{_h(tx['line'])} {n}: {_h(msg)}" for n, msg in s.unreadable[:5])
            erows.append([f"<code>{_h('unreadable-line')}</code>", str(len(s.unreadable)), ex])
        add(_table([(tx["code"], False), (tx["count"], True), (tx["sources"], False)], erows))
    else:
        add(f"<p>{_h(tx['no_errors'])}</p>")
    add("</section>")

    nav = "".join(
        f'<a href="#{a}">{_h(tx[k])}</a>'
        for a, k in (
            ("run", "run"),
            ("levels", "levels"),
            ("flags", "flags"),
            ("chase", "chase"),
            ("cohorts", "cohorts"),
            ("errors", "error_list"),
        )
    )
    css = resources.files("mdtflag.cohort").joinpath("report_assets/report.css").read_text(encoding="utf-8")
    csp = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"
    return (
        f'<!DOCTYPE html>\n<html lang="{lang}"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{csp}">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_h(tx['title'])}</title><style>{css}</style></head><body>"
        f"<header><h1>{_h(tx['title'])}</h1><p>{_h(tx['from'])}: {_h(results_name)} · {_h(tx['as_of'])}: "
        f"{_h(fields[4][1])} · {_h(tx['results'])}: {s.results}</p></header>"
        f"<nav>{nav}</nav><main>{''.join(parts)}</main><footer>{_h(tx['footer'])}</footer></body></html>\n"
    )


def write_report(results_path: Path, manifest_path: Path | None, out_path: Path, lang: str = "sv") -> None:
    """Write the HTML report of a run: ``results_path`` is the NDJSON results file, ``manifest_path``
    the run's manifest JSON (optional; whatever it holds is shown), ``lang`` ``"sv"`` or ``"en"``."""
    summary = summarise(Path(results_path), lang)
    manifest, problem = read_manifest(Path(manifest_path) if manifest_path is not None else None)
    page = render_html(summary, manifest, problem, Path(results_path).name)
    out_path = Path(out_path)
    tmp = out_path.with_name(out_path.name + ".part")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(out_path)
