"""What the cohort report shows, read from a run's results: counts per level and region, per-flag
screening units (funnels, candidates), undecided patients grouped by what would decide them, and the
run manifest. Rendering is in :mod:`mdtflag.cohort.report`."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from mdtflag.cohort.table import LANGS, BadLine, cohort_missing, missing_words, read_documents

#: How many patients a list shows before "and N more" (the flat table holds them all).
MAX_LISTED = 200
#: How many patient ids an undecided group names.
MAX_IDS = 25
UNIT_KINDS = ("trial", "hereditary", "paediatric")  # flags screened like cohorts (funnel + candidates)
STATUSES = ("flagged", "indeterminate", "not_flagged", "not_applicable")


def _t(obj: object, lang: str) -> str:
    if isinstance(obj, Mapping):
        v = obj.get(lang)
        return v if isinstance(v, str) else ""
    return ""


def as_text(v: object) -> str:
    return v if isinstance(v, str) else ("" if v is None else str(v))


def _l(v: object) -> list[Any]:
    return v if isinstance(v, list) else []


def as_mapping(v: object) -> Mapping[str, Any]:
    return v if isinstance(v, Mapping) else {}


@dataclass
class Candidate:
    patient: str
    level: str
    centre: str
    reasons: list[str]


@dataclass
class Unit:
    """A trial cohort (``rule``, ``cohort``) or a flag screened like one (``cohort`` empty)."""

    rule: str
    cohort: str
    kind: str
    title: str
    statuses: Counter[str] = field(default_factory=Counter)
    #: (criteria not met, criteria undecided) -> patients, for those neither flagged nor not applicable
    signatures: Counter[tuple[tuple[str, ...], tuple[str, ...]]] = field(default_factory=Counter)
    examples: dict[tuple[str, str], str] = field(default_factory=dict)  # (criterion, outcome) -> a reason text
    candidates: list[Candidate] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{self.rule} · {self.cohort}" if self.cohort else self.rule


@dataclass
class Group:
    """Undecided patients who lack the same data."""

    patients: int = 0
    ids: list[str] = field(default_factory=list)
    decides: Counter[str] = field(default_factory=Counter)


@dataclass
class Summary:
    lang: str
    results: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    error_examples: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    unreadable: list[tuple[int, str]] = field(default_factory=list)
    identities: Counter[tuple[str, str, str, str, str, str]] = field(default_factory=Counter)
    levels: Counter[tuple[str, str]] = field(default_factory=Counter)
    region_names: dict[str, str] = field(default_factory=dict)
    flags: dict[str, tuple[str, str]] = field(default_factory=dict)  # rule -> (kind, title)
    flag_status: Counter[tuple[str, str]] = field(default_factory=Counter)
    units: dict[tuple[str, str], Unit] = field(default_factory=dict)
    criteria: dict[str, list[str]] = field(default_factory=dict)  # rule -> its longest list of reasons seen
    groups: dict[str, Group] = field(default_factory=dict)
    #: rule -> (flag status, cohort keys listed) -> patients; a cohort not listed for a patient was not screened
    listed: dict[str, Counter[tuple[str, tuple[str, ...]]]] = field(default_factory=dict)

    def unlisted(self, unit: Unit) -> Counter[str]:
        """Patients with the unit's flag whose result does not list the cohort, by the flag's status."""
        out: Counter[str] = Counter()
        if unit.cohort:
            for (status, keys), n in self.listed.get(unit.rule, Counter()).items():
                if unit.cohort not in keys:
                    out[status] += n
        return out

    def screened(self, unit: Unit) -> Counter[str]:
        """Patients per status for a unit; a patient whose cohort is not listed counts as not applicable when
        the flag is, else as ``not_listed``."""
        got = Counter(unit.statuses)
        for status, n in self.unlisted(unit).items():
            got["not_applicable" if status == "not_applicable" else "not_listed"] += n
        return got

    @property
    def errors_total(self) -> int:
        return sum(self.errors.values())


def summarise(results_path: Path, lang: str = "sv") -> Summary:
    """Read the results file once (line by line) and count what the report shows."""
    if lang not in LANGS:
        raise ValueError(f"lang must be one of {LANGS}, not {lang!r}")
    s = Summary(lang)
    for n, doc in read_documents(results_path):
        if isinstance(doc, BadLine):
            s.unreadable.append((n, str(doc)))
        elif not isinstance(doc, Mapping) or doc.get("schema") not in ("mdtflag.result/1", "mdtflag.error/1"):
            s.unreadable.append((n, "not a result or error document"))
        elif doc["schema"] == "mdtflag.error/1":
            err = as_mapping(doc.get("error"))
            code = as_text(err.get("code")) or "error"
            s.errors[code] += 1
            ex = s.error_examples.setdefault(code, [])
            if len(ex) < 5:
                ex.append((as_text(doc.get("source")), as_text(err.get("message"))))
        else:
            _add_result(s, doc, lang)
    # a rule judged per row (cohort, gene) for some patients and with no rows for others (not applicable):
    # its per-row units count the others as not listed, so the rule-wide unit is not shown as well
    with_rows = {u.rule for u in s.units.values() if u.cohort}
    for key in [k for k in s.units if not k[1] and k[0] in with_rows]:
        del s.units[key]
    return s


def _add_result(s: Summary, doc: Mapping[str, Any], lang: str) -> None:
    s.results += 1
    patient = as_text(doc.get("patient"))
    rs = as_mapping(doc.get("ruleset"))
    eng = as_mapping(doc.get("engine"))
    s.identities[
        (
            as_text(rs.get("name")),
            as_text(rs.get("version")),
            as_text(rs.get("digest")),
            as_text(rs.get("profile")),
            as_text(doc.get("as_of")),
            f"{as_text(eng.get('name'))} {as_text(eng.get('version'))}".strip(),
        )
    ] += 1
    mdk = as_mapping(as_mapping(doc.get("decisions")).get("mdk"))
    target = as_mapping(mdk.get("target"))
    level = as_text(mdk.get("level")) or "undetermined"
    region = as_text(target.get("healthcare_region"))
    if region and region not in s.region_names:
        s.region_names[region] = _t(target.get("region_name"), lang) or region
    s.levels[(level, region)] += 1
    centre = _t(target.get("centre"), lang)
    chase: dict[str, set[str]] = {}
    for f in _l(doc.get("flags")):
        if not isinstance(f, Mapping):
            continue
        rule, kind, status = as_text(f.get("rule")), as_text(f.get("kind")), as_text(f.get("status"))
        reasons = [r for r in _l(f.get("reasons")) if isinstance(r, Mapping)]
        if len(reasons) > len(s.criteria.get(rule, ())):
            s.criteria[rule] = [as_text(r.get("criterion")) for r in reasons]
        if kind == "derived":
            continue
        s.flags.setdefault(rule, (kind, _t(f.get("title"), lang)))
        s.flag_status[(rule, status)] += 1
        if status == "indeterminate":
            for m in _l(f.get("missing")):
                if isinstance(m, Mapping):
                    chase.setdefault(missing_words(m, lang, with_resource=False), set()).add(rule)
        if kind not in UNIT_KINDS:
            continue
        met = [_t(r.get("text"), lang) for r in reasons if r.get("outcome") == "met"]
        cohorts = [c for c in _l(f.get("cohorts")) if isinstance(c, Mapping)]
        keys = tuple(sorted(as_text(c.get("key")) for c in cohorts))
        s.listed.setdefault(rule, Counter())[(status, keys)] += 1
        if cohorts:
            for c in cohorts:
                key = as_text(c.get("key"))
                unit = s.units.get((rule, key))
                if unit is None:
                    title = _t(c.get("title"), lang) or _t(f.get("title"), lang)
                    unit = s.units[(rule, key)] = Unit(rule, key, kind, title)
                cstatus = as_text(c.get("status"))
                failed = [as_text(x) for x in _l(c.get("failed"))]
                unknown = [as_text(x) for x in _l(c.get("unknown"))]
                _screen(s, unit, cstatus, failed, unknown, reasons, Candidate(patient, level, centre, met), lang)
                if cstatus == "indeterminate":
                    for m in cohort_missing(f, c):
                        chase.setdefault(missing_words(m, lang, with_resource=False), set()).add(f"{rule} · {key}")
        else:
            unit = s.units.get((rule, ""))
            if unit is None:
                unit = s.units[(rule, "")] = Unit(rule, "", kind, _t(f.get("title"), lang))
            blocking = reasons if status != "flagged" else []
            _screen(
                s,
                unit,
                status,
                [as_text(r.get("criterion")) for r in blocking if r.get("outcome") == "not_met"],
                [as_text(r.get("criterion")) for r in blocking if r.get("outcome") == "unknown"],
                reasons,
                Candidate(patient, level, centre, met),
                lang,
            )
    for words, decides in chase.items():
        g = s.groups.setdefault(words, Group())
        g.patients += 1
        if len(g.ids) < MAX_IDS:
            g.ids.append(patient)
        g.decides.update(decides)


def _screen(
    s: Summary,
    unit: Unit,
    status: str,
    failed: Sequence[str],
    unknown: Sequence[str],
    reasons: Sequence[Mapping[str, Any]],
    cand: Candidate,
    lang: str,
) -> None:
    unit.statuses[status] += 1
    if status == "flagged":
        if len(unit.candidates) < MAX_LISTED:
            unit.candidates.append(cand)
        return
    if status == "not_applicable":
        return
    unit.signatures[(tuple(failed), tuple(unknown))] += 1
    for ids, outcome in ((failed, "not_met"), (unknown, "unknown")):
        for c in ids:
            if (c, outcome) in unit.examples:
                continue
            for r in reasons:
                if r.get("criterion") == c:
                    miss = _l(r.get("missing"))
                    if outcome == "unknown" and miss and isinstance(miss[0], Mapping):
                        unit.examples[(c, outcome)] = missing_words(miss[0], lang, with_resource=False)
                    else:
                        unit.examples[(c, outcome)] = _t(r.get("text"), lang)
                    break


def drop_points(unit: Unit, order: Sequence[str]) -> Counter[tuple[str, str]]:
    """Where each patient who is neither flagged nor out of scope leaves the funnel: the first criterion
    (in the rule's order) not met, else the first that cannot be decided, else ``("", "other")``."""
    pos = {c: i for i, c in enumerate(order)}

    def first(ids: Sequence[str]) -> str:
        return min(ids, key=lambda c: (pos.get(c, len(pos)), c))

    drops: Counter[tuple[str, str]] = Counter()
    for (failed, unknown), n in unit.signatures.items():
        if failed:
            drops[(first(failed), "not_met")] += n
        elif unknown:
            drops[(first(unknown), "unknown")] += n
        else:
            drops[("", "other")] += n
    return drops


# ----------------------------------------------------------------------------------------------
# manifest


def read_manifest(path: Path | None) -> tuple[Mapping[str, Any] | None, str | None]:
    """The manifest as a mapping, or ``(None, problem)``; ``(None, None)`` when no path is given."""
    if path is None:
        return None, None
    try:
        data = orjson.loads(Path(path).read_bytes())
    except OSError as exc:
        return None, f"{exc.strerror or exc}"
    except orjson.JSONDecodeError as exc:
        return None, f"not valid JSON: {exc}"
    if not isinstance(data, Mapping):
        return None, "not a JSON object"
    return data, None


def find_key(man: Mapping[str, Any], key: str) -> object:
    """A run setting from the manifest: ``key`` inside ``ruleset``, else ``ruleset_<key>`` or ``key`` at
    the top (name, version, digest, profile and as_of may sit in either place)."""
    rs = man.get("ruleset")
    for where, name in ((rs, key), (man, f"ruleset_{key}"), (man, key)):
        if isinstance(where, Mapping) and name in where and not isinstance(where[name], (Mapping, list)):
            return where[name]
    return None


def count_of(v: object) -> int | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return v
    if isinstance(v, list):
        return len(v)
    if isinstance(v, Mapping):
        for key in ("count", "total", "n"):
            if isinstance(v.get(key), int):
                return int(v[key])
    return None


def flatten(
    obj: object, prefix: str = "", out: list[tuple[str, str]] | None = None, limit: int = 80
) -> list[tuple[str, str]]:
    out = [] if out is None else out
    if len(out) >= limit:
        return out
    if isinstance(obj, Mapping):
        for k, v in obj.items():
            flatten(v, f"{prefix}.{k}" if prefix else str(k), out, limit)
    elif isinstance(obj, list):
        if all(not isinstance(x, (Mapping, list)) for x in obj):
            shown = ", ".join(as_text(x) for x in obj[:5]) + (f", … ({len(obj)})" if len(obj) > 5 else "")
            out.append((prefix, shown))
        else:
            out.append((prefix, f"[{len(obj)}]"))
            for i, x in enumerate(obj[:3]):
                flatten(x, f"{prefix}[{i}]", out, limit)
    elif len(out) < limit:
        out.append((prefix, as_text(obj) if not isinstance(obj, bool) else str(obj).lower()))
    return out


# ----------------------------------------------------------------------------------------------
# plots
