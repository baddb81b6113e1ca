"""Schema conversion to Live's subset, and the [[tools.mcp]] settings' rules (no server needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from speakerd.live.tools import ToolArgumentError, validate
from speakerd.mcp import McpServerSettings, SchemaNotSupported, to_live


class Point(BaseModel):
    x: int
    y: int


class Shape(BaseModel):
    corners: list[Point]
    label: str | None = None


class Tree(BaseModel):
    children: list[Tree] = []


def test_pydantic_refs_and_optional_become_plain_keywords() -> None:
    schema = {"type": "object", "properties": {"shape": {"$ref": "#/$defs/Shape"}}, "required": ["shape"],
              "$defs": Shape.model_json_schema(ref_template="#/$defs/{model}")["$defs"]
              | {"Shape": {k: v for k, v in Shape.model_json_schema(ref_template="#/$defs/{model}").items()
                           if k != "$defs"}}}
    out = to_live(schema)
    assert out == {"type": "object", "required": ["shape"], "properties": {"shape": {
        "type": "object", "required": ["corners"], "properties": {
            "corners": {"type": "array", "items": {"type": "object", "required": ["x", "y"], "properties": {
                "x": {"type": "integer"}, "y": {"type": "integer"}}}},
            "label": {"type": "string"}}}}}
    validate(out, {"shape": {"corners": [{"x": 1, "y": 2}]}})
    with pytest.raises(ToolArgumentError, match=r"corners\[0\]\.y"):
        validate(out, {"shape": {"corners": [{"x": 1, "y": "two"}]}})


def test_recursive_ref_is_refused() -> None:
    schema = Tree.model_json_schema()
    with pytest.raises(SchemaNotSupported, match="recursive"):
        to_live({"type": "object", "properties": {"tree": {"$ref": "#/$defs/Tree"}}, "$defs": schema["$defs"]})


@pytest.mark.parametrize(("schema", "expected"), [
    ({"const": "on"}, {"type": "string", "enum": ["on"]}),
    ({"type": ["integer", "null"], "minimum": 0}, {"type": "integer", "minimum": 0}),
    ({"type": "integer", "exclusiveMinimum": 0, "exclusiveMaximum": 10}, {"type": "integer", "minimum": 1,
                                                                         "maximum": 9}),
    ({"type": "number", "exclusiveMinimum": 0, "multipleOf": 0.5}, {"type": "number"}),
    ({"allOf": [{"type": "string", "maxLength": 5}], "description": "d"},
     {"type": "string", "maxLength": 5, "description": "d"}),
    ({"enum": [1, 2, 3]}, {"type": "integer", "enum": [1, 2, 3]}),
    ({"type": "string", "format": "date-time", "title": "When"}, {"type": "string", "format": "date-time"}),
    ({"type": "string", "format": "hostname"}, {"type": "string"}),
])
def test_keywords_converted(schema: dict[str, Any], expected: dict[str, Any]) -> None:
    assert to_live({"type": "object", "properties": {"v": schema}})["properties"]["v"] == expected


@pytest.mark.parametrize(("schema", "why"), [
    ({"anyOf": [{"type": "integer"}, {"type": "string"}]}, "anyOf with 2"),
    ({"oneOf": [{"type": "integer"}, {"type": "boolean"}]}, "oneOf with 2"),
    ({"allOf": [{"type": "string"}, {"maxLength": 3}]}, "allOf with 2"),
    ({"type": "string", "not": {"enum": ["x"]}}, "keyword 'not'"),
    ({"type": "object", "patternProperties": {"^a": {"type": "string"}}}, "patternProperties"),
    ({"type": "array"}, "array without items"),
    ({}, "any type"),
    ({"type": ["string", "integer"]}, "several types"),
    ({"$ref": "https://example.org/schema.json"}, "not local"),
    ({"$ref": "#/$defs/Missing"}, "does not resolve"),
    ({"enum": ["a", 1]}, "mixed types"),
])
def test_what_cannot_be_declared_is_refused(schema: dict[str, Any], why: str) -> None:
    with pytest.raises(SchemaNotSupported, match=why):
        to_live({"type": "object", "properties": {"v": schema}})


def test_root_must_be_an_object_with_live_argument_names() -> None:
    assert to_live({}) == {"type": "object", "properties": {}}
    with pytest.raises(SchemaNotSupported, match="type object"):
        to_live({"type": "string"})
    with pytest.raises(SchemaNotSupported, match="argument name 'entity-id'"):
        to_live({"type": "object", "properties": {"entity-id": {"type": "string"}}})
    with pytest.raises(SchemaNotSupported, match="not a JSON object"):
        to_live([1])


def test_settings_rules() -> None:
    ok = McpServerSettings(name="ha", url="http://homeassistant.local:8123/api/mcp", token_credential="ha-token")
    assert ok.allow == ["*"] and ok.deny == [] and ok.where == "http://homeassistant.local:8123/api/mcp"
    cases: list[tuple[dict[str, Any], str]] = [
        ({"name": "ha"}, "exactly one of url or command"),
        ({"name": "ha", "url": "http://h/api/mcp", "command": ["x"]}, "exactly one of url or command"),
        ({"name": "ha", "command": []}, "must not be empty"),
        ({"name": "ha", "command": ["srv"], "token_credential": "t"}, "token_credential is for a url"),
        ({"name": "ha", "url": "ftp://h/x"}, "http:// or https://"),
        ({"name": "ha", "url": "http://user:pw@h/api/mcp"}, "no credentials in the url"),
        ({"name": "h__a", "url": "http://h/api/mcp"}, "name"),
        ({"name": "ha", "url": "http://h/api/mcp", "token_credential": "../etc/passwd"}, "token_credential"),
        ({"name": "ha", "url": "http://h/api/mcp", "timeout_seconds": 0}, "timeout_seconds"),
        ({"name": "ha", "url": "http://h/api/mcp", "tokn": "x"}, "tokn"),
    ]
    for bad, rule in cases:
        with pytest.raises(ValidationError, match=rule):
            McpServerSettings(**bad)


def test_the_documented_toml_loads() -> None:
    """The [[tools.mcp]] entries exactly as docs/mcp.md shows them."""
    import tomllib

    from pydantic import TypeAdapter

    doc = (Path(__file__).resolve().parents[2] / "docs" / "mcp.md").read_text()
    blocks = [b.split("```", 1)[0] for b in doc.split("```toml\n")[1:]]
    assert len(blocks) == 2
    servers = TypeAdapter(list[McpServerSettings]).validate_python(
        [e for b in blocks for e in tomllib.loads(b)["tools"]["mcp"]])
    assert [s.name for s in servers] == ["ha", "notes"]
    assert servers[0].url == "http://homeassistant.local:8123/api/mcp" and servers[0].token_credential == "ha-token"
    assert servers[1].command and servers[1].url is None
