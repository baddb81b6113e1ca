"""From ``[live]`` settings to the SDK's LiveConnectConfig, per model.

Why per model: the service closes the connection (1008) when a model is sent an option it does not
accept (reference live-protocol.md §7), so an option the owner set that the configured model
rejects is dropped with a warning instead of breaking every conversation.
"""

from __future__ import annotations

import logging
import ssl
from dataclasses import dataclass

from google.genai import types

from speakerd.config import LiveSettings
from speakerd.live.tools import ToolRegistry

log = logging.getLogger("speakerd.live")


@dataclass(frozen=True)
class ModelOptions:
    affective_dialog: bool = False
    proactive_audio: str = "no"  # no | yes | always (false rejected)
    thinking: str | None = None  # "level" | "budget" | None
    non_blocking_tools: bool = True


MODEL_OPTIONS: dict[str, ModelOptions] = {
    "gemini-3.8-live": ModelOptions(proactive_audio="always"),
    "gemini-3.8-live-extended-thinking": ModelOptions(proactive_audio="always", thinking="level"),
    "gemini-3.1-flash-live-preview": ModelOptions(thinking="level", non_blocking_tools=False),
    "gemini-2.5-flash-native-audio-preview-12-2025": ModelOptions(
        affective_dialog=True, proactive_audio="yes", thinking="budget", non_blocking_tools=False),
}
_UNKNOWN = ModelOptions(affective_dialog=True, proactive_audio="yes", thinking="any")


def options_for(model: str) -> ModelOptions:
    return MODEL_OPTIONS.get(model, _UNKNOWN)


def build_connect_config(
    live: LiveSettings,
    tools: ToolRegistry | None = None,
    *,
    handle: str | None = None,
    push_to_talk: bool = False,
    force_compression: bool = False,
    media_resolution: str | None = None,
) -> types.LiveConnectConfig:
    """The setup for one connection; options this model does not take are left out (see
    :func:`connect_config_warnings` for the lines saying so)."""
    return connect_config_and_warnings(
        live, tools, handle=handle, push_to_talk=push_to_talk, force_compression=force_compression,
        media_resolution=media_resolution,
    )[0]


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
    warnings: list[str] = []
    vad = live.vad
    aad = types.AutomaticActivityDetection(
        disabled=push_to_talk or None,
        start_of_speech_sensitivity=types.StartSensitivity(f"START_SENSITIVITY_{vad.start_sensitivity.upper()}"),
        end_of_speech_sensitivity=types.EndSensitivity(f"END_SENSITIVITY_{vad.end_sensitivity.upper()}"),
        prefix_padding_ms=vad.prefix_padding_ms,
        silence_duration_ms=vad.silence_duration_ms,
    )
    realtime = types.RealtimeInputConfig(
        automatic_activity_detection=aad,
        activity_handling=types.ActivityHandling.START_OF_ACTIVITY_INTERRUPTS if vad.barge_in
        else types.ActivityHandling.NO_INTERRUPTION,
    )
    cfg = types.LiveConnectConfig(
        response_modalities=[types.Modality.AUDIO],
        speech_config=types.SpeechConfig(
            voice_config=types.VoiceConfig(prebuilt_voice_config=types.PrebuiltVoiceConfig(voice_name=live.voice)),
            language_code=live.language,
        ),
        system_instruction=live.system_instruction or None,
        realtime_input_config=realtime,
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
    tool_list: list[types.Tool] = []
    if tools is not None and tools.specs:
        tool_list.append(types.Tool(function_declarations=tools.declarations(
            non_blocking_allowed=opts.non_blocking_tools)))
    if live.google_search:
        tool_list.append(types.Tool(google_search=types.GoogleSearch()))
    cfg.tools = list(tool_list) or None

    if live.affective_dialog is not None:
        if opts.affective_dialog:
            cfg.enable_affective_dialog = live.affective_dialog
        else:
            warnings.append(f"live.affective_dialog is not supported by {live.model}; ignored")
    if live.proactive_audio is not None:
        if opts.proactive_audio == "yes" or (opts.proactive_audio == "always" and live.proactive_audio):
            cfg.proactivity = types.ProactivityConfig(proactive_audio=live.proactive_audio)
        else:
            warnings.append(f"live.proactive_audio = {str(live.proactive_audio).lower()} is not supported "
                            f"by {live.model}; ignored")
    if live.thinking_level is not None:
        if opts.thinking in ("level", "any"):
            level = types.ThinkingLevel(live.thinking_level.upper())
            cfg.thinking_config = types.ThinkingConfig(thinking_level=level)
        else:
            warnings.append(f"live.thinking_level is not supported by {live.model}; ignored")
    if live.thinking_budget is not None:
        if opts.thinking in ("budget", "any"):
            cfg.thinking_config = types.ThinkingConfig(thinking_budget=live.thinking_budget)
        else:
            warnings.append(f"live.thinking_budget is not supported by {live.model}; ignored")
    return cfg, warnings


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
