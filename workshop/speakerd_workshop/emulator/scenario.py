"""Scripted conversations: what the emulated model "hears" and how it answers.

Behaviour follows the user's words and the tools the client declared, never the turn number
alone. The emulator has no speech recogniser, so the words of a *spoken* turn come from the script
(``hears``, or the legacy ``turns[].user_transcript`` in order); a text turn's words are its text.
The words then pick the first matching rule (see docs/emulator.md for the file format).
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_REPLY = "I'm the local emulator. I don't have anything else to say."
# Words that make a turn need fresh facts, so a declared googleSearch tool grounds the answer.
FRESH_WORDS = ("weather", "forecast", "news", "today", "tonight", "score", "latest", "price", "stock")


class ScenarioError(ValueError):
    """A scenario file that cannot be used; the message is one line naming file and field."""


@dataclass(frozen=True)
class ToolCallSpec:
    """A function call the model makes. ``non_blocking`` None follows the declaration and model.
    String values in ``args`` may hold ``{name}`` placeholders filled from the rule's regex groups;
    a value that is only a placeholder of digits becomes a number."""

    name: str
    args: dict[str, Any] = field(default_factory=dict)
    non_blocking: bool | None = None


@dataclass(frozen=True)
class Source:
    """A web source a grounded answer cites (``groundingChunks[].web``)."""

    uri: str
    title: str


@dataclass(frozen=True)
class Turn:
    """One answer. With tool calls: a blocking call is answered, then ``after_tool_text`` (or
    ``reply_text``) is spoken with ``{result}`` filled in; a non-blocking call speaks ``reply_text`` at
    once and ``after_tool_text`` when the result arrives (per its ``scheduling``). When none of the
    tools is declared by the client, ``otherwise`` (or ``reply_text``, or the default reply) is
    spoken instead: a turn is never silent.
    ``{frames}`` in any text becomes the number of video frames received since the last text that
    used it (for a ``look`` tool call: the frames sent before its response).
    ``search``: True grounds the answer when googleSearch is declared, False never, None when the
    words hold a fresh-facts word; ``sources`` are the web sources cited (default: made up)."""

    user_transcript: str = ""
    reply_text: str = ""
    reply_audio: Path | None = None
    tool_calls: tuple[ToolCallSpec, ...] = ()
    after_tool_text: str = ""
    otherwise: str = ""
    search: bool | None = None
    sources: tuple[Source, ...] = ()


@dataclass(frozen=True)
class Rule:
    """When the user's words contain any of ``when`` (whole words, any case) or match ``match``
    (a regex, searched, any case), answer with ``turn``."""

    turn: Turn
    when: tuple[str, ...] = ()
    match: re.Pattern[str] | None = None

    def groups(self, words: str) -> dict[str, str] | None:
        """The named groups when the rule matches ``words`` ({} without a regex), else None."""
        if self.match is not None:
            m = self.match.search(words)
            if m is not None:
                return {k: v for k, v in m.groupdict().items() if v is not None}
        norm = normalise_words(words)
        for phrase in self.when:
            if re.search(rf"(?<!\w){re.escape(normalise_words(phrase))}(?!\w)", norm):
                return {}
        return None


@dataclass(frozen=True)
class Scenario:
    turns: tuple[Turn, ...] = ()  # legacy: exchanges in order (their transcripts are heard in order)
    default_reply: str = DEFAULT_REPLY
    default_user_transcript: str = ""
    hears: tuple[str, ...] = ()  # what successive spoken turns say
    rules: tuple[Rule, ...] = ()
    fresh_words: tuple[str, ...] = FRESH_WORDS

    def turn(self, index: int) -> Turn:
        """The legacy exchange at ``index``, or the default one."""
        if index < len(self.turns):
            return self.turns[index]
        return Turn(user_transcript=self.default_user_transcript, reply_text=self.default_reply)

    def heard(self, spoken_index: int, turn_index: int) -> tuple[str, Turn | None]:
        """What a spoken turn said: ``hears`` by spoken turns, else the legacy exchange by turns.

        The exchange is returned too when the words came from one: its answer is the script's.
        """
        if self.hears:
            if spoken_index < len(self.hears):
                return self.hears[spoken_index], None
            return self.default_user_transcript, None
        if turn_index < len(self.turns):
            return self.turns[turn_index].user_transcript, self.turns[turn_index]
        return self.default_user_transcript, None

    def answer(self, words: str, turn_index: int) -> tuple[Turn, dict[str, str]]:
        """The answer to ``words``: the legacy exchange with exactly these words, else the first
        matching rule (with its regex groups), else (legacy scripts) the exchange at this turn,
        else the default reply."""
        norm = normalise_words(words)
        for t in self.turns:
            if t.user_transcript and normalise_words(t.user_transcript) == norm:
                return t, {}
        for rule in self.rules:
            groups = rule.groups(words)
            if groups is not None:
                return rule.turn, groups
        if turn_index < len(self.turns):
            return self.turns[turn_index], {}
        return Turn(user_transcript=words, reply_text=self.default_reply), {}

    def needs_search(self, turn: Turn, words: str) -> bool:
        if turn.search is not None:
            return turn.search
        norm = normalise_words(words)
        return any(re.search(rf"(?<!\w){re.escape(w.lower())}(?!\w)", norm) for w in self.fresh_words)

    @classmethod
    def load(cls, path: Path | str) -> Scenario:
        """Read a TOML or JSON scenario; relative ``reply_audio`` paths are relative to the file."""
        p = Path(path)
        try:
            raw = p.read_bytes()
        except OSError as e:
            raise ScenarioError(f"{p}: cannot read scenario ({e.strerror or e})") from e
        try:
            data = json.loads(raw) if p.suffix.lower() == ".json" else tomllib.loads(raw.decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as e:
            raise ScenarioError(
                f"{p}: not valid {'JSON' if p.suffix.lower() == '.json' else 'TOML'}: "
                f"{str(e).splitlines()[0]}"
            ) from e
        return cls.from_dict(data, source=p)

    @classmethod
    def from_dict(cls, data: Any, source: Path | None = None) -> Scenario:
        where = f"{source}: " if source else ""
        base = source.parent if source else Path.cwd()
        if not isinstance(data, dict):
            raise ScenarioError(f"{where}a scenario is a table with 'rules' or 'turns'")
        top = where.rstrip(": ") or "scenario"
        _only(data, {"turns", "rules", "hears", "default_reply", "default_user_transcript", "fresh_words"}, top)
        turns = tuple(
            _turn(t, f"{where}turns[{i}]", base, legacy=True)
            for i, t in enumerate(_list(data.get("turns", []), f"{where}turns"))
        )
        rules: list[Rule] = []
        for i, r in enumerate(_list(data.get("rules", []), f"{where}rules")):
            at = f"{where}rules[{i}]"
            if not isinstance(r, dict):
                raise ScenarioError(f"{at}: a rule is a table")
            when = r.get("when", [])
            when = [when] if isinstance(when, str) else when
            if not isinstance(when, list) or not all(isinstance(w, str) and w.strip() for w in when):
                raise ScenarioError(f"{at}.when: must be a word or a list of words")
            pattern = None
            if "match" in r:
                try:
                    pattern = re.compile(_str(r, "match", at, required=True), re.IGNORECASE)
                except re.error as e:
                    raise ScenarioError(f"{at}.match: not a valid regular expression ({e})") from e
            if not when and pattern is None:
                raise ScenarioError(f"{at}: needs 'when' or 'match'")
            rule_turn = _turn({k: v for k, v in r.items() if k not in ("when", "match")}, at, base)
            rules.append(Rule(rule_turn, tuple(when), pattern))
        fresh = data.get("fresh_words", list(FRESH_WORDS))
        hears = data.get("hears", [])
        for key, value in (("fresh_words", fresh), ("hears", hears)):
            if not isinstance(value, list) or not all(isinstance(w, str) for w in value):
                raise ScenarioError(f"{where}{key}: must be a list of strings")
        return cls(
            turns=turns,
            default_reply=_str(data, "default_reply", where or "scenario") or DEFAULT_REPLY,
            default_user_transcript=_str(data, "default_user_transcript", where or "scenario"),
            hears=tuple(hears),
            rules=tuple(rules),
            fresh_words=tuple(fresh),
        )


def normalise_words(text: str) -> str:
    """Lower case, punctuation to spaces, single spaces: how words are compared."""
    return " ".join(re.sub(r"[^\w']+", " ", text.lower()).split())


_TURN_KEYS = {"reply_text", "reply_audio", "tool_calls", "after_tool_text", "otherwise", "search", "sources"}


def _turn(t: Any, at: str, base: Path, legacy: bool = False) -> Turn:
    if not isinstance(t, dict):
        raise ScenarioError(f"{at}: a {'turn' if legacy else 'rule'} is a table")
    _only(t, _TURN_KEYS | ({"user_transcript"} if legacy else set()), at)
    calls: list[ToolCallSpec] = []
    for j, c in enumerate(_list(t.get("tool_calls", []), f"{at}.tool_calls")):
        ct = f"{at}.tool_calls[{j}]"
        if not isinstance(c, dict):
            raise ScenarioError(f"{ct}: a tool call is a table")
        _only(c, {"name", "args", "non_blocking"}, ct)
        args = c.get("args", {})
        nb = c.get("non_blocking")
        if not isinstance(args, dict) or (nb is not None and not isinstance(nb, bool)):
            raise ScenarioError(f"{ct}: args must be a table and non_blocking true or false")
        calls.append(ToolCallSpec(_str(c, "name", ct, required=True), dict(args), nb))
    audio = t.get("reply_audio")
    if audio is not None and not isinstance(audio, str):
        raise ScenarioError(f"{at}.reply_audio: must be a path string")
    search = t.get("search")
    if search is not None and not isinstance(search, bool):
        raise ScenarioError(f"{at}.search: must be true or false")
    sources: list[Source] = []
    for j, s in enumerate(_list(t.get("sources", []), f"{at}.sources")):
        if not isinstance(s, dict):
            raise ScenarioError(f"{at}.sources[{j}]: a source is a table with uri and title")
        _only(s, {"uri", "title"}, f"{at}.sources[{j}]")
        sources.append(Source(_str(s, "uri", f"{at}.sources[{j}]", required=True), _str(s, "title", at)))
    return Turn(
        user_transcript=_str(t, "user_transcript", at),
        reply_text=_str(t, "reply_text", at),
        reply_audio=(base / audio) if audio else None,
        tool_calls=tuple(calls),
        after_tool_text=_str(t, "after_tool_text", at),
        otherwise=_str(t, "otherwise", at),
        search=search,
        sources=tuple(sources),
    )


def _only(d: dict[str, Any], allowed: set[str], at: str) -> None:
    extra = sorted(set(d) - allowed)
    if extra:
        raise ScenarioError(f"{at}: unknown key {extra[0]!r} (allowed: {', '.join(sorted(allowed))})")


def _list(v: Any, at: str) -> list[Any]:
    if not isinstance(v, list):
        raise ScenarioError(f"{at}: must be a list")
    return v


def _str(d: dict[str, Any], key: str, at: str, required: bool = False) -> str:
    v = d.get(key, "")
    if not isinstance(v, str) or (required and not v):
        raise ScenarioError(f"{at}.{key}: must be a {'non-empty ' if required else ''}string")
    return v
