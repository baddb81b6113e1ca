"""The Gemini Live session client: connect config per model, the session, resumption, tools."""

from speakerd.live.connect_config import (
    build_connect_config,
    connect_config_warnings,
    http_options,
    options_for,
    with_keepalive,
)
from speakerd.live.policy import LiveError, SessionStats
from speakerd.live.session import LiveSession
from speakerd.live.store import ResumptionStore
from speakerd.live.tokens import BrokerPolicy, TokenBroker, TokenError, TokenSource
from speakerd.live.tools import ToolArgumentError, ToolRegistry, ToolSpec
from speakerd.live.watchdog import DEFAULT_RESPONSE_TIMEOUT_SECONDS

__all__ = [
    "DEFAULT_RESPONSE_TIMEOUT_SECONDS",
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
    "with_keepalive",
]
