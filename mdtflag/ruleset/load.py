"""Read a rule directory into a :class:`~mdtflag.ruleset.model.RuleSet`: every YAML file parsed with
positions, fragments expanded, each document validated against the rule model, cross-file checks; every
problem a diagnostic with file:line:col."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Optional

from pydantic import ValidationError

from mdtflag.ruleset.diagnostics import Diagnostics, Pos, RuleSetError, decode_utf8
from mdtflag.ruleset.fragments import FRAGMENT_DIR, Expander
from mdtflag.ruleset.model import _CRITERION, Fragment, Model, Profiles, Rule, RuleSet, RulesetMeta, Table, ValueSet
from mdtflag.ruleset.terminology import read_rule_terminology
from mdtflag.ruleset.yamlpos import locate_pos, read_yaml


def _schema_diags(exc: ValidationError, data: Any, file: str, diags: Diagnostics) -> None:
    errors = exc.errors(include_url=False)
    locs = [tuple(e.get("loc", ())) for e in errors]
    for err, loc in zip(errors, locs):
        etype = err.get("type", "")
        # "too short" on a list whose items failed is noise: the item errors say what is wrong
        if etype == "too_short" and any(len(o) > len(loc) and o[: len(loc)] == loc for o in locs):
            continue
        pos = locate_pos(data, loc, file)
        if etype == "extra_forbidden":
            msg, code = f"unknown key '{loc[-1]}'", "S002"
        elif etype == "missing":
            msg, code = f"missing required key '{loc[-1]}'", "S003"
        else:
            text = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
            key = next(
                (
                    p
                    for p in reversed(loc)
                    if isinstance(p, str) and p not in ("fields", "cond", "fact", "rule", "param", "all", "any", "not")
                ),
                None,
            )
            msg, code = (f"'{key}': {text}" if key else text), "S001"
        diags.add(code, msg, pos)


def validate_document(model: type[Model], data: Any, file: str, diags: Diagnostics) -> Optional[Any]:
    if not isinstance(data, dict):
        diags.add("S001", f"expected a mapping at the top of the file, got {type(data).__name__}", Pos(file, 1, 1))
        return None
    try:
        return model.model_validate(data, context={"file": file})
    except ValidationError as e:
        _schema_diags(e, data, file, diags)
        return None


def _validate_criterion(data: Any, file: str, diags: Diagnostics) -> None:
    try:
        _CRITERION.validate_python(data, context={"file": file})
    except ValidationError as e:
        _schema_diags(e, data, file, diags)


def _yaml_files(root: Path, sub: str) -> list[Path]:
    d = root / sub
    if not d.is_dir():
        return []
    return sorted(p for p in d.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())


def read_ruleset(path: str | Path) -> tuple[Optional[RuleSet], list[Any]]:
    """Load a rule directory; returns the rule set (None if there were errors) and all diagnostics."""
    root = Path(path)
    diags = Diagnostics()
    if not root.is_dir():
        diags.add("F001", f"rule directory not found: {root}", Pos(str(root)))
        return None, diags.sorted()
    sources: dict[str, str] = {}
    digest = hashlib.sha256()

    def read(p: Path) -> tuple[str, Any]:
        rel = p.relative_to(root).as_posix()
        try:
            raw = p.read_bytes()
        except OSError as e:
            diags.add("F002", f"cannot read file: {e}", Pos(rel))
            return rel, None
        text = decode_utf8(raw, rel, diags)
        if text is None:
            return rel, None
        sources[rel] = text
        digest.update(rel.encode() + b"\0" + raw + b"\0")
        return rel, read_yaml(text, rel, diags)

    meta = None
    meta_path = root / "ruleset.yaml"
    if meta_path.is_file():
        rel, data = read(meta_path)
        meta = validate_document(RulesetMeta, data, rel, diags) if data is not None else None
    else:
        diags.add("F001", "ruleset.yaml is missing (name, version, title of the rule set)", Pos("ruleset.yaml"))

    profiles = None
    prof_path = root / "profiles.yaml"
    if prof_path.is_file():
        rel, data = read(prof_path)
        profiles = validate_document(Profiles, data, rel, diags) if data is not None else None
    else:
        diags.add("F001", "profiles.yaml is missing", Pos("profiles.yaml"))

    valuesets: dict[str, ValueSet] = {}
    for p in _yaml_files(root, "valuesets"):
        rel, data = read(p)
        vs = validate_document(ValueSet, data, rel, diags) if data is not None else None
        if vs is not None:
            if vs.id != p.stem:
                diags.add("S004", f"value set id '{vs.id}' differs from its file name '{p.stem}'", vs.pos)
            if vs.id in valuesets:
                diags.add("S005", f"duplicate value set id '{vs.id}' (also {valuesets[vs.id].pos})", vs.pos)
            valuesets[vs.id] = vs

    tables: dict[str, Table] = {}
    for p in _yaml_files(root, "tables"):
        rel, data = read(p)
        tb = validate_document(Table, data, rel, diags) if data is not None else None
        if tb is not None:
            if tb.id != p.stem:
                diags.add("S004", f"table id '{tb.id}' differs from its file name '{p.stem}'", tb.pos)
            keys = [r["key"] for r in tb.rows]
            for k in sorted({k for k in keys if keys.count(k) > 1}):
                diags.add("S005", f"duplicate row key '{k}' in table '{tb.id}'", tb.pos)
            tables[tb.id] = tb

    terminology = read_rule_terminology(root, digest, sources, diags)

    fragments: dict[str, Fragment] = {}
    bodies: dict[str, tuple[str, Any]] = {}
    for p in _yaml_files(root, FRAGMENT_DIR):
        rel, data = read(p)
        frag = validate_document(Fragment, data, rel, diags) if data is not None else None
        if frag is not None:
            if frag.id != p.stem:
                diags.add("S004", f"fragment id '{frag.id}' differs from its file name '{p.stem}'", frag.pos)
            if frag.id in fragments:
                diags.add("S005", f"duplicate fragment id '{frag.id}' (also {fragments[frag.id].pos})", frag.pos)
            fragments[frag.id] = frag
            bodies[frag.id] = (rel, data["criterion"])
    expander = Expander(bodies, diags)

    rules: list[Rule] = []
    for p in _yaml_files(root, "criteria"):
        rel, data = read(p)
        if data is None:
            continue
        before = len(diags.errors)
        data = expander.rule(data, rel)
        rule = validate_document(Rule, data, rel, diags) if len(diags.errors) == before else None
        if rule is not None:
            rules.append(rule)
    for name in sorted(set(bodies) - set(expander.uses)):  # used nowhere: still checked on its own
        _validate_criterion(Expander(bodies, diags).fragment(name), bodies[name][0], diags)
    seen: dict[str, Rule] = {}
    for r in rules:
        if r.id in seen:
            diags.add("S005", f"duplicate rule id '{r.id}' (also {seen[r.id].pos})", r.pos)
        seen[r.id] = r
    _check_ranks(rules, diags)

    test_files = tuple(p.relative_to(root).as_posix() for p in _yaml_files(root, "tests"))
    if not rules and not diags.errors:
        diags.add("F003", "no rule files found under criteria/", Pos("criteria"))
    if diags.errors or meta is None or profiles is None:
        return None, diags.sorted(sources)
    rs = RuleSet(
        root=str(root),
        meta=meta,
        digest="sha256:" + digest.hexdigest(),
        rules=tuple(sorted(rules, key=lambda r: r.id)),
        valuesets=valuesets,
        tables=tables,
        profiles=profiles,
        sources=sources,
        test_files=test_files,
        fragments=fragments,
        fragment_uses={k: tuple(v) for k, v in sorted(expander.uses.items())},
        terminology=terminology,
    )
    return rs, diags.sorted(sources)


def _check_ranks(rules: list[Rule], diags: Diagnostics) -> None:
    """S008: in a decision group, all rules at one rank decide the same level (else the order would be arbitrary)."""
    first: dict[tuple[str, int], Rule] = {}
    for r in sorted(rules, key=lambda r: r.id):
        d = r.decision
        if d is None:
            continue
        other = first.setdefault((d.group, d.rank), r)
        if other.decision is not None and other.decision.level != d.level:
            diags.add(
                "S008",
                f"rank {d.rank} of decision group '{d.group}' is level '{other.decision.level}' in rule "
                f"{other.id} ({other.decision.pos}) but '{d.level}' here",
                d.pos,
                help="give each level of a decision group its own rank",
            )


def load_ruleset(path: str | Path) -> RuleSet:
    """Load a rule directory or raise :class:`RuleSetError` with every diagnostic."""
    rs, diags = read_ruleset(path)
    if rs is None:
        raise RuleSetError(diags)
    return rs
