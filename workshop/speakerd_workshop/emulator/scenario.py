"""Scripted conversations: what the emulated model "hears" and answers, turn by turn."""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_REPLY = "I'm the local emulator. I don't have anything else to say."


class ScenarioError(ValueError):
    """A scenario file that cannot be used; the message is one line naming file and field."""


@dataclass(frozen=True)
class ToolCallSpec:
    """A function call the model makes. ``non_blocking`` None follows the declaration and model."""

    name: str
    args: dict[str, Any] = field(default_factory=dict)
    non_blocking: bool | None = None


@dataclass(frozen=True)
class Turn:
    """One exchange. With tool calls: a blocking call is answered, then ``after_tool_text`` (or
    ``reply_text``) is spoken with ``{result}`` filled in; a non-blocking call speaks ``reply_text`` at
    once and ``after_tool_text`` when the result arrives (per its ``scheduling``).
    ``{frames}`` in any text becomes the number of video frames received since the last text that
    used it (for a ``look`` tool call: the frames sent before its response)."""

    user_transcript: str = ""
    reply_text: str = ""
    reply_audio: Path | None = None
    tool_calls: tuple[ToolCallSpec, ...] = ()
    after_tool_text: str = ""


@dataclass(frozen=True)
class Scenario:
    turns: tuple[Turn, ...] = ()
    default_reply: str = DEFAULT_REPLY
    default_user_transcript: str = ""

    def turn(self, index: int) -> Turn:
        if index < len(self.turns):
            return self.turns[index]
        return Turn(user_transcript=self.default_user_transcript, reply_text=self.default_reply)

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
            raise ScenarioError(f"{where}a scenario is a table with 'turns'")
        _only(data, {"turns", "default_reply", "default_user_transcript"}, where.rstrip(": ") or "scenario")
        turns: list[Turn] = []
        for i, t in enumerate(_list(data.get("turns", []), f"{where}turns")):
            at = f"{where}turns[{i}]"
            if not isinstance(t, dict):
                raise ScenarioError(f"{at}: a turn is a table")
            _only(t, {"user_transcript", "reply_text", "reply_audio", "tool_calls", "after_tool_text"}, at)
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
            turns.append(
                Turn(
                    user_transcript=_str(t, "user_transcript", at),
                    reply_text=_str(t, "reply_text", at),
                    reply_audio=(base / audio) if audio else None,
                    tool_calls=tuple(calls),
                    after_tool_text=_str(t, "after_tool_text", at),
                )
            )
        return cls(
            turns=tuple(turns),
            default_reply=_str(data, "default_reply", where or "scenario") or DEFAULT_REPLY,
            default_user_transcript=_str(data, "default_user_transcript", where or "scenario"),
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
