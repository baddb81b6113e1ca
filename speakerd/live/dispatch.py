"""Server messages into daemon events, and what each means for replay, handle, goAway and tools.

Why apart from the connection loop: this is the per-turn bookkeeping (is the model answering, did
the turn have audio, which tool calls are pending) that production's quirks keep adding to; the
loop only needs to know when to move to a new connection.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from google.genai import types

from speakerd.events import (
    GenerationComplete,
    GoAway,
    Interrupted,
    ReplyAudio,
    Sources,
    ToolCall,
    ToolCancelled,
    ToolResult,
    Transcript,
    TurnComplete,
    TurnRejected,
)
from speakerd.live.connect_config import options_for
from speakerd.live.policy import duration

if TYPE_CHECKING:
    from speakerd.live.session import LiveSession

log = logging.getLogger("speakerd.live")

GO_AWAY_MARGIN_SECONDS = 1.0
BLOCKING_HOLD_SECONDS = 10.0  # mic audio is held back at most this long for a pending BLOCKING call
REJECTED_IN_A_ROW_FOR_FRESH = 3
_NOT_REJECTIONS = frozenset({None, types.TurnCompleteReason.TURN_COMPLETE_REASON_UNSPECIFIED,
                             types.TurnCompleteReason.NEED_MORE_INPUT})


class Dispatcher:
    def __init__(self, session: LiveSession) -> None:
        self.s = session
        self.generating = False
        self.turn_audio = False  # this turn brought reply audio
        self.generation_reported = False  # GenerationComplete sent for this turn
        self.rejected_in_a_row = 0
        self.tool_tasks: dict[str, asyncio.Task[None]] = {}
        self.blocking: dict[str, float] = {}  # pending BLOCKING call id -> when the hold expires

    def new_connection(self) -> None:
        self.generating = False
        # A call pending on the old socket is not pending on this one: holding the microphone back
        # now would starve the service's VAD of the silence that ends the replayed question.
        self.blocking.clear()

    def holding_mic(self) -> bool:
        """While a BLOCKING call is unanswered the service aborts (1008) on new input: hold it back."""
        if not self.blocking:
            return False
        now = self.s.clock()
        for call_id in [c for c, until in self.blocking.items() if until <= now]:
            del self.blocking[call_id]
            log.warning("tool call %s still pending after %.0f s: sending microphone audio again",
                        call_id, BLOCKING_HOLD_SECONDS)
        return bool(self.blocking)

    def handle(self, msg: types.LiveServerMessage) -> None:
        s = self.s
        sc = msg.server_content
        if sc is not None or msg.tool_call is not None:
            s.watchdog.progress()
        if sc is not None:
            self._content(msg, sc)
        if msg.tool_call is not None:
            s.watchdog.disarm()  # the client's move now; the tool answer arms it again
            if not self.generating:
                s.outbox.answer_started()
            for call in msg.tool_call.function_calls or []:
                self._start_tool(call)
        if msg.tool_call_cancellation is not None:
            ids = tuple(msg.tool_call_cancellation.ids or ())
            for call_id in ids:
                self.blocking.pop(call_id, None)
                task = self.tool_tasks.pop(call_id, None)
                if task is not None:
                    task.cancel()
            s.on_event(ToolCancelled(ids))
        if msg.session_resumption_update is not None:
            upd = msg.session_resumption_update
            if upd.resumable and upd.new_handle:  # resumable false: keep the last good handle
                s.handle_saved(upd.new_handle)
        if msg.go_away is not None:
            self._go_away(duration(msg.go_away.time_left))

    def _content(self, msg: types.LiveServerMessage, sc: types.LiveServerContent) -> None:
        s = self.s
        if sc.input_transcription is not None and sc.input_transcription.text:
            if s.watch_transcripts and not self.generating:
                s.watchdog.arm()  # under server VAD the only sign that the user's turn ended
            s.on_event(Transcript("user", sc.input_transcription.text, bool(sc.input_transcription.finished)))
        if sc.model_turn is not None and sc.model_turn.parts:
            for part in sc.model_turn.parts:
                if part.inline_data is not None and part.inline_data.data:
                    if not self.generating:
                        s.outbox.answer_started()
                        self.generation_reported = False
                    self.generating = True
                    self.turn_audio = True
                    s.stall_retry_used = False
                    s.on_event(ReplyAudio(part.inline_data.data))
        grounding = sc.grounding_metadata
        if grounding is not None and grounding.grounding_chunks:
            pages = tuple((c.web.uri or "", c.web.title or "") for c in grounding.grounding_chunks if c.web is not None)
            if pages:
                s.on_event(Sources(pages))
        if sc.output_transcription is not None and sc.output_transcription.text:
            s.on_event(Transcript("model", sc.output_transcription.text, bool(sc.output_transcription.finished)))
        if sc.interrupted:
            self.generating = False
            self.generation_reported = True  # an interrupted reply is not completed: no event for it
            s.on_event(Interrupted())
        if sc.generation_complete:
            s.watchdog.disarm()  # the reply is all here; a turnComplete may take seconds more
            self._generation_complete()
        if sc.turn_complete:
            self._turn_complete(msg, sc)

    def _generation_complete(self) -> None:
        """Once per turn: the daemon ends "speaking" when this came and the speaker drained, and a
        turnComplete can come seconds later (or, from some servers, with no generationComplete)."""
        if not self.generation_reported:
            self.generation_reported = True
            self.s.on_event(GenerationComplete())

    def _turn_complete(self, msg: types.LiveServerMessage, sc: types.LiveServerContent) -> None:
        s = self.s
        if self.turn_audio:
            self._generation_complete()
        s.watchdog.disarm()
        s.stall_retry_used = False
        self.generating = False
        s.outbox.turn_complete()
        s.policy.turn_done()
        reason = sc.turn_complete_reason
        if reason not in _NOT_REJECTIONS and not self.turn_audio:
            self._rejected(str(reason.value if reason is not None else reason))
        elif self.turn_audio:
            self.rejected_in_a_row = 0
        self.turn_audio = False
        self.generation_reported = False
        usage = msg.usage_metadata.model_dump(exclude_none=True) if msg.usage_metadata else {}
        s.on_event(TurnComplete(usage))
        if s.go_away_pending:
            s.switch.set()

    def _rejected(self, reason: str) -> None:
        s = self.s
        self.rejected_in_a_row += 1
        s.stats.rejected_turns += 1
        fresh = self.rejected_in_a_row >= REJECTED_IN_A_ROW_FOR_FRESH
        log.warning("the Live service ended a turn without a reply (%s), %d in a row%s", reason,
                    self.rejected_in_a_row, "; starting a fresh session" if fresh else "")
        s.on_event(TurnRejected(reason, self.rejected_in_a_row, fresh_session=fresh))
        if fresh:
            self.rejected_in_a_row = 0
            s.request_fresh()

    def _go_away(self, left: float) -> None:
        s = self.s
        s.stats.go_aways += 1
        s.on_event(GoAway(left))
        s.go_away_pending = True
        if not self.generating and not self.tool_tasks:
            s.switch.set()
        else:  # let the reply finish, but move on a timer before the server cuts us off (or goes silent)
            margin = max(GO_AWAY_MARGIN_SECONDS, 2 * (s.stats.last_connect_seconds or 0.0))
            s.timers.append(asyncio.get_running_loop().call_later(
                max(0.0, left - min(margin, left / 2)), s.switch.set))

    def _start_tool(self, call: types.FunctionCall) -> None:
        s = self.s
        call_id, name = call.id or "", call.name or ""
        if not call_id:  # the answer needs the call's id; without it the SDK refuses to send one
            log.warning("the Live service called tool %r without an id; ignored", name)
            return
        args = dict(call.args or {})
        non_blocking_ok = options_for(s.live.model).non_blocking_tools
        spec = s.tools.specs.get(name)
        if not (non_blocking_ok and spec is not None and spec.non_blocking):
            self.blocking[call_id] = s.clock() + BLOCKING_HOLD_SECONDS
        s.on_event(ToolCall(call_id, name, args))

        async def run() -> None:
            try:
                result = await s.tools.call(name, args)
            finally:
                self.tool_tasks.pop(call_id, None)
            scheduling = s.tools.scheduling(name) if non_blocking_ok else None
            response = types.FunctionResponse(id=call_id or None, name=name, response=result,
                                              scheduling=scheduling)
            s.outbox.put("tool_response", [response])
            s.on_event(ToolResult(call_id, name, result))
            if scheduling != types.FunctionResponseScheduling.SILENT and not self.tool_tasks:
                s.watchdog.arm()  # the model speaks once it has the answer
            if s.go_away_pending and not self.generating and not self.tool_tasks:
                s.switch.set()

        self.tool_tasks[call_id] = asyncio.create_task(run(), name=f"tool-{name}")

    def tool_response_sent(self, responses: list[types.FunctionResponse]) -> None:
        """The answer is on the wire: the service will take new input again."""
        for r in responses:
            self.blocking.pop(r.id or "", None)

    def cancel_tools(self) -> None:
        for task in list(self.tool_tasks.values()):
            task.cancel()
