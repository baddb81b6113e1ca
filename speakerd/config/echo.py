"""``[audio.echo]``: how the speaker keeps from hearing itself.

Why a model of its own: the canceller, the delay search and the gate are tuned together, and the
daemon needs one object to build them from and to describe in ``check-config`` and the startup log.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

Canceller = Literal["none", "speex", "webrtc"]
Gate = Literal["off", "residual", "half_duplex"]


class EchoSettings(BaseModel):
    """The defaults never let the speaker interrupt itself; voice barge-in is opt-in (docs/audio.md).

    ``gate = "residual"`` honours a person talking over a reply, but in the rig's room it still let
    the echo through at times (bench/self_interruption.py); half duplex does not, and the button
    and the stop word interrupt as before.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    # The adaptive filter that subtracts the speaker's voice from the microphone. "webrtc" is AEC3
    # (pywebrtc-audio); "speex" is libspeexdsp; "none" leaves it to the gate.
    canceller: Canceller = "webrtc"
    # The safety net while the speaker plays: "residual" lets the microphone through only when it
    # is louder than the echo left after cancellation by ``gate_margin_db`` (a person talking over
    # the reply), otherwise it sends zeros; "half_duplex" sends zeros whenever the speaker plays
    # (no voice barge-in: the button and the stop word still work); "off" sends everything.
    gate: Gate = "half_duplex"
    gate_margin_db: Annotated[float, Field(ge=0, le=40)] = 10.0
    # How long the gate stays open after the microphone last stood out (keeps word endings).
    gate_hold_ms: Annotated[int, Field(ge=0, le=2000)] = 800
    # The longest speaker-to-microphone delay searched for (device buffers plus the air).
    max_delay_ms: Annotated[int, Field(ge=20, le=2000)] = 1000
    # Reverberation the canceller and the gate must cover after the reference.
    tail_ms: Annotated[int, Field(ge=50, le=1000)] = 600

    def describe(self) -> str:
        """One line for the startup log and ``check-config``."""
        canceller = {"none": "no canceller", "speex": "Speex canceller",
                     "webrtc": "WebRTC AEC3 canceller"}[self.canceller]
        gate = {"off": "no gate", "half_duplex": "half duplex (microphone muted while the speaker plays)",
                "residual": f"residual-echo gate ({self.gate_margin_db:g} dB margin)"}[self.gate]
        return f"{canceller} with delay search up to {self.max_delay_ms} ms, {gate}"
