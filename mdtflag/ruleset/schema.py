"""The JSON Schema of a rule file (``mdtflag schema rule``), derived from the rule model."""

from __future__ import annotations

from typing import Any

from mdtflag.ruleset.model import Fragment, FragmentUse, Rule
from mdtflag.ruleset.positions import POS_KEY

__all__ = ["rule_json_schema"]


def rule_json_schema() -> dict[str, Any]:
    """JSON Schema of a rule file (``mdtflag.rule/1``)."""
    schema = Rule.model_json_schema(by_alias=True, mode="validation")
    schema["$id"] = "mdtflag.rule/1"
    schema["title"] = "mdtflag rule file"
    schema = _with_uses(schema)
    defs = schema["$defs"]
    use = FragmentUse.model_json_schema(by_alias=True, mode="validation")
    defs.update(use.pop("$defs", {}))
    defs["FragmentUse"] = use
    frag = Fragment.model_json_schema(by_alias=True, mode="validation")
    frag.pop("$defs", None)
    frag["properties"]["criterion"] = {"oneOf": _criterion_refs()}
    frag["description"] = (
        "A fragment file (fragments/<id>.yaml): a shared criteria block, used in rules as {use: <id>}."
    )
    defs["Fragment"] = frag
    out: dict[str, Any] = _drop_pos(schema)
    return out


def _criterion_refs() -> list[dict[str, str]]:
    return [
        {"$ref": f"#/$defs/{n}"}
        for n in ("AllNode", "AnyNode", "NotNode", "FactLeaf", "RuleRefLeaf", "ParamLeaf", "FragmentUse")
    ]


def _with_uses(obj: Any) -> Any:
    """Every place that takes a criterion also takes ``{use: NAME}``."""
    if isinstance(obj, dict):
        out = {k: _with_uses(v) for k, v in obj.items()}
        refs = out.get("oneOf")
        if isinstance(refs, list) and {"$ref": "#/$defs/ParamLeaf"} in refs:
            out["oneOf"] = refs + [{"$ref": "#/$defs/FragmentUse"}]
        return out
    if isinstance(obj, list):
        return [_with_uses(v) for v in obj]
    return obj


def _drop_pos(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _drop_pos(v) for k, v in obj.items() if k != POS_KEY}
    if isinstance(obj, list):
        return [_drop_pos(v) for v in obj]
    return obj
