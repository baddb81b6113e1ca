"""Bad server input: the emulator sends mutated Live API messages to the real LiveSession (real SDK,
real TLS). Every example must end in a defined outcome: the frames are handled (an event, a log line
or nothing) or the connection is treated as broken and the session reconnects; either way a normal
turn is answered afterwards. Never a traceback, a failed task, a fatal stop or a hang.

Quick and seeded by default (90 examples); SPEAKERD_SOAK=1 runs 1100 unseeded ones;
SPEAKERD_FUZZ_SCALE multiplies either count.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pytest
from hypothesis import HealthCheck, Phase, event, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr
from speakerd_workshop.emulator import EmulatorThread, Fault, Scenario

from speakerd import config
from speakerd.events import ReplyAudio, SessionState, Transcript
from speakerd.live import LiveSession, ResumptionStore, ToolRegistry
from tests.reliability import fuzz_messages as fm
from tests.reliability.harness import opt_in
from tests.support import until

KEY = "test-key-fuzz"
REPLY = "The fuzzing answer is here."
SCENARIO = Scenario(default_reply=REPLY)
EXAMPLE_SECONDS = 15.0  # a defined outcome comes long before this; reaching it fails the example
SOAK = opt_in("SPEAKERD_SOAK")

# The SDK warns (warnings.warn, not logging) about enum values it does not know; that is its handling.
pytestmark = pytest.mark.filterwarnings("ignore:.* is not a valid :UserWarning")


def _examples(quick: int, soak: int) -> int:
    scale = float(os.environ.get("SPEAKERD_FUZZ_SCALE", "1"))
    return max(1, int((soak if SOAK else quick) * scale))


def fuzz_settings(quick: int, soak: int) -> settings:
    return settings(
        max_examples=_examples(quick, soak),
        deadline=None,
        derandomize=not SOAK,  # CI: the same examples every run
        database=None,
        # Shrinking re-runs examples that may each take up to EXAMPLE_SECONDS; the example is printed.
        phases=(Phase.explicit, Phase.generate),
        suppress_health_check=(HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example),
    )


@pytest.fixture(scope="module")
def emu(cert_dir: Path) -> Iterator[EmulatorThread]:
    with EmulatorThread(SCENARIO, api_key=KEY, cert_dir=cert_dir, pace=8.0) as e:
        yield e


class Records(logging.Handler):
    """WARNING+ records from every logger while an example runs."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@dataclass
class Example:
    emu: EmulatorThread
    frames: list[fm.Frame]
    during: Literal["now", "reply", "setup"]
    events: list[Any] = field(default_factory=list)
    loop_errors: list[str] = field(default_factory=list)
    reconnected: bool = False

    def model_text(self) -> str:
        return "".join(e.text for e in self.events if isinstance(e, Transcript) and e.role == "model")

    def phases(self) -> list[str]:
        return [e.phase for e in self.events if isinstance(e, SessionState)]

    async def wait(self, pred: Any, what: str) -> None:
        """Wait for what the session reports by callback; a failed session ends the wait at once."""

        def seen() -> bool:
            if pred():
                return True
            if "failed" in self.phases():
                failed = next(e for e in self.events if isinstance(e, SessionState) and e.phase == "failed")
                raise AssertionError(f"the session failed while waiting for {what}: {failed.detail}")
            return False

        await until(seen, what, timeout=EXAMPLE_SECONDS, interval=0.01)


async def _noop(**_: Any) -> dict[str, Any]:
    return {"ok": True}


def _session(emu: EmulatorThread, state: Path, on_event: Any) -> LiveSession:
    settings_ = config.Settings(
        live=config.LiveSettings(endpoint=emu.base_url, ca_file=emu.ca_file,
                                 vad=config.VadSettings(silence_duration_ms=300),
                                 reconnect_max_seconds=0.5, connect_timeout_seconds=3.0),
        state=config.StateSettings(directory=state),
    )
    cfg = config.Config(settings=settings_, path=state / "speakerd.toml", api_key=SecretStr(KEY),
                        api_key_source="test")
    tools = ToolRegistry(settings_.tools, {"set_volume": _noop, "end_conversation": _noop})
    return LiveSession(cfg, on_event, store=ResumptionStore(state, settings_.live.model), tools=tools)


