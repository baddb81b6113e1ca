"""The Gemini Live session client: connect config per model, the session, resumption, tools."""

from speakerd.live.connect_config import build_connect_config, http_options, options_for
from speakerd.live.session import LiveError, LiveSession, SessionStats
from speakerd.live.store import ResumptionStore
from speakerd.live.tools import ToolArgumentError, ToolRegistry, ToolSpec

__all__ = [
    "LiveError",
    "LiveSession",
    "ResumptionStore",
    "SessionStats",
    "ToolArgumentError",
    "ToolRegistry",
    "ToolSpec",
    "build_connect_config",
    "http_options",
    "options_for",
]
