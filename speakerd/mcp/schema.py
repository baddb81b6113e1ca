"""MCP tool schemas turned into the JSON Schema subset the Live API and our validator both understand.

Why convert rather than pass through: a declaration the Live service rejects fails the whole
session's setup, and an argument our ``validate`` cannot check would reach the server unchecked.
So each schema is rewritten into plain keywords (``type``, ``properties``, ``items``, ``enum``,
bounds): local ``$ref`` is inlined, ``Optional[X]`` (``anyOf`` of X and null) becomes X, ``const``
becomes a one-value ``enum``, annotations are dropped. What still cannot be expressed (a real union,
``allOf``, ``not``, a recursive ``$ref``, ``patternProperties`` ...) raises ``SchemaNotSupported``
and the tool is left out with one warning; the rest of the server's tools still work.
"""

from __future__ import annotations

import re
from typing import Any

NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]{0,63}$")
TYPES = {"object", "array", "string", "integer", "number", "boolean"}
# Kept as they are (validation keywords Live accepts; ``validate`` checks some, the server all).
PLAIN = {"description", "enum", "minimum", "maximum", "minLength", "maxLength", "pattern", "minItems",
         "maxItems", "default"}
# Dropped: annotations that change nothing about what is valid, and constraints that only narrow
# (the MCP server still enforces them on its side).
DROPPED = {"title", "examples", "$schema", "$id", "$comment", "$anchor", "readOnly", "writeOnly",
           "deprecated", "contentMediaType", "contentEncoding", "multipleOf", "uniqueItems",
           "minProperties", "maxProperties", "propertyNames", "$defs", "definitions"}
FORMATS = {"date-time", "date", "time", "duration", "email", "uri", "uuid", "int32", "int64",
           "float", "double", "enum"}
MAX_DEPTH = 12


class SchemaNotSupported(ValueError):
    """A schema the Live subset cannot express; the message names the keyword and where."""


def to_live(schema: Any) -> dict[str, Any]:
    """The tool's ``inputSchema`` as Live parameters (an object schema), or SchemaNotSupported."""
    if not isinstance(schema, dict):
        raise SchemaNotSupported("the input schema is not a JSON object")
    root = dict(schema)
    root.setdefault("type", "object")
    out = _convert(root, root, "parameters", 0, ())
    if out.get("type") != "object":
        raise SchemaNotSupported("parameters: the input schema must be of type object")
    for name in out.get("properties", {}):
        if not NAME.match(name):
            raise SchemaNotSupported(f"parameters: argument name {name!r} is not allowed by Live")
    return out


