"""Hypothesis strategies for mutated Live API server messages, as frames the emulator sends verbatim.

Why start from real messages: random bytes almost never get past ``json.loads``, so they only ever
test one path. Valid messages bent a little (a wrong type here, a missing key there) reach the SDK's
pydantic parsing and the client's own handling, where the interesting failures live.
"""

from __future__ import annotations

import base64
import copy
import json
import re
from typing import Any

from hypothesis import strategies as st

Frame = str | bytes
Tree = Any

DEEP = "__speakerd_fuzz_deep__"  # replaced by deeply nested brackets after serialising
DUP = "__speakerd_fuzz_dup__"  # prefix of a key that becomes a duplicate of the key it names

_AUDIO = base64.b64encode(bytes(range(256)) * 8).decode()
_USAGE = {
    "promptTokenCount": 147, "responseTokenCount": 36, "totalTokenCount": 183,
    "promptTokensDetails": [{"modality": "AUDIO", "tokenCount": 120}],
    "responseTokensDetails": [{"modality": "AUDIO", "tokenCount": 36}],
}

# Real server messages (camelCase, as the service sends them), one of each kind the client handles.
VALID: tuple[dict[str, Any], ...] = (
    {"setupComplete": {}},
    {"serverContent": {"modelTurn": {"parts": [{"inlineData": {"mimeType": "audio/pcm;rate=24000",
                                                               "data": _AUDIO}}]}}},
    {"serverContent": {"modelTurn": {"parts": [{"inlineData": {"mimeType": "audio/pcm;rate=24000",
                                                               "data": _AUDIO}}]},
                       "outputTranscription": {"text": "Sure, "}}},
    {"serverContent": {"outputTranscription": {"text": "Sure."}}},
    {"serverContent": {"inputTranscription": {"text": "turn it up", "finished": True}}},
    {"serverContent": {"interrupted": True}},
    {"serverContent": {"generationComplete": True}},
    {"serverContent": {"turnComplete": True}, "usageMetadata": _USAGE},
    {"usageMetadata": _USAGE},
    {"toolCall": {"functionCalls": [{"id": "fc-fuzz-1", "name": "set_volume", "args": {"level": 5}}]}},
    {"toolCallCancellation": {"ids": ["fc-fuzz-1"]}},
    {"goAway": {"timeLeft": "50s"}},
    {"sessionResumptionUpdate": {"newHandle": "fuzz-handle", "resumable": True}},
    {"sessionResumptionUpdate": {"resumable": False}},
)

_CAMEL_PART = re.compile(r"(?<=[a-z0-9])([A-Z])")
ODD_TEXT = ("\ud800", "\udfff", "\x00", "\u202e", "\ufeff", "\uffff", "\U0001f600" * 50, "e\u0301" * 20,
            "\u0000\u0001\u001f", "\\", '"', "\u2028\u2029")
HUGE = (10**40, -(10**40), 2**63, -(2**63) - 1, 2**64, 1e308, -1e308, 5e-324, int("9" * 500))
TIME_LEFT = ("-5s", "-1e9s", "1e400s", "9" * 400 + "s", "s", "5", "5ms", "NaNs", "-0s", "0.000000001s",
             "\u0665s", " 5s ", "5.s", "")
BAD_B64 = ("!!!", "a", "abc", "====", "\u00e9\u00e9", "AAA=AAA=", "-_-_", "\x00", "A" * 4097 + "=")


def snake(key: str) -> str:
    return _CAMEL_PART.sub(lambda m: "_" + m.group(1).lower(), key)


def snake_case(msg: dict[str, Any]) -> dict[str, Any]:
    """Nested keys in snake_case, which the SDK's pydantic models accept too. The top-level keys stay
    camelCase: the SDK maps only those, so a snake_case top level is an unknown-keys message."""

    def conv(v: Any, opaque: bool = False) -> Any:
        if isinstance(v, dict):
            return {k if opaque else snake(k): conv(x, opaque or k == "args") for k, x in v.items()}
        if isinstance(v, list):
            return [conv(x, opaque) for x in v]
        return v

    return {k: conv(v) for k, v in msg.items()}


def _positions(tree: Tree) -> list[tuple[Any, Any]]:
    """Every (container, key-or-index) in the tree, the top level included."""
    out: list[tuple[Any, Any]] = []
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for k, v in node.items():
                out.append((node, k))
                stack.append(v)
        elif isinstance(node, list):
            for i, v in enumerate(node):
                out.append((node, i))
                stack.append(v)
    return out


def _containers(tree: Tree) -> list[Any]:
    return [tree] + [c[k] for c, k in _positions(tree) if isinstance(c[k], dict | list)]


scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20), st.sampled_from(HUGE), st.sampled_from(ODD_TEXT),
)
wrong_type = st.one_of(scalars, st.lists(scalars, max_size=3), st.just({}), st.just([]),
                       st.dictionaries(st.text(max_size=5), scalars, max_size=3))


@st.composite
def mutate(draw: st.DrawFn, msg: dict[str, Any]) -> Tree:
    """One mutation of a message tree (returns the new tree; the input is not changed)."""
    tree: Tree = copy.deepcopy(msg)
    kind = draw(st.sampled_from(("drop", "type", "huge", "time_left", "b64", "unicode", "unknown", "empty",
                                 "deep", "dup", "duplicate_item")))
    pos = _positions(tree)
    if kind == "time_left":
        tree.setdefault("goAway", {})
        if isinstance(tree["goAway"], dict):
            tree["goAway"][draw(st.sampled_from(("timeLeft", "time_left")))] = draw(
                st.one_of(st.sampled_from(TIME_LEFT), scalars))
        return tree
    if kind == "b64":
        blobs = [c[k] for c, k in pos if isinstance(c[k], dict) and ("data" in c[k])]
        if blobs:
            draw(st.sampled_from(blobs))["data"] = draw(st.one_of(st.sampled_from(BAD_B64), st.text(max_size=9)))
            return tree
        kind = "unicode"
    if kind == "unknown":
        target = draw(st.sampled_from([c for c in _containers(tree) if isinstance(c, dict)]))
        # "x" keeps clear of every real key, including "code", which the SDK reads as an error status.
        target["x" + draw(st.text(max_size=8))] = draw(wrong_type)
        return tree
    if not pos:
        return {"x": draw(wrong_type)} if kind != "drop" else tree
    container, key = draw(st.sampled_from(pos))
    if kind == "drop":
        del container[key]
    elif kind == "type":
        container[key] = draw(wrong_type)
    elif kind == "huge":
        container[key] = draw(st.sampled_from(HUGE))
    elif kind == "unicode":
        strings = [(c, k) for c, k in pos if isinstance(c[k], str)]
        if strings:
            container, key = draw(st.sampled_from(strings))
        container[key] = draw(st.one_of(st.sampled_from(ODD_TEXT), st.text(min_size=1, max_size=30)))
    elif kind == "empty":
        container[key] = {} if isinstance(container[key], dict) or draw(st.booleans()) else []
    elif kind == "deep":
        container[key] = DEEP
    elif kind == "dup" and isinstance(container, dict):
        container[DUP + str(key)] = draw(wrong_type)
    else:  # duplicate a list item or a whole subtree
        value = copy.deepcopy(container[key])
        if isinstance(container, list):
            container.insert(key, value)
        else:
            container[key] = [value, value]
    return tree


@st.composite
def server_message(draw: st.DrawFn) -> dict[str, Any]:
    msg = copy.deepcopy(draw(st.sampled_from(VALID)))
    return snake_case(msg) if draw(st.booleans()) else msg


@st.composite
def encode(draw: st.DrawFn, tree: Tree) -> Frame:
    """Serialise like a server would, or nearly: text or binary frame, maybe cut short."""
    text = json.dumps(tree, ensure_ascii=draw(st.booleans()))
    if DEEP in text:
        depth = draw(st.sampled_from((64, 900, 5000, 100_000)))
        opener, closer = draw(st.sampled_from((("[", "]"), ('{"a":', "}"))))
        text = text.replace(json.dumps(DEEP), opener * depth + "1" + closer * depth)
    if DUP in text:
        text = text.replace(DUP, "")
    raw = text.encode("utf-8", "surrogatepass")
    if draw(st.integers(0, 5)) == 0:
        raw = raw[: draw(st.integers(0, max(0, len(raw) - 1)))]
    if draw(st.booleans()):
        return raw
    return raw.decode("utf-8", "surrogatepass") if _utf8(raw) else raw


def _utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8", "surrogatepass")
    except UnicodeDecodeError:
        return False
    return True


@st.composite
def mutated_frame(draw: st.DrawFn) -> Frame:
    tree: Tree = draw(server_message())
    for _ in range(draw(st.integers(1, 3))):
        tree = draw(mutate(tree))
    return draw(encode(tree))


garbage_frame = st.one_of(
    st.binary(max_size=64),
    st.text(max_size=64),
    st.sampled_from((b"", "", "null", "[]", "5", '"s"', "{}", "true", "NaN", b"\xff\xfe", "\ud800")),
)

# A few frames: mostly mutated messages, now and then a valid one or plain garbage among them.
frames = st.lists(
    st.one_of(mutated_frame(), mutated_frame(), garbage_frame, server_message().map(json.dumps)),
    min_size=1, max_size=3,
)
