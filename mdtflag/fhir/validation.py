"""Validation of one FHIR resource against its R4B model, with a data-quality note when it fails.

A failure confined to elements no fact is read from keeps the resource (``invalid-element``); any other
failure (``invalid-resource``) sets the resource aside, and the facts it would give become unknown --
present but unreadable -- never absent (see :mod:`mdtflag.fhir.load` and
:mod:`mdtflag.fhir.facts.context`). :mod:`mdtflag.fhir.fastvalid` answers for resources shaped like one
already accepted, with fhir.resources' verdicts and messages.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from mdtflag.errors import DataQualityNote
from mdtflag.fhir.fastvalid import validate as fast_validate
from mdtflag.fhir.fastvalid import validate_named
from mdtflag.fhir.names import resource_name

__all__ = ["model_class", "validate_resource"]

#: A FHIR resource (or any JSON object) as a plain dict.
JsonObject = dict[str, Any]

_MODEL_CACHE: dict[str, type[Any] | None] = {}


def model_class(resource_type: str) -> type[Any] | None:
    """The R4B model class for a resource type, or ``None`` for an unknown type (cached)."""
    try:
        return _MODEL_CACHE[resource_type]
    except KeyError:
        pass
    cls = None
    if resource_type.isalpha() and resource_type[:1].isupper():
        from fhir.resources.R4B import get_fhir_model_class

        try:
            cls = get_fhir_model_class(resource_type)
        except (ValueError, KeyError, ImportError, AttributeError):
            cls = None
    _MODEL_CACHE[resource_type] = cls
    return cls


def _loc_path(resource_type: str, loc: tuple[Any, ...]) -> str:
    path = resource_type
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part not in ("__root__",):
            path += f".{part}"
    return path


#: Elements the fact readers read, per resource type whose readers read only named elements (prefixes
#: for choice types): a validation failure confined to other elements keeps the resource.
_READ_ELEMENTS: dict[str, tuple[str, ...]] = {
    "Condition": (
        "id",
        "resourceType",
        "subject",
        "code",
        "verificationStatus",
        "clinicalStatus",
        "onset",
        "abatement",
        "recordedDate",
        "extension",
        "stage",
        "evidence",
    ),
    "Observation": (
        "id",
        "resourceType",
        "subject",
        "code",
        "status",
        "effective",
        "issued",
        "value",
        "referenceRange",
        "component",
        "interpretation",
        "derivedFrom",
    ),
    "MedicationStatement": ("id", "resourceType", "subject", "status", "medication", "effective"),
    "MedicationAdministration": ("id", "resourceType", "subject", "status", "medication", "effective"),
    "MedicationRequest": ("id", "resourceType", "subject", "status", "medication", "authoredOn"),
}


def _unread_only(cls: type[Any], resource: JsonObject, errors: list[Any]) -> bool:
    """True when every validation error lies in an element the fact readers never read, and the resource
    without those elements passes validation (checks that stop at the first failures run again)."""
    read = _READ_ELEMENTS.get(resource["resourceType"])
    if read is None or not errors:
        return False
    bad = set()
    for e in errors:
        loc = tuple(e.get("loc", ()))
        top = loc[0] if loc else None
        if not isinstance(top, str) or top.startswith(read):
            return False
        bad.add(top)
    try:
        fast_validate(cls, {k: v for k, v in resource.items() if k not in bad})
    except Exception:
        return False
    return True


def validate_resource(resource: JsonObject, url: str | None = None) -> DataQualityNote | None:
    """Validate one resource with its R4B model; a note when it fails, else ``None``. The note's code is
    ``invalid-element`` when the failure lies only in elements no fact is read from (the resource is
    kept), ``invalid-resource`` otherwise."""
    rt = resource["resourceType"]
    name = resource_name(resource, url)
    try:
        # same verdict and errors as model_validate with the type's class, which a resource shaped like
        # one validated before does not need (nor its import)
        if not validate_named(rt, model_class, resource):
            return DataQualityNote(
                "invalid-resource", f"{name}: unknown FHIR resource type {rt!r}", name, "resourceType"
            )
    except ValidationError as exc:
        cls = model_class(rt)
        assert cls is not None  # a validation error comes from the class
        errors = exc.errors(include_url=False, include_input=False)
        if not errors:
            return DataQualityNote("invalid-resource", f"{name} fails FHIR R4 validation", name)
        first = errors[0]
        element = _loc_path(rt, tuple(first.get("loc", ())))
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        if _unread_only(cls, resource, errors):
            return DataQualityNote(
                "invalid-element",
                f"{name} fails FHIR R4 validation at {element}: "
                f"{first.get('msg', 'invalid')}{more}; no fact is read from it, "
                f"the rest of the resource is used",
                name,
                element,
            )
        return DataQualityNote(
            "invalid-resource",
            f"{name} fails FHIR R4 validation at {element}: {first.get('msg', 'invalid')}{more}",
            name,
            element,
        )
    except Exception as exc:
        return DataQualityNote(
            "invalid-resource", f"{name} fails FHIR R4 validation: {type(exc).__name__}: {exc}"[:500], name
        )
    return None
