"""Field types of the fact schema and how their values are encoded for the engine.

The engine compares only text, whole numbers and booleans. A ``decimal`` is sent as a fixed-point
whole number (value × 1000, rounded half-even) and a ``date`` as a day number (days since
1970-01-01). Facts and rule constants are encoded by the same functions, so a rule's threshold
and a patient's value always meet on the same scale.
"""
from __future__ import annotations

from collections.abc import Mapping
from datetime import date as Date
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from types import MappingProxyType
from typing import Callable, Literal, Union

__all__ = [
    "ENCODERS",
    "ENGINE_TYPE",
    "EPOCH",
    "EngineType",
    "EngineValue",
    "FieldType",
    "encode_constant",
    "encode_date",
    "encode_decimal",
    "encode_value",
]

#: The type of a fact field as rules see it.
FieldType = Literal["str", "int", "bool", "decimal", "date"]
#: The type of a field as the engine holds it.
EngineType = Literal["str", "int", "bool"]
#: An encoded value.
EngineValue = Union[str, int, bool]

EPOCH = Date(1970, 1, 1)
_EPOCH_ORDINAL = EPOCH.toordinal()
_ONE = Decimal(1)


def encode_decimal(value: Decimal) -> int:
    """``value`` × 1000 as a whole number, rounded half-even: ``Decimal("0.0025")`` -> 2."""
    return int((value * 1000).quantize(_ONE, rounding=ROUND_HALF_EVEN))


def encode_date(value: Date) -> int:
    """Days since 1970-01-01 (negative before)."""
    return value.toordinal() - _EPOCH_ORDINAL


#: field type -> engine type.
ENGINE_TYPE: Mapping[FieldType, EngineType] = MappingProxyType({
    "str": "str", "int": "int", "bool": "bool", "decimal": "int", "date": "int",
})
#: field type -> encoder, ``None`` where the value is sent as it is.
ENCODERS: Mapping[FieldType, Callable[..., int] | None] = MappingProxyType({
    "str": None, "int": None, "bool": None, "decimal": encode_decimal, "date": encode_date,
})


def encode_value(field_type: str, value: object) -> object:
    """Encode one fact value: decimal -> int(value × 1000, half-even); date -> days since
    1970-01-01; str/int/bool unchanged. ``ValueError`` for an unknown field type."""
    if field_type == "decimal":
        return encode_decimal(value if isinstance(value, Decimal) else Decimal(str(value)))
    if field_type == "date":
        if not isinstance(value, Date):
            raise TypeError(f"a date field needs a date, got {value!r}")
        return encode_date(value)
    if field_type not in ENCODERS:
        raise ValueError(f"unknown field type {field_type!r}")
    return value


def encode_constant(field_type: FieldType, value: object) -> EngineValue | None:
    """Encode a rule constant for a field of ``field_type``; ``None`` when the constant is not
    of that type (a ``decimal`` accepts a number or a numeric text, a ``date`` a date)."""
    if field_type == "str":
        return value if isinstance(value, str) else None
    if field_type == "bool":
        return value if isinstance(value, bool) else None
    if field_type == "int":
        return value if isinstance(value, int) and not isinstance(value, bool) else None
    if field_type == "decimal":
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            return None
        try:
            return encode_decimal(Decimal(str(value)))
        except (InvalidOperation, ValueError):
            return None
    if isinstance(value, Date) and not isinstance(value, datetime):
        return encode_date(value)
    return None
