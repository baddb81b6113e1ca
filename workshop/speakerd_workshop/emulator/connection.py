"""One Live session on one connection: message dispatch, setup (auth, model rules, token
constraints, resumption) and the start of the session.
"""

from __future__ import annotations

import asyncio
import logging
import time

from speakerd_workshop.emulator import models, wire
from speakerd_workshop.emulator.engine import TurnEngine
from speakerd_workshop.emulator.faults import BEHAVIOURS, Fault
from speakerd_workshop.emulator.records import BAD_KEY, NO_KEY, Closing, Received
from speakerd_workshop.emulator.tokens import constrain
from speakerd_workshop.emulator.vad import VadSettings, make_vad
from speakerd_workshop.emulator.wire import Json

log = logging.getLogger("speakerd_workshop.emulator")


class Connection(TurnEngine):
    """A WebSocket connection carrying one Live session."""

    def _message(self, data: bytes) -> None:
        msg = wire.decode(data)
        self.emu._record(self.emu._received, Received(self.info.id, msg, time.monotonic()))
        keys = [
            k
            for k in msg
            if k in ("setup", "clientContent", "realtimeInput", "toolResponse", "contextUpdate")
        ]
        if len(keys) != 1:
            raise Closing(
                1007,
                "Request contains an invalid argument: expected exactly one of setup, "
                "clientContent, realtimeInput, toolResponse.",
            )
        key = keys[0]
        body = msg[key]
        if not isinstance(body, dict):
            raise Closing(1007)
        if key == "setup":
            if self.info.setup is not None or self.rules is not None:
                raise Closing(1007, "Request contains an invalid argument: setup was already sent.")
            self._setup(body)
            return
        if self.rules is None:
            raise Closing(1007, "Request contains an invalid argument: the first message must be setup.")
        if self.token is not None and self.emu.token_store.token_expired(self.token):
            raise Closing(1008, "The provided auth token has expired.")
        if key == "realtimeInput":
            self._realtime(body)
        elif key == "clientContent":
            self._client_content(body)
        elif key == "toolResponse":
            self._tool_response(body)

    def _setup(self, setup: Json) -> None:
        info = self.info
        constrained = info.method.endswith("Constrained")
        resume_handle = (setup.get("sessionResumption") or {}).get("handle") or None
        if constrained:
            if info.credential is None or not info.credential.startswith("auth_tokens/"):
                raise Closing(1008, NO_KEY if info.credential is None else BAD_KEY)
            token = self.emu.token_store.use_token(info.credential, resuming=resume_handle is not None)
            self.token = token.name
            if token.setup:
                setup = constrain(setup, token.setup)
        elif info.credential is None:
            raise Closing(1008, NO_KEY)
        elif info.credential != self.emu.api_key:
            raise Closing(1008, BAD_KEY)
        model = str(setup.get("model") or "").removeprefix("models/")
        rules = models.MODELS.get(model)
        if rules is None:
            raise Closing(1008, models.not_found_reason(model, info.api_version))
        rejected = models.rejection(rules, setup) or models.unsupported_tool(setup)
        if rejected:
            raise Closing(1008, rejected)
        invalid = models.invalid_argument(setup)
        if invalid:
            raise Closing(1007, invalid)
        faults = self.emu.take_next_faults()
        if resume_handle:
            self.convo = self.emu.resume(str(resume_handle), model)
            if any(f.kind == "refuse_resume" for f in faults) and self.emu.session_open_elsewhere(self):
                self.emu.event(info.id, "resumeRefused")
                raise Closing(1011, "The session is still open on another connection.")
        with self.emu.cond:
            info.model = model
            info.setup = setup
            info.resumed_handle = resume_handle
        self.rules = rules
        self.setup = setup
        log.debug("connection %d: setup %s%s", info.id, model, f" resuming {resume_handle}" if resume_handle else "")
        ric = setup.get("realtimeInputConfig") or {}
        aad = ric.get("automaticActivityDetection") or {}
        self.manual = bool(aad.get("disabled"))
        self.vad = None if self.manual else make_vad(self.emu.vad, VadSettings.from_setup(aad))
        self.interrupts = ric.get("activityHandling") != "NO_INTERRUPTION"
        if "contextWindowCompression" in setup:
            self.emu.event(info.id, "compression", config=setup["contextWindowCompression"])
        for f in faults:
            if f.kind == "delay":
                self.delay = f.seconds
        self.spawn(self._start(faults))

    async def _start(self, faults: list[Fault]) -> None:
        for f in faults:
            if f.kind == "stall":
                self.emu.event(self.info.id, "stall")
                if f.seconds <= 0:
                    return
                await asyncio.sleep(f.seconds)
        for f in faults:
            if f.during == "setup" and f.kind in ("close", "drop", "malformed", "oversized"):
                self._act(f)
                return
            if f.during == "setup" and f.kind == "raw":
                self._act(f)
                if f.then_close:
                    return
        self.send({"setupComplete": {}}, tag="setupComplete")
        for f in faults:
            if f.kind in BEHAVIOURS:
                self.behave(f)
        self._resumption()
        for f in faults:
            if f.kind in ("close", "drop", "malformed", "oversized", "raw") and f.during == "reply":
                self.faults.append(f)
            elif f.kind == "go_away":
                self.spawn(self._go_away(f.seconds or self.emu.go_away_before_seconds))
        self.spawn(self._session_limit())
        if self.emu.connection_lifetime_seconds is not None:
            self.spawn(self._lifetime(self.emu.connection_lifetime_seconds))
        self.spawn(self._turn_worker())
