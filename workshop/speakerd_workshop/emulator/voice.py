"""The model's voice: a reply as paced audio chunks with its output transcript, optional search
grounding, then generationComplete and turnComplete with usageMetadata.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from speakerd_workshop.emulator import tts, wire
from speakerd_workshop.emulator.faults import FaultActions
from speakerd_workshop.emulator.wire import Json

OUTPUT_MIME = "audio/pcm;rate=24000"
CHUNK_SECONDS = 0.08  # reply audio per message
BURST_SECONDS = 0.5  # how far reply audio runs ahead of real time, like the service's bursts
TOKENS_PER_SECOND = 25  # audio tokens per second, for usageMetadata


class Voice(FaultActions):
    """Speaking one model turn on the connection."""

    async def _speak_turn(self, text: str) -> None:
        await self._speak(text, None, 0.0, 0)

    async def _speak(
        self,
        text: str,
        audio: Path | None,
        prompt_seconds: float,
        prompt_words: int,
        grounding: Json | None = None,
    ) -> None:
        assert self.rules is not None
        pcm = (
            await asyncio.to_thread(tts.read_wav, audio)
            if audio
            else await asyncio.to_thread(tts.synthesize, text)
        )
        chunk_seconds = self.behaviour.chunk_seconds or CHUNK_SECONDS  # burst / slow_audio faults
        pace = self.behaviour.pace or self.emu.pace
        step = int(tts.OUTPUT_RATE * chunk_seconds) * 2
        chunks = [pcm[i : i + step] for i in range(0, len(pcm), step)]
        pieces = re.findall(r"\s*\S+\s*", text) if "outputAudioTranscription" in self.setup else []
        per_chunk: list[list[str]] = [[] for _ in chunks] or [[]]
        for i, piece in enumerate(pieces):
            per_chunk[min(len(per_chunk) - 1, i * len(per_chunk) // max(1, len(pieces)))].append(piece)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        sent = 0.0
        for k, chunk in enumerate(chunks or [b""]):
            target = t0 + max(0.0, sent - BURST_SECONDS) / pace
            if target > loop.time():
                await asyncio.sleep(target - loop.time())
            content: Json = {}
            if chunk:
                content["modelTurn"] = {
                    "parts": [{"inlineData": {"mimeType": OUTPUT_MIME, "data": wire.b64encode(chunk)}}]
                }
            said = "".join(per_chunk[k]) if k < len(per_chunk) else ""
            if said and self.rules.multi_part:
                content["outputTranscription"] = {"text": said}
            if k == 0 and grounding is not None:
                if self.rules.multi_part:
                    content["groundingMetadata"] = grounding
                else:  # one field per message on 2.5: the sources come just before the audio
                    self.send({"serverContent": {"groundingMetadata": grounding}}, tag="groundingMetadata")
            if content:
                self.send({"serverContent": content}, tag="firstAudio" if k == 0 and chunk else None)
            if said and not self.rules.multi_part:
                self.send({"serverContent": {"outputTranscription": {"text": said}}})
            self.chunks_in_reply += 1
            self._reply_faults()
            sent += len(chunk) / 2 / tts.OUTPUT_RATE
        self.convo.history.append({"role": "model", "text": text})
        self.send({"serverContent": {"generationComplete": True}}, tag="generationComplete")
        if self.behaviour.turn_complete_delay > 0:
            self.emu.event(self.info.id, "lateTurnComplete", seconds=self.behaviour.turn_complete_delay)
            await asyncio.sleep(self.behaviour.turn_complete_delay)
        audio_prompt = int(prompt_seconds * TOKENS_PER_SECOND) + prompt_words
        frame_tokens, self.frame_tokens = self.frame_tokens, 0
        prompt = audio_prompt + frame_tokens
        response = int(sent * TOKENS_PER_SECOND)
        details = [{"modality": "AUDIO", "tokenCount": audio_prompt}]
        if frame_tokens:
            details.append({"modality": "VIDEO", "tokenCount": frame_tokens})
        self.send(
            {
                "serverContent": {"turnComplete": True},
                "usageMetadata": {
                    "promptTokenCount": prompt,
                    "responseTokenCount": response,
                    "totalTokenCount": prompt + response,
                    "promptTokensDetails": details,
                    "responseTokensDetails": [{"modality": "AUDIO", "tokenCount": response}],
                },
            },
            tag="turnComplete",
        )
