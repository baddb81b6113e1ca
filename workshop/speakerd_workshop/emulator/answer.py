"""Deciding one model turn from the user's words and the client's declarations (pure, no I/O).

Why apart from the engine: what the model says is the part scenario authors reason about; it can
be tested without a socket, and the engine only acts it out.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import quote_plus

from speakerd_workshop.emulator.scenario import Scenario, Source, ToolCallSpec, Turn
from speakerd_workshop.emulator.wire import Json

FILLER = "One moment."  # said while a non-blocking call runs when the script gives no words
DONE = "Done."  # said after a blocking call's result when the script gives no words


@dataclass(frozen=True)
class Answer:
    """``turn`` with its placeholders filled; ``calls``: the tool calls to make (declared only)."""

    words: str
    turn: Turn
    calls: tuple[ToolCallSpec, ...]
    undeclared: tuple[str, ...]  # tools the script wanted that the client did not declare
    grounding: Json | None


def decide(
    scenario: Scenario,
    words: str,
    exchange: Turn | None,
    turn_index: int,
    declared: set[str],
    search_declared: bool,
) -> Answer:
    """What the model does for a user turn that said ``words``.

    ``exchange``: the legacy scripted exchange the words came from, which answers for itself;
    ``turn_index``: this user turn's place in the session, for legacy scripts whose words match
    nothing.
    A tool the client did not declare is never called; the turn is never silent.
    """
    groups: dict[str, str] = {}
    if exchange is not None:
        turn = exchange
    else:
        turn, groups = scenario.answer(words, turn_index)
    calls = tuple(_fill_call(c, groups) for c in turn.tool_calls if c.name in declared)
    undeclared = tuple(c.name for c in turn.tool_calls if c.name not in declared)
    search = search_declared and scenario.needs_search(turn, words)
    missing = (turn.tool_calls and not calls) or (turn.search is True and not search_declared)
    if missing:
        reply = turn.otherwise or turn.reply_text or scenario.default_reply
        turn = replace(turn, reply_text=reply, reply_audio=turn.reply_audio if not turn.otherwise else None)
    elif not calls and not turn.reply_text and turn.reply_audio is None:
        turn = replace(turn, reply_text=turn.after_tool_text.replace("{result}", "").strip() or scenario.default_reply)
    turn = replace(
        turn,
        reply_text=_fill(turn.reply_text, groups),
        after_tool_text=_fill(turn.after_tool_text, groups),
        tool_calls=calls,
    )
    grounding = grounding_metadata(words, turn.reply_text, turn.sources) if search and not missing else None
    return Answer(words, turn, calls, undeclared, grounding)


def _fill(text: str, groups: dict[str, str]) -> str:
    for k, v in groups.items():
        text = text.replace("{" + k + "}", v)
    return text


def _fill_call(spec: ToolCallSpec, groups: dict[str, str]) -> ToolCallSpec:
    if not groups:
        return spec
    return replace(spec, args={k: _fill_value(v, groups) for k, v in spec.args.items()})


def _fill_value(value: Any, groups: dict[str, str]) -> Any:
    if isinstance(value, str):
        filled = _fill(value, groups)
        whole = re.fullmatch(r"\{(\w+)\}", value)
        if whole and whole.group(1) in groups and re.fullmatch(r"-?\d+", filled):
            return int(filled)
        return filled
    if isinstance(value, dict):
        return {k: _fill_value(v, groups) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill_value(v, groups) for v in value]
    return value


def default_sources(words: str) -> tuple[Source, ...]:
    """Made-up web sources for ``words``, shaped like the service's grounding redirects."""
    digest = hashlib.sha256(words.encode()).hexdigest()[:24]
    query = quote_plus(words)
    return (
        Source(f"https://vertexaisearch.cloud.google.com/grounding-api-redirect/emu-{digest}", "example.com"),
        Source(f"https://www.example.org/search?q={query}", "example.org"),
    )


def grounding_metadata(words: str, reply: str, sources: tuple[Source, ...]) -> Json:
    """``serverContent.groundingMetadata`` as the service sends it (camelCase, proto3 JSON)."""
    cited = sources or default_sources(words)
    return {
        "webSearchQueries": [words],
        "searchEntryPoint": {"renderedContent": f'<div class="emulator-search">{_html(words)}</div>'},
        "groundingChunks": [{"web": {"uri": s.uri, "title": s.title}} for s in cited],
        "groundingSupports": [
            {
                "segment": {"startIndex": 0, "endIndex": len(reply.encode()), "text": reply},
                "groundingChunkIndices": list(range(len(cited))),
                "confidenceScores": [0.9] * len(cited),
            }
        ],
    }


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
