"""Scripted behaviour follows the user's words and the tools the client declared, not the turn
number (issue 14 §1): a rule picks the answer, an undeclared tool is never called, no turn is
silent, goAway and resumption do not change that, and search grounding reaches the SDK."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from google.genai import types
from speakerd_workshop.emulator import EmulatorThread, Fault, Scenario, ScenarioError
from speakerd_workshop.emulator.answer import FILLER, decide

from tests.conftest import ROOT
from tests.emulator.conftest import MODEL, client, collect_turn, config, quiet, send_pcm, speech

DEFAULT = Scenario.load(ROOT / "workshop" / "speakerd_workshop" / "emulator" / "scenarios" / "default.toml")
VOLUME = types.FunctionDeclaration(
    name="set_volume", description="set the volume", behavior=types.Behavior.BLOCKING,
    parameters=types.Schema(type=types.Type.OBJECT, properties={"level": types.Schema(type=types.Type.INTEGER)}))
SEARCH = types.Tool(google_search=types.GoogleSearch())


def test_words_pick_the_rule_on_any_turn() -> None:
    for index in (0, 7):
        a = decide(DEFAULT, "Set the volume to 5, please", None, index, {"set_volume"}, False)
        assert [(c.name, c.args) for c in a.calls] == [("set_volume", {"level": 5})]
    a = decide(DEFAULT, "set the volume to 5", None, 0, {"current_time"}, False)
    assert a.calls == () and a.undeclared == ("set_volume",)
    assert a.turn.reply_text == "I can't change the volume from here."  # spoken, not silent


def test_rule_by_keyword_regex_and_default() -> None:
    sc = Scenario.from_dict({"default_reply": "Pardon?", "rules": [
        {"when": ["lights"], "reply_text": "Lights {room}."},
        {"match": r"lights in the (?P<room>\w+)", "reply_text": "Lights in the {room}.",
         "tool_calls": [{"name": "lights", "args": {"room": "{room}", "on": True}}]},
    ]})
    a = decide(sc, "turn on the lights in the kitchen", None, 0, {"lights"}, False)
    assert a.turn.reply_text == "Lights {room}."  # first match wins: keyword rule, no groups
    sc2 = Scenario(rules=sc.rules[::-1], default_reply="Pardon?")
    a = decide(sc2, "turn on the lights in the kitchen", None, 0, {"lights"}, False)
    assert a.turn.reply_text == "Lights in the kitchen." and a.calls[0].args == {"room": "kitchen", "on": True}
    assert decide(sc, "delight", None, 0, set(), False).turn.reply_text == "Pardon?"  # whole words only


def test_search_grounding_only_when_declared_and_fresh() -> None:
    assert decide(DEFAULT, "what's the weather today", None, 0, set(), True).grounding is not None
    a = decide(DEFAULT, "what's the weather today", None, 0, set(), False)
    assert a.grounding is None and "without Google Search" in a.turn.reply_text
    sc = Scenario(default_reply="Fine.")
    assert decide(sc, "any news today", None, 0, set(), True).grounding is not None  # fresh words
    assert decide(sc, "tell me a joke", None, 0, set(), True).grounding is None


def test_scenario_rules_parse_errors(tmp_path: Path) -> None:
    for text, needle in [
        ("[[rules]]\nreply_text = 'x'\n", "needs 'when' or 'match'"),
        ("[[rules]]\nmatch = '('\n", "not a valid regular expression"),
        ("[[rules]]\nwhen = 3\n", "when: must be a word or a list of words"),
        ("[[rules]]\nwhen = 'x'\nsearch = 'yes'\n", "search: must be true or false"),
        ("hears = 'x'\n", "hears: must be a list of strings"),
        ("[[rules]]\nwhen = 'x'\nuser_transcript = 'y'\n", "unknown key 'user_transcript'"),
    ]:
        p = tmp_path / "s.toml"
        p.write_text(text)
        with pytest.raises(ScenarioError, match=needle):
            Scenario.load(p)


@pytest.fixture
def default_emu(cert_dir: Path) -> Any:
    with EmulatorThread(None, cert_dir=cert_dir, pace=8.0, go_away_before_seconds=1.0) as e:
        yield e


async def test_set_volume_on_turn_one_by_text(default_emu: EmulatorThread) -> None:
    cfg = config(tools=[types.Tool(function_declarations=[VOLUME])])
    async with client(default_emu).aio.live.connect(model=MODEL, config=cfg) as s:
        await s.send_realtime_input(text="set the volume to 5")
        first = await collect_turn(s, until="tool_call")
        (call,) = first.tool_calls
        assert (call.name, call.args) == ("set_volume", {"level": 5})
        await s.send_tool_response(function_responses=[
            types.FunctionResponse(id=call.id, name=call.name, response={"result": "5"})])
        turn = await collect_turn(s)
    assert turn.output_text == "Volume is now 5." and turn.audio


async def test_spoken_turn_heard_from_the_script(cert_dir: Path) -> None:
    sc = Scenario.from_dict({"hears": ["set the volume to 5"], "rules": DEFAULT_RULES})
    with EmulatorThread(sc, cert_dir=cert_dir, pace=8.0) as emu:
        cfg = config(tools=[types.Tool(function_declarations=[VOLUME])])
        async with client(emu).aio.live.connect(model=MODEL, config=cfg) as s:
            await send_pcm(s, speech("set the volume to 5") + quiet(0.6))
            first = await collect_turn(s, until="tool_call")
    assert first.input_text == "set the volume to 5"
    assert [(c.name, c.args) for c in first.tool_calls] == [("set_volume", {"level": 5})]


DEFAULT_RULES = [{"match": r"volume\D*(?P<level>\d+)", "after_tool_text": "Volume is now {result}.",
                  "tool_calls": [{"name": "set_volume", "args": {"level": "{level}"}}]}]


async def test_no_silent_turn_across_go_away_and_resumption(cert_dir: Path) -> None:
    """The old built-in script: a current_time call on turn two, set_volume on turn three; the
    client declares only set_volume and moves to a resumed connection after a goAway."""
    legacy = Scenario.from_dict({"default_user_transcript": "hello", "turns": [
        {"user_transcript": "hello", "reply_text": "Hello!"},
        {"user_transcript": "what time is it", "after_tool_text": "It is {result}.",
         "tool_calls": [{"name": "current_time"}]},
        {"user_transcript": "turn the volume down", "reply_text": "Sure.", "after_tool_text": "Now {result}.",
         "tool_calls": [{"name": "set_volume", "args": {"level": 40}}]},
    ]})
    cfg = config(tools=[types.Tool(function_declarations=[VOLUME])])
    with EmulatorThread(legacy, cert_dir=cert_dir, pace=8.0, go_away_before_seconds=1.0) as emu:
        c = client(emu)
        async with c.aio.live.connect(model=MODEL, config=cfg) as s:
            await send_pcm(s, speech("hello") + quiet(0.6))
            one = await collect_turn(s)
            handle = None
            await asyncio.to_thread(emu.inject, Fault("go_away", target="current", during="now"))
            while True:  # read to the goAway, keeping the newest handle
                m = await anext(aiter(s.receive()))
                if m.session_resumption_update and m.session_resumption_update.new_handle:
                    handle = m.session_resumption_update.new_handle
                if m.go_away:
                    break
        assert handle
        resumed = config(tools=[types.Tool(function_declarations=[VOLUME])],
                         session_resumption=types.SessionResumptionConfig(handle=handle))
        async with c.aio.live.connect(model=MODEL, config=resumed) as s:
            await send_pcm(s, speech("what time is it") + quiet(0.6))
            two = await collect_turn(s)
            await send_pcm(s, speech("turn the volume down") + quiet(0.6))
            three = await collect_turn(s, until="tool_call")
    assert one.audio and one.output_text == "Hello!"
    assert two.audio and two.tool_calls == [] and two.output_text  # current_time never declared
    assert [c.name for c in three.tool_calls] == ["set_volume"]
    assert emu.connections[1].resumed_handle == handle


async def test_non_blocking_call_without_words_says_a_filler(cert_dir: Path) -> None:
    sc = Scenario.from_dict({"rules": [{"when": "look", "after_tool_text": "I see {result}.",
                                        "tool_calls": [{"name": "look"}]}]})
    look = types.FunctionDeclaration(name="look", description="camera", behavior=types.Behavior.NON_BLOCKING)
    with EmulatorThread(sc, cert_dir=cert_dir, pace=8.0) as emu:
        async with client(emu).aio.live.connect(model=MODEL, config=config(
                tools=[types.Tool(function_declarations=[look])])) as s:
            await s.send_realtime_input(text="take a look")
            now = await collect_turn(s)
    assert now.tool_calls and now.audio and now.output_text == FILLER


async def test_grounding_metadata_parsed_by_the_sdk(default_emu: EmulatorThread) -> None:
    async with client(default_emu).aio.live.connect(model=MODEL, config=config(tools=[SEARCH])) as s:
        await s.send_realtime_input(text="what's the weather today")
        turn = await collect_turn(s)
    (gm,) = [m.server_content.grounding_metadata for m in turn.messages
             if m.server_content and m.server_content.grounding_metadata]
    assert gm.web_search_queries == ["what's the weather today"]
    assert gm.grounding_chunks and all(c.web and c.web.uri and c.web.title for c in gm.grounding_chunks)
    assert gm.grounding_supports and gm.grounding_supports[0].segment
    assert turn.output_text.startswith("According to the web")


async def test_blocking_call_without_words_still_speaks(cert_dir: Path) -> None:
    sc = Scenario.from_dict({"rules": [{"when": "volume", "tool_calls": [{"name": "set_volume"}]}]})
    with EmulatorThread(sc, cert_dir=cert_dir, pace=8.0) as emu:
        async with client(emu).aio.live.connect(model=MODEL, config=config(
                tools=[types.Tool(function_declarations=[VOLUME])])) as s:
            await s.send_realtime_input(text="volume up")
            call = (await collect_turn(s, until="tool_call")).tool_calls[0]
            await s.send_tool_response(function_responses=[
                types.FunctionResponse(id=call.id, name=call.name, response={"result": "ok"})])
            after = await collect_turn(s)
    assert after.audio and after.output_text == "Done."