def _convert(s: Any, root: dict[str, Any], where: str, depth: int, refs: tuple[str, ...]) -> dict[str, Any]:
    if depth > MAX_DEPTH:
        raise SchemaNotSupported(f"{where}: nested deeper than {MAX_DEPTH} levels")
    if s is True or s == {}:
        raise SchemaNotSupported(f"{where}: a value of any type cannot be declared")
    if not isinstance(s, dict):
        raise SchemaNotSupported(f"{where}: not a schema")
    if "$ref" in s:
        ref = s["$ref"]
        if ref in refs:
            raise SchemaNotSupported(f"{where}: recursive $ref {ref!r}")
        rest = {k: v for k, v in s.items() if k != "$ref" and k not in DROPPED}
        merged = {**_resolve(ref, root, where), **rest}
        return _convert(merged, root, where, depth + 1, (*refs, ref))
    for key in ("anyOf", "oneOf"):
        if key in s:
            return _convert(_optional(s, key, where), root, where, depth + 1, refs)
    if "allOf" in s:
        parts = s["allOf"]
        if not isinstance(parts, list) or len(parts) != 1:
            raise SchemaNotSupported(f"{where}: allOf with {len(parts) if isinstance(parts, list) else '?'} parts")
        rest = {k: v for k, v in s.items() if k != "allOf"}
        return _convert({**parts[0], **rest}, root, where, depth + 1, refs)
    out: dict[str, Any] = {}
    kind = s.get("type")
    if isinstance(kind, list):
        kinds = [k for k in kind if k != "null"]
        if len(kinds) != 1:
            raise SchemaNotSupported(f"{where}: a value of several types {kind}")
        kind = kinds[0]
    if "const" in s:
        out["enum"] = [s["const"]]
        if kind is None:
            kind = _type_of(s["const"], where)
    if kind is None and "enum" in s and isinstance(s["enum"], list) and s["enum"]:
        enum_kinds = {_type_of(v, where) for v in s["enum"]}
        if len(enum_kinds) != 1:
            raise SchemaNotSupported(f"{where}: an enum of mixed types")
        kind = enum_kinds.pop()
    if kind is None and "properties" in s:
        kind = "object"
    if kind is None and "items" in s:
        kind = "array"
    if kind not in TYPES:
        raise SchemaNotSupported(f"{where}: type {kind!r} cannot be declared" if kind is not None
                                 else f"{where}: a value without a type cannot be declared")
    out["type"] = kind
    for key, value in s.items():
        if key in ("type", "const", "$ref"):
            continue
        if key in PLAIN:
            if not (key == "default" and value is None):
                out[key] = value
        elif key == "format":
            if value in FORMATS:
                out[key] = value
        elif key in DROPPED:
            continue
        elif key in ("exclusiveMinimum", "exclusiveMaximum") and isinstance(value, int | float):
            if kind != "integer" or isinstance(value, bool):
                continue  # the server still enforces it; Live has no way to say it
            bound = "minimum" if key == "exclusiveMinimum" else "maximum"
            out[bound] = int(value) + (1 if bound == "minimum" else -1)
        elif key == "properties" and kind == "object":
            if not isinstance(value, dict):
                raise SchemaNotSupported(f"{where}.properties: not a table")
            out["properties"] = {
                name: _convert(sub, root, f"{where}.{name}", depth + 1, refs) for name, sub in value.items()
            }
        elif key == "required" and kind == "object":
            if not isinstance(value, list) or not all(isinstance(n, str) for n in value):
                raise SchemaNotSupported(f"{where}.required: not a list of names")
            out["required"] = list(value)
        elif key == "additionalProperties" and kind == "object":
            if isinstance(value, bool):
                out[key] = value
            else:
                out[key] = _convert(value, root, f"{where}.additionalProperties", depth + 1, refs)
        elif key == "items" and kind == "array":
            out["items"] = _convert(value, root, f"{where}[]", depth + 1, refs)
        else:
            raise SchemaNotSupported(f"{where}: keyword {key!r} cannot be declared")
    if kind == "array" and "items" not in out:
        raise SchemaNotSupported(f"{where}: an array without items cannot be declared")
    if kind == "object" and "properties" not in out and not isinstance(out.get("additionalProperties"), dict):
        out["properties"] = {}
    return out


def _optional(s: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    """``anyOf: [X, {type: null}]`` (how pydantic spells Optional[X]) is X; other unions are not."""
    options = s[key]
    if not isinstance(options, list):
        raise SchemaNotSupported(f"{where}: {key} is not a list")
    real = [o for o in options if not (isinstance(o, dict) and o.get("type") == "null" and len(o) == 1)]
    if len(real) != 1:
        raise SchemaNotSupported(f"{where}: {key} with {len(real)} alternatives")
    rest = {k: v for k, v in s.items() if k != key}
    return {**real[0], **rest} if isinstance(real[0], dict) else real[0]


def _resolve(ref: Any, root: dict[str, Any], where: str) -> dict[str, Any]:
    if not isinstance(ref, str) or not ref.startswith("#/"):
        raise SchemaNotSupported(f"{where}: $ref {ref!r} is not local")
    node: Any = root
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, dict) or part not in node:
            raise SchemaNotSupported(f"{where}: $ref {ref!r} does not resolve")
        node = node[part]
    if not isinstance(node, dict):
        raise SchemaNotSupported(f"{where}: $ref {ref!r} is not a schema")
    return node


def _type_of(value: Any, where: str) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    raise SchemaNotSupported(f"{where}: enum value {value!r} cannot be declared")
