"""Request checking against the same JSON Schemas the OpenAPI document publishes, so the
contract and the server cannot drift apart. A small subset of JSON Schema: type (one or a
list), enum, minimum/exclusiveMinimum/maximum, minLength/maxLength, pattern, properties, required,
additionalProperties (boolean or schema), items, maxItems, anyOf, format "ip"/"ipv4"/"ipv6".
"""

from __future__ import annotations

import ipaddress
import json
import re
from functools import lru_cache
from typing import Any

from api.problems import ApiError

_JSON_TYPES = {
    "object": dict, "array": list, "string": str, "boolean": bool, "null": type(None),
}


@lru_cache(maxsize=256)
def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _type_ok(value: Any, t: str) -> bool:
    if t == "integer":
        return (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, float) and value.is_integer()
        )
    if t == "number":
        return isinstance(value, int | float) and not isinstance(value, bool) and (
            value == value and value not in (float("inf"), float("-inf"))
        )
    return isinstance(value, _JSON_TYPES[t])


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array" if isinstance(value, list) else "an object"


def check(value: Any, schema: dict[str, Any], field: str) -> None:
    """Raise ApiError(400) naming `field` (dotted path) if `value` breaks `schema`."""
    if "anyOf" in schema:
        errors = []
        for sub in schema["anyOf"]:
            try:
                check(value, sub, field)
                break
            except ApiError as exc:
                errors.append(exc.detail)
        else:
            raise _bad(field, " or ".join(dict.fromkeys(errors)))
    types = schema.get("type")
    if types is not None:
        names = [types] if isinstance(types, str) else list(types)
        if not any(_type_ok(value, t) for t in names):
            want = " or ".join("an integer" if t == "integer" else f"a {t}" if t != "array"
                               else "an array" for t in names)
            raise _bad(field, f"must be {want}, not {_describe(value)}")
    if "enum" in schema and value not in schema["enum"]:
        choices = ", ".join(json.dumps(c) for c in schema["enum"])
        raise _bad(field, f"{json.dumps(value)} is not one of {choices}")
    if isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            raise _bad(field, f"{value} is less than {schema['minimum']}")
        if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
            raise _bad(field, f"{value} must be more than {schema['exclusiveMinimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            raise _bad(field, f"{value} is more than {schema['maximum']}")
    if isinstance(value, str):
        _check_string(value, schema, field)
    if isinstance(value, list):
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            raise _bad(field, f"has more than {schema['maxItems']} items")
        if "items" in schema:
            for i, item in enumerate(value):
                check(item, schema["items"], f"{field}[{i}]")
    if isinstance(value, dict):
        _check_object(value, schema, field)


def _check_string(value: str, schema: dict[str, Any], field: str) -> None:
    if "minLength" in schema and len(value) < schema["minLength"]:
        raise _bad(field, "is empty" if schema["minLength"] == 1
                   else f"is shorter than {schema['minLength']} characters")
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        raise _bad(field, f"is longer than {schema['maxLength']} characters")
    if "pattern" in schema and not _regex(schema["pattern"]).search(value):
        raise _bad(field, f"{value[:80]!r} does not match {schema['pattern']}")
    fmt = schema.get("format")
    if fmt in ("ip", "ipv4", "ipv6"):
        try:
            addr = ipaddress.ip_address(value)
        except ValueError:
            raise _bad(field, f"{value[:80]!r} is not an IP address") from None
        if (fmt == "ipv4" and addr.version != 4) or (fmt == "ipv6" and addr.version != 6):
            raise _bad(field, f"{value!r} is not an {fmt.upper().replace('IPV', 'IPv')} address")


def _check_object(value: dict[str, Any], schema: dict[str, Any], field: str) -> None:
    props: dict[str, Any] = schema.get("properties", {})
    prefix = f"{field}." if field else ""
    for name in schema.get("required", ()):
        if name not in value:
            raise _bad(prefix + name, "is required")
    extra = schema.get("additionalProperties", True)
    for name, item in value.items():
        if name in props:
            check(item, props[name], prefix + name)
        elif extra is False:
            known = ", ".join(props) or "none"
            raise _bad(prefix + name, f"unknown member (known: {known})")
        elif isinstance(extra, dict):
            check(item, extra, prefix + name)


def _bad(field: str, message: str) -> ApiError:
    return ApiError(400, "invalid-request", f"{field}: {message}", field=field)


# --- query strings -------------------------------------------------------------------
_INT_RE = re.compile(r"^[+-]?\d{1,19}$")
_NUM_RE = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


def coerce(text: str, schema: dict[str, Any], field: str) -> Any:
    """A query/path string as the type its schema names (then `check` it)."""
    t = schema.get("type")
    if t == "integer":
        if not _INT_RE.match(text):
            raise _bad(field, f"{text[:40]!r} is not an integer")
        value: Any = int(text)
    elif t == "number":
        if not _NUM_RE.match(text):
            raise _bad(field, f"{text[:40]!r} is not a number")
        value = float(text)
    elif t == "boolean":
        if text not in ("true", "false"):
            raise _bad(field, f"{text[:40]!r} is not true or false")
        value = text == "true"
    else:
        value = text
    check(value, schema, field)
    return value