async def _example(ex: Example, state: Path) -> None:
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _l, ctx: ex.loop_errors.append(
        f"{ctx.get('message')}: {ctx.get('exception')!r}"))
    outer = asyncio.all_tasks()
    emu = ex.emu
    first = len(emu.connections) + 1
    session = _session(emu, state, ex.events.append)
    fault = Fault("raw", frames=tuple(ex.frames), target="next" if ex.during != "now" else "current",
                  during=ex.during, after_chunks=1)
    if ex.during != "now":
        await asyncio.to_thread(emu.inject, fault)
    try:
        await session.open()
        if ex.during == "now":
            await asyncio.to_thread(emu.inject, fault)
        elif ex.during == "reply":
            session.send_text("tell me")
        sent = await asyncio.to_thread(emu.wait_for, lambda: _frames_out(emu, first) >= len(ex.frames), 10)
        assert sent
        # Whatever the frames did, the conversation goes on: a question now is answered.
        answered = ex.model_text().count(REPLY)
        session.send_text("and now?")
        await ex.wait(lambda: ex.model_text().count(REPLY) > answered and session.is_open, "the answer")
    finally:
        await session.close()
    ex.reconnected = len(emu.connections) > first
    for _ in range(3):
        await asyncio.sleep(0)
    left = [t for t in asyncio.all_tasks() if t not in outer and not t.done()]
    assert not left, f"tasks still running after close: {left}"


def _frames_out(emu: EmulatorThread, first: int) -> int:
    return sum(1 for e in emu.events if e.kind == "rawFrame" and e.connection >= first)


def run_example(emu: EmulatorThread, frames: list[fm.Frame], during: Literal["now", "reply", "setup"]) -> str:
    """Run one example and check its outcome; returns which defined outcome it was."""
    ex = Example(emu, frames, during)
    records = Records()
    root = logging.getLogger()
    root.addHandler(records)
    try:
        with tempfile.TemporaryDirectory(prefix="speakerd-fuzz-") as state:
            asyncio.run(asyncio.wait_for(_example(ex, Path(state)), EXAMPLE_SECONDS))
        gc.collect()  # a task that failed unseen reports when collected: "exception was never retrieved"
    except TimeoutError:
        raise AssertionError(f"no outcome within {EXAMPLE_SECONDS:g} s (a hang); phases {ex.phases()}, "
                             f"log {[r.getMessage() for r in records.records][-5:]}") from None
    finally:
        root.removeHandler(records)
    assert "failed" not in ex.phases()
    assert not ex.loop_errors, ex.loop_errors
    for r in records.records:
        text = r.getMessage()
        assert r.exc_info is None and r.exc_text is None, f"traceback logged for server input: {text}"
        assert "\n" not in text and "Traceback" not in text, f"log line is not one line: {text!r}"
    # A handful of lines per example at most: a flood means a reconnect or retry loop.
    assert len(records.records) <= 6, [r.getMessage() for r in records.records]
    return "reconnected" if ex.reconnected else "handled on the same connection"


@pytest.mark.slow
@fuzz_settings(quick=50, soak=600)
@given(frames=fm.frames)
def test_mutated_messages_mid_session(emu: EmulatorThread, frames: list[fm.Frame]) -> None:
    event(run_example(emu, frames, "now"))


@pytest.mark.slow
@fuzz_settings(quick=20, soak=250)
@given(frames=fm.frames)
def test_mutated_messages_mid_reply(emu: EmulatorThread, frames: list[fm.Frame]) -> None:
    event(run_example(emu, frames, "reply"))


@pytest.mark.slow
@fuzz_settings(quick=20, soak=250)
@given(frames=fm.frames)
def test_mutated_messages_instead_of_setup_complete(emu: EmulatorThread, frames: list[fm.Frame]) -> None:
    event(run_example(emu, frames, "setup"))


