"""The Gemini Live session client: connect config per model, the session, resumption, tools."""

from speakerd.live.connect_config import (
    build_connect_config,
    connect_config_warnings,
    http_options,
    options_for,
)
from speakerd.live.session import LiveError, LiveSession, SessionStats
from speakerd.live.store import ResumptionStore
from speakerd.live.tokens import BrokerPolicy, TokenBroker, TokenError, TokenSource
from speakerd.live.tools import ToolArgumentError, ToolRegistry, ToolSpec

__all__ = [
    "BrokerPolicy",
    "LiveError",
    "LiveSession",
    "ResumptionStore",
    "SessionStats",
    "TokenBroker",
    "TokenError",
    "TokenSource",
    "ToolArgumentError",
    "ToolRegistry",
    "ToolSpec",
    "build_connect_config",
    "connect_config_warnings",
    "http_options",
    "options_for",
]
