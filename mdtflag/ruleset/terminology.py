"""The terminology of a rule set: the FHIR ConceptMap / ValueSet / CodeSystem files under its
``terminology/`` folder (read by :mod:`mdtflag.fhir.facts.terminology`), counted in the rule set's
digest; and a site's own terminology folders layered on top (``--terminology DIR``,
``MDTFLAG_TERMINOLOGY``), which give the rule set a new digest."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Union

from mdtflag.fhir.facts.terminology import (
    Terminology,
    default_terminology,
    read_terminology_files,
    terminology_files,
)
from mdtflag.ruleset.diagnostics import Diagnostics, Pos, RuleSetError

__all__ = [
    "TERMINOLOGY_DIR",
    "TERMINOLOGY_ENV",
    "read_rule_terminology",
    "site_terminology_dirs",
    "with_site_terminology",
]

#: The folder of a rule set that holds its terminology.
TERMINOLOGY_DIR = "terminology"
#: Environment variable naming a site's terminology folders (separated by the path separator).
TERMINOLOGY_ENV = "MDTFLAG_TERMINOLOGY"

PathArg = Union[str, "os.PathLike[str]"]


def _read(root: Path, prefix: str, digest: Any, sources: dict[str, str] | None, diags: Diagnostics) -> Terminology:
    items: list[tuple[str, bytes]] = []
    for p in terminology_files(root):
        rel = f"{prefix}{p.relative_to(root).as_posix()}"
        try:
            raw = p.read_bytes()
            text = raw.decode("utf-8")
        except (OSError, UnicodeDecodeError) as e:
            diags.add("F002", f"cannot read file: {e}", Pos(rel))
            continue
        digest.update(rel.encode() + b"\0" + raw + b"\0")
        if sources is not None:
            sources[rel] = text
        items.append((rel, raw))
    terms, problems = read_terminology_files(items)
    for pr in problems:
        diags.add(
            "S009", f"terminology resource not used: {pr.path + ': ' if pr.path else ''}{pr.message}", Pos(pr.file)
        )
    return terms


def read_rule_terminology(root: Path, digest: Any, sources: dict[str, str], diags: Diagnostics) -> Terminology:
    """Every ``terminology/**/*.json`` of the rule directory ``root``: read, checked (S009), added to
    ``digest`` and ``sources`` (keys relative to ``root``). A rule set without a ``terminology/`` folder
    uses the terminology shipped with mdtflag's default rule set."""
    if not (root / TERMINOLOGY_DIR).is_dir():
        return default_terminology()
    return _read(root / TERMINOLOGY_DIR, f"{TERMINOLOGY_DIR}/", digest, sources, diags)


def site_terminology_dirs(given: Union[PathArg, Sequence[PathArg], None]) -> list[Path]:
    """The site folders: ``given`` (one or several), else ``$MDTFLAG_TERMINOLOGY`` (``os.pathsep``-separated)."""
    if given is None:
        env = os.environ.get(TERMINOLOGY_ENV, "")
        return [Path(p) for p in env.split(os.pathsep) if p]
    if isinstance(given, (str, os.PathLike)):
        return [Path(given)]
    return [Path(p) for p in given]


def with_site_terminology(rs: Any, dirs: Sequence[Path]) -> Any:
    """The rule set ``rs`` with the terminology of ``dirs`` layered on its own and a digest over both;
    raises :class:`RuleSetError` (F001 / S009) when a folder is missing or a resource cannot be used."""
    if not dirs:
        return rs
    diags = Diagnostics()
    digest = hashlib.sha256(rs.digest.encode() + b"\0")
    terms: Terminology = rs.terminology
    for d in dirs:
        if not d.is_dir():
            diags.add("F001", f"terminology folder not found: {d}", Pos(str(d)))
            continue
        terms = terms.layered(_read(d, f"{d.as_posix()}/", digest, None, diags))
    if diags.errors:
        raise RuleSetError(diags.sorted())
    return rs.model_copy(update={"terminology": terms, "digest": "sha256:" + digest.hexdigest()})
