"""FHIR R4 resources built from a result document: GuidanceResponse, the ``$match`` searchset Bundle,
and the Task and ResearchSubject offered in card suggestions.

Every builder returns plain JSON-ready dicts in R4 shape; the tests validate them with the
``fhir.resources.R4B`` models.
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from collections.abc import Mapping
from typing import Any

__all__ = [
    "EXT_BASE",
    "FACT_RESOURCE_TYPE",
    "data_required",
    "guidance_response",
    "match_bundle",
    "mdk_task",
    "missing_items",
    "research_subject",
    "ruleset_coding",
]

#: Base of the URIs naming mdtflag's extensions and code systems.
EXT_BASE = "urn:mdtflag:fhir"

#: Fact kind -> the FHIR resource type that would supply it (for ``dataRequirement.type``).
FACT_RESOURCE_TYPE: Mapping[str, str] = {
    "patient": "Patient",
    "diagnosis": "Condition",
    "extent": "Observation",
    "ecog": "Observation",
    "performance": "Observation",
    "lab": "Observation",
    "pregnancy": "Observation",
    "variant": "Observation",
    "tmb": "Observation",
    "msi": "Observation",
    "ihc": "Observation",
    "genomic_report": "DiagnosticReport",
    "medication": "MedicationStatement",
    "trial_candidacy": "ResearchSubject",
    "assertion": "Observation",
    "family_history": "FamilyMemberHistory",
}

_STUDY_STATUS = {"open": "active", "closed": "closed-to-accrual", "stage1": "active"}


def ruleset_coding(result: Mapping[str, Any]) -> dict[str, Any]:
    rs = result["ruleset"]
    return {
        "system": f"{EXT_BASE}:ruleset",
        "version": rs["version"],
        "code": rs["name"],
        "display": f"{rs['name']} {rs['version']} ({rs['digest']})",
    }


def _patient_ref(result: Mapping[str, Any]) -> dict[str, Any]:
    return {"reference": str(result["patient"])}


def mdk_task(result: Mapping[str, Any], decision: Mapping[str, Any], lang: str) -> dict[str, Any]:
    """A proposed Task: discuss the patient at the conference the MDK decision routes to."""
    target = decision.get("target") or {}
    centre = (target.get("centre") or {}).get(lang)
    code_text = {
        "sv": "Remiss till multidisciplinär konferens (MDK)",
        "en": "Referral to multidisciplinary team conference (MDT)",
    }[lang]
    task: dict[str, Any] = {
        "resourceType": "Task",
        "status": "requested",
        "intent": "proposal",
        "code": {"text": code_text},
        "description": str(decision["text"][lang]),
        "for": _patient_ref(result),
        "reasonCode": {"text": ", ".join(decision["rules"]) or decision["level"]},
    }
    if centre:
        task["owner"] = {"display": str(centre)}
    return task


def research_subject(result: Mapping[str, Any], cohort: Mapping[str, Any], lang: str) -> dict[str, Any]:
    """A ResearchSubject with status ``candidate`` for one flagged cohort."""
    study: dict[str, Any] = {"reference": f"ResearchStudy/{cohort['key']}"}
    title = cohort.get("title")
    if title:
        study["display"] = str(title[lang])
    return {
        "resourceType": "ResearchSubject",
        "status": "candidate",
        "study": study,
        "individual": _patient_ref(result),
    }


def missing_items(result: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """Every distinct missing-data item of the flags that are undecided and the pending decisions."""
    items: dict[tuple[Any, ...], Mapping[str, Any]] = {}
    for decision in result["decisions"].values():
        for pending in decision["pending"]:
            for m in pending["missing"]:
                items.setdefault((m["fact"], m["reason"], m["field"], m["resource"], m["criterion"]), m)
    for flag in result["flags"]:
        if flag["status"] != "indeterminate":
            continue
        for m in flag["missing"]:
            items.setdefault((m["fact"], m["reason"], m["field"], m["resource"], m["criterion"]), m)
    return list(items.values())


def data_required(result: Mapping[str, Any]) -> bool:
    """True when a decision or a flag stays open for want of data."""
    if any(d["pending"] for d in result["decisions"].values()):
        return True
    return any(f["status"] == "indeterminate" and f["kind"] != "derived" for f in result["flags"])


def _data_requirement(m: Mapping[str, Any], lang: str) -> dict[str, Any]:
    ext: list[dict[str, Any]] = [
        {"url": "fact", "valueString": str(m["fact"])},
        {"url": "reason", "valueCode": str(m["reason"])},
        {"url": "text", "valueString": str(m["text"][lang])},
    ]
    if m.get("criterion"):
        ext.append({"url": "criterion", "valueString": str(m["criterion"])})
    if m.get("resource"):
        ext.append({"url": "resource", "valueString": str(m["resource"])})
    req: dict[str, Any] = {
        "extension": [{"url": f"{EXT_BASE}:missing", "extension": ext}],
        "type": FACT_RESOURCE_TYPE.get(str(m["fact"]), "Resource"),
    }
    if m.get("field"):
        req["mustSupport"] = [str(m["field"])]
    return req


def guidance_response(
    result: Mapping[str, Any], document: bytes, request_id: str, occurrence: str, lang: str
) -> dict[str, Any]:
    """The audit record of one evaluation, the result document attached byte for byte."""
    status = "data-required" if data_required(result) else "success"
    attachment = {
        "contentType": "application/json",
        "data": base64.b64encode(document).decode("ascii"),
        "hash": base64.b64encode(hashlib.sha1(document).digest()).decode("ascii"),
        "title": str(result["schema"]),
        "size": len(document),
    }
    gr: dict[str, Any] = {
        "resourceType": "GuidanceResponse",
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"mdtflag:{request_id}")),
        "contained": [
            {
                "resourceType": "Parameters",
                "id": "result",
                "parameter": [{"name": "result", "valueAttachment": attachment}],
            }
        ],
        "requestIdentifier": {"system": f"{EXT_BASE}:request", "value": request_id},
        "moduleCodeableConcept": {"coding": [ruleset_coding(result)]},
        "status": status,
        "subject": _patient_ref(result),
        "occurrenceDateTime": occurrence,
        "outputParameters": {"reference": "#result"},
    }
    if status == "data-required":
        gr["dataRequirement"] = [_data_requirement(m, lang) for m in missing_items(result)]
    return gr


def _reason_ext(flag: Mapping[str, Any], cohort: Mapping[str, Any], lang: str) -> dict[str, Any]:
    ext: list[dict[str, Any]] = [
        {"url": "rule", "valueString": str(flag["rule"])},
        {"url": "status", "valueCode": str(cohort["status"])},
    ]
    for crit in cohort["failed"]:
        ext.append({"url": "notMet", "valueString": str(crit)})
    for crit in cohort["unknown"]:
        ext.append({"url": "unknown", "valueString": str(crit)})
    for reason in flag["reasons"]:
        ext.append(
            {"url": "reason", "valueString": f"{reason['criterion']} {reason['outcome']}: {reason['text'][lang]}"}
        )
    return {"url": f"{EXT_BASE}:match-reasons", "extension": ext}


def match_bundle(result: Mapping[str, Any], base_url: str, lang: str, bundle_id: str | None = None) -> dict[str, Any]:
    """``ResearchStudy/$match`` answer: a searchset Bundle, one ResearchStudy per flagged (score 1)
    or indeterminate (score 0.5) cohort, with the reasons in an extension."""
    entries: list[dict[str, Any]] = []
    for flag in result["flags"]:
        for cohort in flag.get("cohorts") or []:
            if flag["kind"] != "trial" or cohort["status"] not in ("flagged", "indeterminate"):
                continue
            study: dict[str, Any] = {
                "resourceType": "ResearchStudy",
                "id": str(cohort["key"]),
                "extension": [_reason_ext(flag, cohort, lang)],
                "identifier": [{"system": f"{EXT_BASE}:cohort", "value": str(cohort["key"])}],
                "status": _STUDY_STATUS.get(str(cohort.get("state")), "active"),
            }
            if cohort.get("title"):
                study["title"] = str(cohort["title"][lang])
            entries.append(
                {
                    "fullUrl": f"{base_url.rstrip('/')}/ResearchStudy/{cohort['key']}",
                    "resource": study,
                    "search": {"mode": "match", "score": 1 if cohort["status"] == "flagged" else 0.5},
                }
            )
    entries.sort(key=lambda e: (-e["search"]["score"], e["resource"]["id"]))
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset", "total": len(entries), "entry": entries}
    if bundle_id:
        bundle["id"] = bundle_id
    return bundle
