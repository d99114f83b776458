"""The name of a resource in notes and evidence: ``Type/id``, or for a resource without an id a name
derived from what identifies it, so that no name depends on the place of its entry in the bundle."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

__all__ = ["anonymous_name", "resource_name"]


def anonymous_name(rt: str, res: dict[str, Any], url: str | None) -> str:
    """The name of a resource without an id: ``Type/#`` and the first 12 hex digits of the SHA-256 of its
    ``fullUrl`` when the entry has one (the bundle's identity of the resource; hashed as ``fullUrl:`` and
    the URL in UTF-8), else of its canonical JSON (keys sorted, no white space). It depends neither on
    the place of the entry nor on the order of keys: two entries without id or fullUrl and with the same
    content are one resource."""
    if url:
        basis = b"fullUrl:" + url.encode("utf-8", "surrogatepass")
    else:
        try:
            basis = orjson.dumps(res, option=orjson.OPT_SORT_KEYS)
        except (TypeError, orjson.JSONEncodeError):  # not JSON data (a caller's own dict): its text
            basis = repr(sorted(res.items(), key=lambda kv: str(kv[0]))).encode("utf-8", "surrogatepass")
    return f"{rt}/#{hashlib.sha256(basis).hexdigest()[:12]}"


def resource_name(res: dict[str, Any], url: str | None = None) -> str:
    """``Type/id``, or :func:`anonymous_name` for a resource without an id."""
    rt, rid = res.get("resourceType"), res.get("id")
    rt = rt if isinstance(rt, str) else "Resource"
    return f"{rt}/{rid}" if isinstance(rid, str) and rid else anonymous_name(rt, res, url)
