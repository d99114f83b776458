"""CDS Hooks cards from a result document: one card per decision, never one per rule.

Cards, in this order when present: the MDK level and where to route the patient; trial cohorts
(flagged or undecided); hereditary cancer referral; paediatric whole-genome sequencing; data gaps
that keep a decision open. Each card's detail is Markdown with the reasons and the data that would
decide; its summary is one sentence under 140 characters in the request's language.
"""
from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from mdtflag.service.fhirout import EXT_BASE, mdk_task, research_subject

__all__ = ["SUMMARY_MAX", "build_cards", "pick_language", "system_actions"]

SUMMARY_MAX = 140
MARK = {"met": "✓", "not_met": "✗", "unknown": "?"}
LEVEL = {
    "sv": {"local": "lokal", "regional": "regional", "national": "nationell", "paediatric": "pediatrisk"},
    "en": {"local": "local", "regional": "regional", "national": "national", "paediatric": "paediatric"},
}
T: dict[str, dict[str, str]] = {
    "sv": {
        "mdk": "{level} MDK: {centre}", "mdk_open": "MDK-nivå kan inte avgöras: uppgifter saknas",
        "region_unknown": "sjukvårdsregion okänd", "refer": "Skapa MDK-remiss till {centre}",
        "trial": "Möjlig studiekohort: {keys}", "trial_open": "Studiekohort kan inte avgöras ({n}): uppgifter saknas",
        "candidate": "Markera som studiekandidat: {key}",
        "her": "Överväg remiss till klinisk genetik (ärftlig cancer)",
        "her_open": "Ärftlig cancer kan inte bedömas: uppgifter saknas",
        "wgs": "Helgenomsekvensering (WGS) är indicerad men inte gjord",
        "wgs_open": "WGS-indikation kan inte avgöras: uppgifter saknas",
        "gaps": "Uppgifter saknas som påverkar beslut ({n}): {first}",
        "why": "Skäl", "decide": "Uppgifter som skulle avgöra", "by": "Avgjort av", "pending": "Väntar",
        "cohorts": "Kohorter", "not_met": "ej uppfyllt", "unknown": "okänt",
    },
    "en": {
        "mdk": "{level} MDT: {centre}", "mdk_open": "MDT level cannot be decided: data missing",
        "region_unknown": "healthcare region unknown", "refer": "Create MDT referral to {centre}",
        "trial": "Possible trial cohort: {keys}", "trial_open": "Trial cohort undecided ({n}): data missing",
        "candidate": "Mark as trial candidate: {key}",
        "her": "Consider referral to clinical genetics (hereditary cancer)",
        "her_open": "Hereditary cancer cannot be assessed: data missing",
        "wgs": "Whole-genome sequencing (WGS) is indicated but not done",
        "wgs_open": "WGS indication cannot be decided: data missing",
        "gaps": "Missing data keeps decisions open ({n}): {first}",
        "why": "Reasons", "decide": "Data that would decide", "by": "Decided by", "pending": "Pending",
        "cohorts": "Cohorts", "not_met": "not met", "unknown": "unknown",
    },
}
STATUS = {"sv": {"flagged": "flaggad", "indeterminate": "obestämd"},
          "en": {"flagged": "flagged", "indeterminate": "undecided"}}
_MD_SPECIAL = str.maketrans({c: "\\" + c for c in "\\`*_[]<>#|"})


def pick_language(accept_language: str | None) -> str:
    """``en`` when English ranks above Swedish in ``Accept-Language``, else ``sv`` (the default)."""
    if not accept_language:
        return "sv"
    best: tuple[float, int, str] = (0.0, 0, "sv")
    for i, part in enumerate(accept_language.split(",")[:20]):
        tag, _, params = part.strip().partition(";")
        primary = tag.strip().lower().split("-")[0]
        if primary not in ("sv", "en"):
            continue
        q = 1.0
        params = params.strip()
        if params.startswith("q="):
            try:
                q = float(params[2:])
            except ValueError:
                q = 0.0
        if q > best[0] or (q == best[0] and q > 0 and i < best[1]):
            best = (q, i, primary)
    return best[2]


