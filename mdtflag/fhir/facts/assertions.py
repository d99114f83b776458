"""Clinical assessments coded in the mdtflag assertion system: Observations, and referrals
(ServiceRequest, Encounter) to cancer genetics."""

from __future__ import annotations

from mdtflag.fhir.facts.codes import ASSERTION_SYSTEM, ASSERTIONS, REFERRAL
from mdtflag.fhir.facts.context import Extraction, Resource
from mdtflag.fhir.facts.models import AssertionFact, Evidence, ExtentFact
from mdtflag.fhir.facts.parse import as_dict, as_list, codings, parse_date, status_of


def obs_assertion(x: Extraction, res: Resource, name: str, i: int, code: str) -> None:
    spec = ASSERTIONS.get(code)
    if spec is None:
        x.note("unknown-code", f"{code!r} is not an {ASSERTION_SYSTEM} code", name, "Observation.code")
        return
    x.explicit_assertions.add(code)
    kind, allowed = spec
    element = "Observation.valueBoolean" if kind == "bool" or allowed is None else "Observation.valueCodeableConcept"

    def unreadable() -> None:  # present but unreadable: if it is the latest of its code, the value is unknown
        x.offer_latest(
            ("assertion", code),
            x.effective(res, name)[0],
            (i, 0),
            lambda: x.unread("assertion", {"code": code}, name, element),
            res=res,
            value=("unreadable", name),
            name=name,
        )
        if code == "extent":
            x.unread("extent", {"source": "assertion"}, name, element)

    value: str | None = None
    flag: bool | None = None
    if kind == "bool" or allowed is None:
        raw = res.get("valueBoolean")
        if type(raw) is not bool:
            x.note(
                "wrong-type" if "valueBoolean" in res or any(k.startswith("value") for k in res) else "missing-element",
                f"assertion {code} needs valueBoolean",
                name,
                "Observation.valueBoolean",
            )
            unreadable()
            return
        flag = raw
        ev = Evidence(resource=name, element="Observation.valueBoolean", value=str(raw).lower())
    else:
        cc = res.get("valueCodeableConcept")
        if type(cc) is not dict:
            x.note(
                "wrong-type" if any(k.startswith("value") for k in res) else "missing-element",
                f"assertion {code} needs valueCodeableConcept",
                name,
                "Observation.valueCodeableConcept",
            )
            unreadable()
            return
        for s, c, _ in codings(cc):
            if s == ASSERTION_SYSTEM and c in allowed:
                value = c
                break
        if value is None:
            x.note(
                "unknown-code",
                f"assertion {code} value is not one of {', '.join(sorted(allowed))}",
                name,
                "Observation.valueCodeableConcept",
            )
            unreadable()
            return
        ev = Evidence(resource=name, element="Observation.valueCodeableConcept", value=value)
    when, _ = x.effective(res, name)
    since = None
    period = res.get("effectivePeriod")
    if type(period) is dict and type(period.get("start")) is str:
        since = x.days_ago(parse_date(period["start"])[0])
    x.offer_latest(
        ("assertion", code),
        when,
        (i, 0),
        lambda: x.add(
            "assertion",
            (i, 0),
            AssertionFact(
                code=code,
                value=value,
                flag=flag,
                date=when,
                age_days=x.days_ago(when),
                since_days=since,
                evidence=(ev,),
            ),
        ),
        res=res,
        value=(value, flag),
        name=name,
    )
    if code == "extent" and value is not None:
        x.add("extent", (i, 0), ExtentFact(value=value, source="assertion", date=when, evidence=(ev,)))


def read_referral(x: Extraction, res: Resource, name: str, i: int) -> None:
    rt = res["resourceType"]
    if rt == "ServiceRequest":
        ccs, element = [res.get("code")], "ServiceRequest.code"
    else:
        ccs, element = as_list(res.get("type")), "Encounter.type"
    codes = [(s, c) for cc in ccs for s, c, _ in codings(cc)]
    # the referral code in another case or under another system (or none): a referral that may have been made
    near = not any(s == ASSERTION_SYSTEM and c == REFERRAL for s, c in codes)
    if near and not any(c.lower() == REFERRAL or (s == ASSERTION_SYSTEM and c not in ASSERTIONS) for s, c in codes):
        return  # another order or visit (an assertion code mdtflag does not know may be a mistyped referral)
    status = status_of(res)
    if status in ("entered-in-error", "revoked", "cancelled"):
        x.note("ignored-status", f"{name} has status {status}; ignored", name, f"{rt}.status")
        return
    x.status_not_understood(res, name)
    if near:
        x.note(
            "unknown-code",
            f"{element} is like {ASSERTION_SYSTEM}|{REFERRAL} but not it (another case, code or system): "
            "whether this is a cancer-genetics referral is unknown",
            name,
            element,
        )
        x.distrust(name, element)
    if rt == "ServiceRequest":
        raw = res.get("occurrenceDateTime", res.get("authoredOn"))
        key = "occurrenceDateTime" if "occurrenceDateTime" in res else "authoredOn"
    else:
        raw, key = as_dict(res.get("period")).get("start"), "period.start"
    when = x.dated(raw, name, f"{rt}.{key}") if raw is not None else None
    if x.after_as_of(when, name, f"{rt}.{key}"):
        return
    x.add(
        "assertion",
        (i, 0),
        AssertionFact(
            code=REFERRAL,
            flag=True,
            date=when,
            age_days=x.days_ago(when),
            evidence=(Evidence(resource=name, element=element, value=f"{ASSERTION_SYSTEM}|{REFERRAL}"),),
        ),
    )