@pytest.mark.parametrize("frames", [
    [b"\xff\xfe\xfd"],  # not UTF-8
    ["[" * 100_000 + "]" * 100_000],  # deeper than the JSON parser goes
    ['{"serverContent": {"turnComplete": tru'],  # cut short
    ['{"goAway": {"timeLeft": "-5s"}}', '{"goAway": {"timeLeft": "' + "9" * 400 + 's"}}'],
    ['{"toolCall": {"functionCalls": [{"name": "set_volume", "args": {"level": 5}}]}}'],  # no id
    ['{"sessionResumptionUpdate": {"newHandle": 5, "resumable": "yes"}}'],
    ['{"serverContent": {"modelTurn": {"parts": [{"inlineData": {"data": "!!!"}}]}}}'],
    ["null", "[]", "{}", ""],
], ids=["not-utf8", "deep", "truncated", "go-away-odd-time", "tool-call-without-id", "bad-handle",
        "bad-base64", "non-objects"])
def test_known_bad_frames(emu: EmulatorThread, frames: list[fm.Frame]) -> None:
    """Named cases, so a regression shows by name even when the random search misses it."""
    run_example(emu, frames, "now")


@pytest.mark.slow
def test_strategies_produce_the_mutations() -> None:
    """The search space has what it claims: both frame types, cut and unparseable frames, odd values."""
    seen: list[fm.Frame] = []

    @settings(max_examples=300, database=None, derandomize=True, phases=(Phase.generate,),
              suppress_health_check=(HealthCheck.too_slow, HealthCheck.data_too_large))
    @given(st.lists(fm.mutated_frame(), min_size=1, max_size=1))
    def collect(frames: list[fm.Frame]) -> None:
        seen.extend(frames)

    collect()
    blobs = [f if isinstance(f, bytes) else f.encode("utf-8", "surrogatepass") for f in seen]
    assert any(isinstance(f, str) for f in seen) and any(isinstance(f, bytes) for f in seen)
    assert any(b"_" in b and b"server_content" not in b and b"model_turn" in b for b in blobs)  # snake_case
    assert any(b.count(b"[") > 500 for b in blobs)  # deep nesting
    assert any(b"timeLeft" in b and b"-" in b for b in blobs)
    unparseable = 0
    for b in blobs:
        try:
            json.loads(b)
        except (ValueError, RecursionError):
            unparseable += 1
    assert 0 < unparseable < len(blobs)


async def test_follow_up_asked_during_a_reply_survives_a_go_away(tmp_path: Path) -> None:
    """Found by the fuzz (two goAways mid-reply): the switch at the interrupted turn's turnComplete
    used to count the follow-up, sent while the model spoke, as covered by the next handle, so the
    resumed session never heard it and the conversation hung. Real time (pace 1) keeps the window wide."""
    with EmulatorThread(SCENARIO, api_key=KEY, cert_dir=tmp_path / "certs", pace=1.0) as emu:
        ex = Example(emu, [], "now")
        session = _session(emu, tmp_path / "state", ex.events.append)
        await session.open()
        session.send_text("tell me")
        await ex.wait(lambda: any(isinstance(e, ReplyAudio) for e in ex.events), "the reply")
        await asyncio.to_thread(emu.inject, Fault("raw", frames=('{"goAway": {"timeLeft": "50s"}}',),
                                                  target="current", during="now"))
        await asyncio.to_thread(emu.wait_for, lambda: _frames_out(emu, 1) == 1)
        session.send_text("and now?")  # barges in on the reply; the goAway switch follows its turnComplete
        await asyncio.wait_for(ex.wait(lambda: len(emu.connections) == 2 and REPLY in ex.model_text(),
                                       "the follow-up's answer"), EXAMPLE_SECONDS)
        assert "and now?" in [m.get("text") for m in emu.messages("realtimeInput", connection=2)]
        await session.close()
