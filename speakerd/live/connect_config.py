"""From ``[live]`` settings to the SDK's LiveConnectConfig, per model.

Why per model: the service closes the connection (1008) when a model is sent an option it does not
accept (reference live-protocol.md §7), so an option the owner set that the configured model
rejects is dropped with a warning instead of breaking every conversation.
"""

from __future__ import annotations

import logging
import ssl
from typing import TypedDict, Unpack

from google.genai import types

from speakerd.config import LiveSettings
from speakerd.live.tools import ToolRegistry
from speakerd.models import ModelOptions
from speakerd.models import options_for as options_for  # re-exported: the table lives in speakerd.models

log = logging.getLogger("speakerd.live")


class ConnectOptions(TypedDict, total=False):
    """Per-connection choices on top of the settings (see ``connect_config_and_warnings``)."""

    handle: str | None
    push_to_talk: bool
    force_compression: bool
    media_resolution: str | None


def build_connect_config(
    live: LiveSettings, tools: ToolRegistry | None = None, **options: Unpack[ConnectOptions]
) -> types.LiveConnectConfig:
    """The setup for one connection; options this model does not take are left out (see
    :func:`connect_config_warnings` for the lines saying so)."""
    return connect_config_and_warnings(live, tools, **options)[0]


def connect_config_warnings(live: LiveSettings, tools: ToolRegistry | None = None) -> list[str]:
    """One line per configured option the model does not accept (for logs and check-config)."""
    return connect_config_and_warnings(live, tools)[1]


def connect_config_and_warnings(
    live: LiveSettings,
    tools: ToolRegistry | None = None,
    *,
    handle: str | None = None,
    push_to_talk: bool = False,
    force_compression: bool = False,
    media_resolution: str | None = None,
) -> tuple[types.LiveConnectConfig, list[str]]:
    """The connect config and the warnings for options this model does not take."""
    opts = options_for(live.model)
    cfg = types.LiveConnectConfig(
        response_modalities=[types.Modality.AUDIO],
        speech_config=types.SpeechConfig(
            voice_config=types.VoiceConfig(prebuilt_voice_config=types.PrebuiltVoiceConfig(voice_name=live.voice)),
            language_code=_language(live, opts),
        ),
        system_instruction=live.system_instruction or None,
        realtime_input_config=_realtime_input(live, push_to_talk),
        session_resumption=types.SessionResumptionConfig(handle=handle),
        temperature=live.temperature,
    )
    if live.input_transcription:
        cfg.input_audio_transcription = types.AudioTranscriptionConfig()
    if live.output_transcription:
        cfg.output_audio_transcription = types.AudioTranscriptionConfig()
    comp = live.compression
    if comp.enabled or force_compression:
        cfg.context_window_compression = types.ContextWindowCompressionConfig(
            trigger_tokens=comp.trigger_tokens,
            sliding_window=types.SlidingWindow(target_tokens=comp.target_tokens),
        )
    resolution = media_resolution or live.media_resolution
    if resolution:
        cfg.media_resolution = types.MediaResolution(f"MEDIA_RESOLUTION_{resolution.upper()}")
    cfg.tools = list(_tools(live, tools, opts)) or None
    return cfg, _model_options(cfg, live, opts)


def _language(live: LiveSettings, opts: ModelOptions) -> str | None:
    """The configured language if the model speaks it; otherwise None (the model decides)."""
    if live.language is None or (opts.languages and live.language not in opts.languages):
        return None
    return live.language


def _realtime_input(live: LiveSettings, push_to_talk: bool) -> types.RealtimeInputConfig:
    vad = live.vad
    aad = types.AutomaticActivityDetection(
        disabled=push_to_talk or None,
        start_of_speech_sensitivity=types.StartSensitivity(f"START_SENSITIVITY_{vad.start_sensitivity.upper()}"),
        end_of_speech_sensitivity=types.EndSensitivity(f"END_SENSITIVITY_{vad.end_sensitivity.upper()}"),
        prefix_padding_ms=vad.prefix_padding_ms,
        silence_duration_ms=vad.silence_duration_ms,
    )
    return types.RealtimeInputConfig(
        automatic_activity_detection=aad,
        activity_handling=types.ActivityHandling.START_OF_ACTIVITY_INTERRUPTS if vad.barge_in
        else types.ActivityHandling.NO_INTERRUPTION,
    )


