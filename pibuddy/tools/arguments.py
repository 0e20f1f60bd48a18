"""Tool input schemas: concise property helpers and the argument check every call goes through.

The check applies the firmware's rules first (`McpServer::DoToolCall`: boolean/integer/string type checks,
integer ranges, required properties, defaults) with the firmware's exact messages, then full JSON Schema
validation for whatever else a schema says (enum, pattern, nested objects ...).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from jsonschema.protocols import Validator

from pibuddy.errors import InvalidArguments

_MISSING: Final = object()
_MAX_REASON_CHARS: Final = 200


def boolean(*, default: bool | None = None, description: str | None = None) -> dict[str, Any]:
    """A boolean property; with a default it becomes optional."""
    return _property("boolean", default, description)


def integer(
    minimum: int | None = None,
    maximum: int | None = None,
    *,
    default: int | None = None,
    description: str | None = None,
) -> dict[str, Any]:
    """An integer property, range-checked like the firmware's `Property(name, kPropertyTypeInteger, min, max)`."""
    if default is not None and not _within(default, minimum, maximum):
        raise ValueError(f"default {default} is outside {minimum}..{maximum}")
    prop = _property("integer", default, description)
    if minimum is not None:
        prop["minimum"] = minimum
    if maximum is not None:
        prop["maximum"] = maximum
    return prop


def string(
    *, enum: Iterable[str] | None = None, default: str | None = None, description: str | None = None
) -> dict[str, Any]:
    """A string property, optionally limited to `enum` values."""
    prop = _property("string", default, description)
    if enum is not None:
        prop["enum"] = list(enum)
    return prop


def object_schema(properties: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """An `inputSchema` as the firmware emits it: every property without a default is required."""
    schema: dict[str, Any] = {"type": "object", "properties": {k: dict(v) for k, v in properties.items()}}
    required = [name for name, prop in properties.items() if "default" not in prop]
    if required:
        schema["required"] = required
    return schema


def compile_schema(schema: Mapping[str, Any]) -> Validator:
    """Check that `schema` is a valid object schema and return its validator; ValueError otherwise."""
    if schema.get("type") != "object" or not isinstance(schema.get("properties"), Mapping):
        raise ValueError('an inputSchema must be {"type": "object", "properties": {...}}')
    from jsonschema import Draft202012Validator  # noqa: PLC0415 (3 MB: only once a tool is registered)
    from jsonschema.exceptions import SchemaError  # noqa: PLC0415

    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        raise ValueError(f"invalid inputSchema: {exc.message}") from None
    return Draft202012Validator(schema)


def check_arguments(
    schema: Mapping[str, Any], validator: Validator, arguments: Mapping[str, Any]
) -> dict[str, Any]:
    """Validate `arguments` and return them with defaults applied; raise `InvalidArguments` otherwise.

    Keys the schema does not declare are dropped (the firmware passes only declared properties) unless the
    schema sets `additionalProperties`.
    """
    if not isinstance(arguments, Mapping):
        raise InvalidArguments("Invalid arguments")
    properties: Mapping[str, Mapping[str, Any]] = schema["properties"]
    required = set(schema.get("required", ()))
    checked: dict[str, Any] = dict(arguments) if "additionalProperties" in schema else {}
    for name, prop in properties.items():
        value = arguments.get(name, _MISSING)
        if value is _MISSING:
            if "default" in prop:
                checked[name] = copy.deepcopy(prop["default"])
            elif name in required:
                raise InvalidArguments(f"Missing valid argument: {name}")
            continue
        checked[name] = _check_firmware_rules(name, prop, value)
    from jsonschema.exceptions import best_match  # noqa: PLC0415

    error = best_match(validator.iter_errors(checked))
    if error is not None:
        where = ".".join(str(part) for part in error.absolute_path)
        reason = _shorten(error.message)  # it quotes the value, which may be huge
        raise InvalidArguments(f"Invalid argument {where}: {reason}" if where else f"Invalid arguments: {reason}")
    return checked


def _check_firmware_rules(name: str, prop: Mapping[str, Any], value: Any) -> Any:
    """The firmware treats a value of the wrong type as missing; we report it even when a default exists,
    because silently using the default would hide the LLM's mistake."""
    match prop.get("type"):
        case "boolean" if not isinstance(value, bool):
            raise InvalidArguments(f"Missing valid argument: {name}")
        case "string" if not isinstance(value, str):
            raise InvalidArguments(f"Missing valid argument: {name}")
        case "integer":
            value = _as_integer(name, value)
            if "minimum" in prop and value < prop["minimum"]:
                raise InvalidArguments(f"Value is below minimum allowed: {_number_text(prop['minimum'])}")
            if "maximum" in prop and value > prop["maximum"]:
                raise InvalidArguments(f"Value exceeds maximum allowed: {_number_text(prop['maximum'])}")
    return value


def _as_integer(name: str, value: Any) -> int:
    """Whole numbers only; 37.0 (which JSON encoders of some LLM stacks produce) counts as 37."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidArguments(f"Missing valid argument: {name}")
    if isinstance(value, float):
        if not (math.isfinite(value) and value.is_integer()):
            raise InvalidArguments(f"Missing valid argument: {name}")
        return int(value)
    return value


def _shorten(text: str) -> str:
    return text if len(text) <= _MAX_REASON_CHARS else text[: _MAX_REASON_CHARS - 1] + "…"


def _number_text(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else str(number)


def _within(value: int, minimum: int | None, maximum: int | None) -> bool:
    return (minimum is None or value >= minimum) and (maximum is None or value <= maximum)


def _property(kind: str, default: Any, description: str | None) -> dict[str, Any]:
    prop: dict[str, Any] = {"type": kind}
    if description is not None:
        prop["description"] = description
    if default is not None:
        prop["default"] = default
    return prop