def _md(text: object) -> str:
    return str(text).translate(_MD_SPECIAL)


def _summary(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) < SUMMARY_MAX else text[:SUMMARY_MAX - 2].rstrip() + "…"


def _missing_lines(missing: Iterable[Mapping[str, Any]], lang: str) -> list[str]:
    lines = dict.fromkeys(
        f"- {_md(m['text'][lang])}" + (f" ({_md(m['resource'])})" if m.get("resource") else "")
        for m in missing)
    return list(lines)


def _reason_lines(flag: Mapping[str, Any], lang: str) -> list[str]:
    out = [f"**{_md(flag['title'][lang])}** ({_md(flag['rule'])} v{_md(flag['version'])}): {_md(flag['text'][lang])}"]
    for r in flag["reasons"]:
        out.append(f"- {MARK[r['outcome']]} {_md(r['text'][lang])}")
        for e in r["evidence"][:3]:
            out.append(f"  - {_md(e['resource'])} {_md(e['element'])} = {_md(e['value'])}")
    return out


class _Cards:
    def __init__(self, result: Mapping[str, Any], lang: str, hook_instance: str, source: Mapping[str, Any]) -> None:
        self.result = result
        self.lang = lang
        self.t = T[lang]
        self.hook_instance = hook_instance
        self.source = source
        self.cards: list[dict[str, Any]] = []

    def card(self, kind: str, summary: str, indicator: str, detail: Sequence[str],
             suggestions: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
        card: dict[str, Any] = {
            "uuid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"mdtflag:{self.hook_instance}:{kind}")),
            "summary": _summary(summary),
            "indicator": indicator,
            "detail": "\n".join(detail),
            "source": dict(self.source),
        }
        if suggestions:
            card["suggestions"] = list(suggestions)
            card["selectionBehavior"] = "any"
        self.cards.append(card)
        return card

    def suggestion(self, kind: str, label: str, description: str, resource: dict[str, Any]) -> dict[str, Any]:
        return {"label": _summary(label),
                "uuid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"mdtflag:{self.hook_instance}:{kind}")),
                "actions": [{"type": "create", "description": description, "resource": resource}]}

    def flags(self, kind: str) -> list[Mapping[str, Any]]:
        return [f for f in self.result["flags"] if f["kind"] == kind and f["status"] in ("flagged", "indeterminate")]

    # -- one method per decision ------------------------------------------------------------

    def mdk(self) -> None:
        decision = self.result["decisions"].get("mdk")
        if decision is None:
            return
        t, lang = self.t, self.lang
        level = decision["level"]
        by_rule = {f["rule"]: f for f in self.result["flags"]}
        detail = [_md(decision["text"][lang]), ""]
        if level in LEVEL[lang]:
            target = decision.get("target") or {}
            centre = (target.get("centre") or {}).get(lang) or t["region_unknown"]
            summary = t["mdk"].format(level=LEVEL[lang][level].capitalize(), centre=centre)
            indicator = "warning" if level in ("national", "paediatric") else "info"
            if decision["rules"]:
                detail.append(f"**{t['by']}**: {', '.join(_md(r) for r in decision['rules'])}")
                detail.append("")
            detail.append(f"### {t['why']}")
            for rule in decision["rules"]:
                if rule in by_rule:
                    detail.extend(_reason_lines(by_rule[rule], lang))
        elif decision["pending"]:
            summary, indicator = t["mdk_open"], "info"
        else:
            return
        suggestions = []
        if decision["pending"]:
            detail.append("")
            detail.append(f"### {t['decide']}")
            for p in decision["pending"]:
                detail.append(f"**{t['pending']}**: {_md(p['rule'])} ({_md(p['level'])})")
                detail.extend(_missing_lines(p["missing"], lang))
        if level in LEVEL[lang] and (decision.get("target") or {}).get("centre"):
            centre = decision["target"]["centre"][lang]
            suggestions.append(self.suggestion("mdk-task", t["refer"].format(centre=centre),
                                               t["refer"].format(centre=centre), mdk_task(self.result, decision, lang)))
        self.card("mdk", summary, indicator, detail, suggestions)

    def trials(self) -> None:
        t, lang = self.t, self.lang
        flags = self.flags("trial")
        if not flags:
            return
        flagged: list[Mapping[str, Any]] = []
        open_: list[Mapping[str, Any]] = []
        detail: list[str] = []
        for f in flags:
            detail.extend(_reason_lines(f, lang))
            detail.append("")
            rows = [c for c in f.get("cohorts") or [] if c["status"] in ("flagged", "indeterminate")]
            if rows:
                detail.append(f"### {t['cohorts']}")
            for c in rows:
                (flagged if c["status"] == "flagged" else open_).append(c)
                title = f" – {_md(c['title'][lang])}" if c.get("title") else ""
                line = f"- **{_md(c['key'])}**{title}: {STATUS[lang][c['status']]}"
                if c["unknown"]:
                    line += f"; {t['unknown']}: {', '.join(_md(x) for x in c['unknown'])}"
                detail.append(line)
            if f["status"] == "indeterminate" and f["missing"]:
                detail.append("")
                detail.append(f"### {t['decide']}")
                detail.extend(_missing_lines(f["missing"], lang))
        if flagged:
            summary = t["trial"].format(keys=", ".join(dict.fromkeys(str(c["key"]) for c in flagged)))
        else:
            summary = t["trial_open"].format(n=len(open_) or len(flags))
        suggestions = [self.suggestion(f"cohort:{c['key']}", t["candidate"].format(key=c["key"]),
                                       t["candidate"].format(key=c["key"]), research_subject(self.result, c, lang))
                       for c in {str(c["key"]): c for c in flagged}.values()]
        self.card("trial", summary, "info", detail, suggestions)

    def simple(self, kind: str, card_kind: str, yes: str, undecided: str) -> None:
        flags = self.flags(kind)
        if not flags:
            return
        lang = self.lang
        fired = any(f["status"] == "flagged" for f in flags)
        detail: list[str] = []
        for f in flags:
            detail.extend(_reason_lines(f, lang))
            if f["status"] == "indeterminate" and f["missing"]:
                detail.append(f"**{self.t['decide']}**:")
                detail.extend(_missing_lines(f["missing"], lang))
            detail.append("")
        self.card(card_kind, self.t[yes] if fired else self.t[undecided], "warning" if fired else "info", detail)

    def gaps(self) -> None:
        flags = [f for f in self.flags("data-quality") if f["status"] == "flagged"]
        if not flags:
            return
        lang = self.lang
        detail: list[str] = []
        for f in flags:
            detail.extend(_reason_lines(f, lang))
            detail.append("")
        self.card("gaps", self.t["gaps"].format(n=len(flags), first=flags[0]["title"][lang]), "info", detail)


def card_source(result: Mapping[str, Any], url: str | None) -> dict[str, Any]:
    rs = result["ruleset"]
    source: dict[str, Any] = {
        "label": f"mdtflag {rs['name']} {rs['version']}",
        "topic": {"system": f"{EXT_BASE}:ruleset-digest", "code": rs["digest"], "display": f"{rs['name']} {rs['version']}"},
    }
    if url:
        source["url"] = url
    return source


def build_cards(result: Mapping[str, Any], lang: str, hook_instance: str, rules_url: str | None = None) -> list[dict[str, Any]]:
    """The cards for one result document."""
    c = _Cards(result, lang, hook_instance, card_source(result, rules_url))
    c.mdk()
    c.trials()
    c.simple("hereditary", "hereditary", "her", "her_open")
    c.simple("paediatric", "wgs", "wgs", "wgs_open")
    c.gaps()
    return c.cards


def system_actions(cards: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The MDK referral Task of the MDK card, for clients that apply actions without a click."""
    out: list[dict[str, Any]] = []
    for card in cards:
        for s in card.get("suggestions", []):
            for a in s["actions"]:
                if a["resource"]["resourceType"] == "Task":
                    out.append(dict(a))
    return out
