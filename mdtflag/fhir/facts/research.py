"""ResearchSubject: trial candidacy, with the phase of the ResearchStudy when it is in the bundle."""

from __future__ import annotations

from mdtflag.fhir.facts.codes import PHASE_SYSTEM, PHASES, SUBJECT_STATUSES
from mdtflag.fhir.facts.context import Extraction, Resource
from mdtflag.fhir.facts.models import Evidence, TrialCandidacyFact
from mdtflag.fhir.facts.parse import as_dict, as_list, codings, ref_key, status_of, string


def read_research_subject(x: Extraction, res: Resource, name: str, i: int) -> None:
    status = status_of(res)
    if status is None:
        x.note("missing-element", "ResearchSubject.status is absent", name, "ResearchSubject.status")
        return
    ev = [Evidence(resource=name, element="ResearchSubject.status", value=status)]
    unread: list[tuple[str, str]] = []  # (field, element) present but not understood
    if status not in SUBJECT_STATUSES:
        x.note(
            "unknown-code",
            f"ResearchSubject.status {status[:40]!r} is not a ResearchSubject status: the candidacy is unknown",
            name,
            "ResearchSubject.status",
        )
        unread.append(("status", "ResearchSubject.status"))
    phase = study = None
    if "study" in res:
        target, ref = x.resolve(res["study"])
        if target is None or target.get("resourceType") != "ResearchStudy":
            ident = as_dict(as_dict(res["study"]).get("identifier")).get("value")
            key = ref_key(ref) if ref else None
            study = string(ident) or (key.split("/", 1)[1] if key else None)
            x.note(
                "unresolved-reference",
                f"ResearchSubject.study {str(ref or ident)[:80]!r} is not in the bundle: phase unknown",
                name,
                "ResearchSubject.study",
            )
        else:
            sname = x.name_of(target)
            study = next(
                (v for v in (string(as_dict(ident).get("value")) for ident in as_list(target.get("identifier"))) if v),
                string(target.get("id")),
            )
            for s, c, _ in codings(target.get("phase")):
                if s == PHASE_SYSTEM and c in PHASES:
                    phase = c
                    ev.append(Evidence(resource=sname, element="ResearchStudy.phase", value=c))
                    break
            else:
                # a phase on file that is not a research-study-phase code: the phase is unknown, not absent
                if target.get("phase") is not None:
                    x.note(
                        "unknown-code",
                        "ResearchStudy.phase is not a research-study-phase code: the phase is unknown",
                        sname,
                        "ResearchStudy.phase",
                    )
                    unread.append(("phase", f"ResearchSubject.study -> {sname}.phase"))
    fact = TrialCandidacyFact(
        status=None if unread and unread[0][0] == "status" else status, phase=phase, study=study, evidence=tuple(ev)
    )
    x.add("trial_candidacy", (i, 0), fact)
    for field, element in unread:
        x.unread_field("trial_candidacy", field, name, element)
