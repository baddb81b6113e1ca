"""The turn engine: what the emulated model hears, says and which tools it calls, turn by turn,
with barge-in, tool calls and responses, transcription and resumption handles.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid

from speakerd_workshop.emulator import models, video, wire
from speakerd_workshop.emulator.answer import DONE, FILLER, decide
from speakerd_workshop.emulator.faults import ABORTED_REASON, REJECTED
from speakerd_workshop.emulator.records import Closing, Pending
from speakerd_workshop.emulator.voice import Voice
from speakerd_workshop.emulator.wire import Json

# abort_on_input spares audio the client sent before it could have seen the call (in flight).
ABORT_GRACE_SECONDS = 0.5

class TurnEngine(Voice):
    """Client input in, model turns out."""

    def _resumption(self) -> None:
        if "sessionResumption" not in self.setup:
            return
        if self.behaviour.unresumable:
            self.send({"sessionResumptionUpdate": {"resumable": False}})
            return
        busy = (self.reply is not None and not self.reply.done()) or bool(self.pending)
        if busy:
            self.send({"sessionResumptionUpdate": {"resumable": False}})
        else:
            handle = self.emu.new_handle(self)
            self.send({"sessionResumptionUpdate": {"newHandle": handle, "resumable": True}}, tag="handle")

    def _realtime(self, body: Json) -> None:
        self.seen_realtime = True
        blobs: list[Json] = []
        if isinstance(body.get("audio"), dict):
            blobs.append(body["audio"])
        for chunk in body.get("mediaChunks") or []:
            if isinstance(chunk, dict):
                blobs.append(chunk)
                break  # the service uses only the first chunk
        for blob in blobs:
            mime = str(blob.get("mimeType") or "")
            pcm = wire.b64decode(str(blob.get("data") or ""))
            if not mime.startswith("audio/"):
                continue
            self._media("audio")
            if self.behaviour.abort_on_input and any(not p.non_blocking for p in self.pending.values()) \
                    and time.monotonic() - self.behaviour.call_sent_at > ABORT_GRACE_SECONDS:
                raise Closing(1008, ABORTED_REASON)
            rate = wire.pcm_rate(mime)
            if self.vad is not None:
                for ev in self.vad.feed(pcm, rate):
                    if ev.kind == "start":
                        self._activity_start("vad")
                    else:
                        self._user_turn("audio", None, "vad")
            if self.vad is None or self.vad.active:
                self.turn_audio_seconds += len(pcm) / 2 / rate
        for mime, data in video.decode_frames(body):
            try:
                width, height = video.check_frame(mime, data)
            except video.FrameError as e:
                raise Closing(1007, f"Request contains an invalid argument: {e}") from e
            self.frames_total += 1
            self.frame_tokens += video.tokens_per_frame(self.setup)
            self.emu.event(self.info.id, "videoFrame", bytes=len(data), width=width, height=height)
            self._media("video")
        if body.get("audioStreamEnd") and self.vad is not None and self.vad.active:
            self.vad.reset()
            self._user_turn("audio", None, "audioStreamEnd")
        if "activityStart" in body:
            if not self.manual:
                raise Closing(
                    1007,
                    "Request contains an invalid argument: activityStart requires "
                    "automaticActivityDetection.disabled.",
                )
            self.in_activity = True
            self._activity_start("activityStart")
        if "activityEnd" in body:
            if not self.manual:
                raise Closing(
                    1007,
                    "Request contains an invalid argument: activityEnd requires "
                    "automaticActivityDetection.disabled.",
                )
            if self.in_activity:
                self.in_activity = False
                self._user_turn("audio", None, "activityEnd")
        text = body.get("text")
        if isinstance(text, str) and text:
            self._text_allowed()
            self._activity_start("text")
            self._user_turn("text", text, "text")

    def _frames(self, text: str) -> str:
        """Fill ``{frames}``: image frames received since the last text that mentioned them."""
        if "{frames}" not in text:
            return text
        count, self.frames_mark = self.frames_total - self.frames_mark, self.frames_total
        return text.replace("{frames}", str(count))

    def _text_allowed(self) -> None:
        assert self.rules is not None
        if not self.rules.text_input:
            raise Closing(1008, f"text input is not supported by models/{self.rules.name}.")

    def _client_content(self, body: Json) -> None:
        assert self.rules is not None
        self._text_allowed()
        if not self.rules.client_content_anytime and (
            self.seen_realtime
            or not (self.setup.get("historyConfig") or {}).get("initialHistoryInClientContent")
        ):
            raise Closing(
                1007,
                "Request contains an invalid argument: this model takes clientContent "
                "only to seed history (historyConfig.initialHistoryInClientContent).",
            )
        last_user = None
        for t in body.get("turns") or []:
            text = " ".join(
                str(p.get("text", "")) for p in t.get("parts") or [] if isinstance(p, dict)
            ).strip()
            self.convo.history.append({"role": t.get("role", "user"), "text": text})
            if t.get("role", "user") == "user":
                last_user = text
        if body.get("turnComplete"):
            self._interrupt("clientContent", force=True)
            if last_user is None and self.rules.empty_turn_complete_stops:
                return  # a client stopping the reply (e.g. its button): no new turn
            self.turns.put_nowait(("user", ("text", last_user or "", "clientContent", True)))

    def _tool_response(self, body: Json) -> None:
        for fr in body.get("functionResponses") or []:
            pid = str(fr.get("id") or "")
            pending = self.pending.get(pid)
            if pending is None:
                self.emu.event(self.info.id, "unknownToolResponse", id=pid)
                continue
            response = fr.get("response") if isinstance(fr.get("response"), dict) else {}
            if not fr.get("willContinue"):
                del self.pending[pid]
            if not pending.non_blocking:
                if not pending.future.done():
                    pending.future.set_result(response)
                continue
            self.convo.history.append({"role": "tool", "name": pending.name, "response": response})
            scheduling = fr.get("scheduling") or "WHEN_IDLE"
            text = self._frames(_fill(pending.turn.after_tool_text, [response]))
            if scheduling == "SILENT" or not text:
                if not self.pending and (self.reply is None or self.reply.done()):
                    self._resumption()
                continue
            if scheduling == "INTERRUPT":
                self._interrupt("toolResponse", force=True, cancel_tools=False)
            self.turns.put_nowait(("model", text))

    # ---- turns -----------------------------------------------------------------------------

    def _activity_start(self, source: str) -> None:
        self.emu.event(self.info.id, "activityStart", source=source)
        self.turn_audio_seconds = 0.0
        if self.interrupts:
            self._interrupt(source)

    def _interrupt(self, source: str, force: bool = False, cancel_tools: bool = True) -> None:
        if not (force or self.interrupts):
            return
        if self.reply is None or self.reply.done():
            return
        self.reply.cancel()
        self.send({"serverContent": {"interrupted": True}}, tag="interrupted")
        ids = [p.id for p in self.pending.values()] if cancel_tools else []
        if ids:
            for pid in ids:
                self.pending.pop(pid).future.cancel()
            self.send({"toolCallCancellation": {"ids": ids}}, tag="toolCallCancellation")
        self.send({"serverContent": {"turnComplete": True}}, tag="turnComplete")
        self.emu.event(self.info.id, "interruptedBy", source=source)

    def _user_turn(self, kind: str, text: str | None, source: str) -> None:
        self.emu.event(self.info.id, "userTurnEnd", source=source)
        self.turns.put_nowait(("user", (kind, text, source, False)))

    async def _turn_worker(self) -> None:
        while True:
            item = await self.turns.get()
            if item[0] == "user":
                kind, text, _source, _forced = item[1]
                coro = self._respond(kind, text)
            else:
                coro = self._speak_turn(item[1])
            self.reply = asyncio.ensure_future(coro)
            self.chunks_in_reply = 0
            await asyncio.wait({self.reply})
            if not self.reply.cancelled() and self.reply.exception() is not None:
                exc = self.reply.exception()
                if isinstance(exc, Closing):
                    self.close(exc.code, exc.reason)
                    return
                raise exc  # type: ignore[misc]
            self._resumption()

    async def _respond(self, kind: str, text: str | None) -> None:
        assert self.rules is not None
        scenario = self.emu.scenario
        exchange = None
        if kind == "audio":
            text, exchange = scenario.heard(self.convo.spoken_index, self.convo.turn_index)
            self.convo.spoken_index += 1
        turn_index = self.convo.turn_index
        self.convo.turn_index += 1
        prompt_seconds, self.turn_audio_seconds = self.turn_audio_seconds, 0.0
        if kind == "audio" and text and "inputAudioTranscription" in self.setup:
            self.send(
                {"serverContent": {"inputTranscription": {"text": text, "finished": True}}},
                tag="inputTranscription",
            )
        self.convo.history.append({"role": "user", "text": text or ""})
        self._resumption()
        b = self.behaviour
        if b.reject_turns > 0:
            b.reject_turns -= 1
            self.emu.event(self.info.id, "rejected")
            self.send({"serverContent": {"turnComplete": True, "turnCompleteReason": REJECTED}}, tag="turnComplete")
            return
        if b.stall_replies > 0:
            b.stall_replies -= 1
            self.emu.event(self.info.id, "stallReply")
            if b.stall_seconds <= 0:
                await asyncio.Event().wait()  # until the connection ends
            await asyncio.sleep(b.stall_seconds)
        if self.emu.reply_delay_seconds > 0:
            await asyncio.sleep(self.emu.reply_delay_seconds)
        declared = {str(d.get("name")): d for d in models.declarations(self.setup)}
        answer = decide(
            scenario, text or "", exchange, turn_index, set(declared), models.search_declared(self.setup)
        )
        for name in answer.undeclared:
            self.emu.event(self.info.id, "toolNotDeclared", name=name)
        turn = answer.turn
        calls = []
        for spec in answer.calls:
            behavior = declared[spec.name].get("behavior")
            nb = spec.non_blocking
            if nb is None:
                nb = behavior == "NON_BLOCKING" or (behavior is None and self.rules.non_blocking_default)
            pid = "fc-" + uuid.uuid4().hex[:16]
            fut: asyncio.Future[Json] = asyncio.get_running_loop().create_future()
            self.pending[pid] = Pending(pid, spec.name, nb, turn, fut)
            calls.append({"id": pid, "name": spec.name, "args": spec.args})
        reply = self._frames(turn.reply_text)
        audio = turn.reply_audio
        if calls:
            self.send({"toolCall": {"functionCalls": calls}}, tag="toolCall")
            self.behaviour.call_sent_at = time.monotonic()
            self._resumption()
            blocking = [p for p in self.pending.values() if not p.non_blocking and p.turn is turn]
            if blocking:
                results = await asyncio.gather(*(p.future for p in blocking))
                for p, r in zip(blocking, results, strict=True):
                    self.convo.history.append({"role": "tool", "name": p.name, "response": r})
                reply = self._frames(_fill(turn.after_tool_text or turn.reply_text or DONE, list(results)))
                audio = None
            elif not reply and audio is None:
                reply = FILLER  # never a silent turn: the result is spoken when it arrives
        if answer.grounding is not None:
            self.emu.event(self.info.id, "grounding", queries=answer.grounding["webSearchQueries"])
        await self._speak(reply, audio, prompt_seconds, len((text or "").split()), answer.grounding)


def _fill(template: str, results: list[Json]) -> str:
    """Put the tool results into ``{result}`` (a "result" field when present, else the JSON)."""
    shown = []
    for r in results:
        v = r.get("result", r.get("output", r)) if isinstance(r, dict) else r
        shown.append(v if isinstance(v, str) else json.dumps(v))
    return template.replace("{result}", ", ".join(shown))
