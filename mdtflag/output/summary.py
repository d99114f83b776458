"""The summary a clinician reads first: the decision and where to, the trial outcome, the data to collect.

Built from the result document only (no rule knowledge): the ``mdk`` decision, the trial flags and their
cohorts, the other flags that fired, and the missing data of every undecided flag.
"""

from __future__ import annotations

from mdtflag.evaluation.result import FlagDoc, Result

MAX_TO_COLLECT = 8

LEVEL = {
    "sv": {
        "national": "Nationell MDK",
        "regional": "Regional MDK",
        "local": "Lokal MDK",
        "paediatric": "Barnonkologisk MDK",
        "undetermined": "Ej fastställd",
    },
    "en": {
        "national": "National MDT",
        "regional": "Regional MDT",
        "local": "Local MDT",
        "paediatric": "Paediatric oncology MDT",
        "undetermined": "Not settled",
    },
}
WORDS = {
    "sv": {
        "summary": "Sammanfattning",
        "mdk": "MDK-nivå",
        "to": "Anmäls till",
        "why": "Skäl",
        "pending": "Kan bli {level} när uppgifterna nedan finns",
        "trial": "Studie",
        "trial_flagged": "möjlig kohort – {cohorts}; tas upp på nationell MTB",
        "trial_open": "kan bli aktuell ({cohorts}) när uppgifterna nedan finns",
        "trial_blocked": "ingen kohort – {cohort}: {why}",
        "trial_none": "ingen kohort (ingen biomarkör från kohorttabellen påvisad)",
        "other": "Dessutom",
        "to_collect": "Att komplettera",
        "more": "och {n} till (se --detail)",
        "deceased": "Patienten är avliden – inga flaggor eller remisser.",
        "detail": "Alla regler och skäl: --detail",
        "region_unknown": "sjukvårdsregion okänd",
    },
    "en": {
        "summary": "Summary",
        "mdk": "MDT level",
        "to": "Refer to",
        "why": "Reason",
        "pending": "May become {level} once the data below are on file",
        "trial": "Trial",
        "trial_flagged": "possible cohort – {cohorts}; present at the national MTB",
        "trial_open": "may apply ({cohorts}) once the data below are on file",
        "trial_blocked": "no cohort – {cohort}: {why}",
        "trial_none": "no cohort (no biomarker from the cohort table found)",
        "other": "Also",
        "to_collect": "To complete",
        "more": "and {n} more (see --detail)",
        "deceased": "Patient deceased – no flags or referrals.",
        "detail": "All rules and reasons: --detail",
        "region_unknown": "healthcare region unknown",
    },
}


def is_deceased(result: Result) -> bool:
    """True when a rule's applicability failed on the patient being deceased."""
    return any(r.criterion.endswith("-ALIVE") and r.outcome == "not_met" for f in result.flags for r in f.reasons)


def summary_lines(result: Result, lang: str) -> list[str]:
    w = WORDS[lang]
    out = [w["summary"]]
    if is_deceased(result):
        return out + [f"  {w['deceased']}"]
    flags = {f.rule: f for f in result.flags}
    mdk = result.decisions.get("mdk")
    if mdk is not None:
        out.append(f"  {w['mdk']}: {LEVEL[lang].get(mdk.level, mdk.level)}")
        if mdk.target is not None:
            centre = getattr(mdk.target.centre, lang) if mdk.target.centre else w["region_unknown"]
            region = getattr(mdk.target.region_name, lang) if mdk.target.region_name else w["region_unknown"]
            out.append(f"  {w['to']}: {centre} ({region})")
        for rule in mdk.rules:
            f = flags.get(rule)
            if f is not None and f.kind == "mdk":
                text = getattr(f.text, lang)
                # "Nationell MDK: kandidat …" – the level is already on the line above
                head, sep, rest = text.partition(": ")
                out.append(f"  {w['why']}: {rest if sep and head in LEVEL[lang].values() else text}")
        for p in mdk.pending:
            out.append(f"  {w['pending'].format(level=LEVEL[lang].get(p.level, p.level))}")
    out.extend(_trial_lines(result, lang))
    others = [f for f in result.flags if f.status == "flagged" and f.kind in ("hereditary", "paediatric")]
    for f in others:
        target = f" → {getattr(f.target.centre, lang)}" if f.target is not None and f.target.centre else ""
        out.append(f"  {w['other']}: {getattr(f.text, lang)}{target}")
    to_collect = _to_collect(result, lang)
    if to_collect:
        out.append(f"  {w['to_collect']}:")
        out.extend(f"    ? {t}" for t in to_collect[:MAX_TO_COLLECT])
        if len(to_collect) > MAX_TO_COLLECT:
            out.append(f"    {w['more'].format(n=len(to_collect) - MAX_TO_COLLECT)}")
    return out


