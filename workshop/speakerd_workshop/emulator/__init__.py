"""A local, protocol-faithful emulator of the Gemini Live API (see reference live-protocol.md)."""

from speakerd_workshop.emulator.scenario import Scenario, ScenarioError, ToolCallSpec, Turn
from speakerd_workshop.emulator.server import (
    ConnectionInfo,
    Emulator,
    Fault,
    IssuedToken,
    Received,
    ServerEvent,
)
from speakerd_workshop.emulator.thread import EmulatorThread

__all__ = [
    "ConnectionInfo",
    "Emulator",
    "EmulatorThread",
    "Fault",
    "IssuedToken",
    "Received",
    "Scenario",
    "ScenarioError",
    "ServerEvent",
    "ToolCallSpec",
    "Turn",
]