def _tools(live: LiveSettings, tools: ToolRegistry | None, opts: ModelOptions) -> list[types.Tool]:
    out: list[types.Tool] = []
    if tools is not None and tools.specs:
        out.append(types.Tool(function_declarations=tools.declarations(non_blocking_allowed=opts.non_blocking_tools)))
    if live.google_search:
        out.append(types.Tool(google_search=types.GoogleSearch()))
    return out


def _model_options(cfg: types.LiveConnectConfig, live: LiveSettings, opts: ModelOptions) -> list[str]:
    """Set the options this model takes; one warning per option it does not."""
    ignored: list[str] = []
    if live.affective_dialog is not None:
        if opts.affective_dialog:
            cfg.enable_affective_dialog = live.affective_dialog
        else:
            ignored.append("live.affective_dialog")
    if live.proactive_audio is not None:
        if opts.proactive_audio == "yes" or (opts.proactive_audio == "always" and live.proactive_audio):
            cfg.proactivity = types.ProactivityConfig(proactive_audio=live.proactive_audio)
        else:
            ignored.append(f"live.proactive_audio = {str(live.proactive_audio).lower()}")
    if live.thinking_level is not None:
        if opts.thinking in ("level", "any"):
            cfg.thinking_config = types.ThinkingConfig(thinking_level=types.ThinkingLevel(live.thinking_level.upper()))
        else:
            ignored.append("live.thinking_level")
    if live.language is not None and _language(live, opts) is None:
        ignored.append(f"live.language = {live.language!r} (not a language the Live API lists)")
    if live.thinking_budget is not None:
        if opts.thinking in ("budget", "any"):
            cfg.thinking_config = types.ThinkingConfig(thinking_budget=live.thinking_budget)
        else:
            ignored.append("live.thinking_budget")
    return [f"{option} is not supported by {live.model}; ignored" for option in ignored]


# The service's pongs take 8-30 s (reference live-service-behaviours.md, "keepalive ping timeout");
# the `websockets` defaults (20 s interval, 20 s timeout) cut healthy sessions. A ping every 30 s
# with 90 s to answer still finds a half-open TCP link on an idle session; while a reply is due the
# response watchdog notices a dead link much sooner.
KEEPALIVE_INTERVAL_SECONDS = 30.0
KEEPALIVE_TIMEOUT_SECONDS = 90.0


def http_options(live: LiveSettings, *, api_version: str | None = None) -> types.HttpOptions:
    """Endpoint and CA overrides (the emulator, a proxy) and the WebSocket keepalive."""
    version = api_version or live.api_version
    if live.endpoint is None and live.ca_file is None:
        return with_keepalive(types.HttpOptions(api_version=version))
    args: dict[str, object] = {}
    if live.ca_file is not None:
        ctx = ssl.create_default_context(cafile=str(live.ca_file))
        args = {"ssl": ctx, "verify": ctx}
    return with_keepalive(types.HttpOptions(
        base_url=live.endpoint, api_version=version,
        async_client_args=args or None, client_args={"verify": args["verify"]} if args else None,
    ))


def with_keepalive(opts: types.HttpOptions, *, interval: float = KEEPALIVE_INTERVAL_SECONDS,
                   timeout: float = KEEPALIVE_TIMEOUT_SECONDS) -> types.HttpOptions:
    """``opts`` with WebSocket ping settings, unless the caller set their own.

    The SDK hands ``async_client_args`` keys that ``websockets.connect`` takes to it (and drops
    them for httpx/aiohttp, whose signatures lack them): this is the only way to set them.
    """
    args = dict(opts.async_client_args or {})
    if "ping_interval" in args or "ping_timeout" in args:
        return opts
    args.update(ping_interval=interval, ping_timeout=timeout)
    return opts.model_copy(update={"async_client_args": args})