#: trial criteria in a few words, for the one thing that blocks a matched cohort
BLOCKS = {
    "sv": {
        "TRIAL-C2": "läkemedlet är godkänt (on label) för tumörtypen",
        "TRIAL-C3": "ett ej prövat godkänt alternativ finns",
        "TRIAL-I2": "inte histologiskt bekräftad avancerad sjukdom",
        "TRIAL-I2-HISTO": "malignitet ej bekräftad",
        "TRIAL-I2-ADV": "ej avancerad sjukdom",
        "TRIAL-I3": "standardbehandling ej uttömd",
        "TRIAL-I4": "ECOG över gränsen",
        "TRIAL-I5": "ingen mätbar sjukdom",
        "TRIAL-I6a": "neutrofiler under gränsen",
        "TRIAL-I6b": "hemoglobin under gränsen",
        "TRIAL-I6c": "trombocyter under gränsen",
        "TRIAL-I6d": "bilirubin över gränsen",
        "TRIAL-I6e": "ASAT/ALAT över gränsen",
        "TRIAL-I6f": "njurfunktion utanför gränsen",
        "TRIAL-I7": "molekylärt svar utan utförande laboratorium",
        "TRIAL-I8": "färsk biopsi ej möjlig",
        "TRIAL-E1": "tidigare behandlad med kohortens läkemedel",
        "TRIAL-E2": "känd resistensförändring",
        "TRIAL-E3": "graviditet",
        "TRIAL-E4": "hjärnmetastaser ej stabila",
        "TRIAL-E6": "pågående annan cancerbehandling",
        "TRIAL-E7": "nylig hjärt-kärlhändelse eller GI-blödning",
    },
    "en": {
        "TRIAL-C2": "the drug is approved (on-label) for the tumour type",
        "TRIAL-C3": "an untried approved option exists",
        "TRIAL-I2": "not a histologically confirmed advanced malignancy",
        "TRIAL-I2-HISTO": "malignancy not confirmed",
        "TRIAL-I2-ADV": "disease not advanced",
        "TRIAL-I3": "standard treatment not exhausted",
        "TRIAL-I4": "ECOG above the limit",
        "TRIAL-I5": "no measurable disease",
        "TRIAL-I6a": "neutrophils below the limit",
        "TRIAL-I6b": "haemoglobin below the limit",
        "TRIAL-I6c": "platelets below the limit",
        "TRIAL-I6d": "bilirubin above the limit",
        "TRIAL-I6e": "AST/ALT above the limit",
        "TRIAL-I6f": "renal function outside the limit",
        "TRIAL-I7": "molecular result without performing laboratory",
        "TRIAL-I8": "fresh biopsy not feasible",
        "TRIAL-E1": "previously treated with the cohort drug",
        "TRIAL-E2": "known resistance alteration",
        "TRIAL-E3": "pregnancy",
        "TRIAL-E4": "brain metastases not stable",
        "TRIAL-E6": "current other anticancer therapy",
        "TRIAL-E7": "recent cardiovascular event or GI bleeding",
    },
}


def _cohort_names(f: FlagDoc, status: str, lang: str) -> str:
    names = []
    for c in f.cohorts or []:
        if c.status == status:
            names.append(f"{getattr(c.title, lang)} ({c.key})" if c.title else c.key)
    return "; ".join(names)


def _trial_lines(result: Result, lang: str) -> list[str]:
    w = WORDS[lang]
    out = []
    for f in result.flags:
        if f.kind != "trial":
            continue
        head = f"  {getattr(f.title, lang).split(':')[0]}"
        if f.status == "flagged":
            out.append(f"{head}: {w['trial_flagged'].format(cohorts=_cohort_names(f, 'flagged', lang))}")
        elif f.status == "indeterminate":
            out.append(f"{head}: {w['trial_open'].format(cohorts=_cohort_names(f, 'indeterminate', lang))}")
        elif f.status == "not_flagged":
            matched = [c for c in f.cohorts or [] if c.failed and not any(x.startswith("TRIAL-C1") for x in c.failed)]
            if matched:
                c = matched[0]
                why = ", ".join(BLOCKS[lang].get(x, x) for x in c.failed if f"{x}-" not in " ".join(c.failed) + " ")
                name = f"{getattr(c.title, lang)} ({c.key})" if c.title else c.key
                out.append(f"{head}: {w['trial_blocked'].format(cohort=name, why=why)}")
            else:
                out.append(f"{head}: {w['trial_none']}")
        # not applicable (a child, or deceased): nothing to act on
    return out


def _to_collect(result: Result, lang: str) -> list[str]:
    """Missing data of every undecided flag, once each, in words; then data-quality rules that fired."""
    items: dict[str, None] = {}
    for f in result.flags:
        if f.status == "indeterminate" and f.kind != "derived":
            for m in f.missing:
                items.setdefault(getattr(m.text, lang), None)
    for f in result.flags:
        if f.kind == "data-quality" and f.status == "flagged":
            items.setdefault(getattr(f.text, lang), None)
    return list(items)
