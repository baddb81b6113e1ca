"""The settings, section by section: every key, its type, unit, default and rule.

Why pydantic models with ``extra="forbid"``: a typo in the file is an error naming the key, not
a setting silently ignored. Sections are frozen: what was loaded is what runs until a reload
builds new ones.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from speakerd.config.echo import EchoSettings
from speakerd.effects import STATES
from speakerd.home.settings import MqttSettings
from speakerd.mcp.settings import McpServerSettings
from speakerd.timers.settings import ClockSettings, TimersSettings

ENV_PREFIX = "SPEAKERD_"
BuiltinTool = Literal["set_volume", "end_conversation", "forget_conversation", "current_time"]
BUILTIN_TOOLS: tuple[BuiltinTool, ...] = get_args(BuiltinTool)


class _Section(BaseModel):
    """Base of every section: unknown keys are errors, and settings are frozen once loaded."""

    model_config = ConfigDict(extra="forbid", frozen=True)


Seconds = Annotated[float, Field(ge=0)]
Pin = Annotated[int, Field(ge=0, le=53)]


class VadSettings(_Section):
    """Server-side voice activity detection (``realtimeInputConfig.automaticActivityDetection``)."""

    start_sensitivity: Literal["low", "high"] = "high"
    end_sensitivity: Literal["low", "high"] = "high"
    prefix_padding_ms: Annotated[int, Field(ge=0, le=5000)] = 20
    silence_duration_ms: Annotated[int, Field(ge=0, le=10000)] = 700
    barge_in: bool = True  # START_OF_ACTIVITY_INTERRUPTS; false means NO_INTERRUPTION


class CompressionSettings(_Section):
    """Context-window compression: on by default so audio sessions are not cut at 15 minutes."""

    enabled: bool = True
    trigger_tokens: Annotated[int, Field(gt=0)] | None = None  # None: the service default (80 %)
    target_tokens: Annotated[int, Field(gt=0)] | None = None

    @model_validator(mode="after")
    def _target_below_trigger(self) -> CompressionSettings:
        if (
            self.trigger_tokens is not None
            and self.target_tokens is not None
            and self.target_tokens >= self.trigger_tokens
        ):
            raise ValueError(
                f"target_tokens must be below trigger_tokens (got {self.target_tokens} "
                f">= {self.trigger_tokens})"
            )
        return self


class TokenBrokerSettings(_Section):
    """Ephemeral tokens from a ``speakerd token-broker`` on the LAN instead of a key on the device."""

    url: str | None = None  # e.g. http://homeserver:8780 ; None: use the API key directly
    device_id: str = "speaker"
    ca_file: Path | None = None
    refresh_before_seconds: Annotated[float, Field(gt=0)] = 60.0


class LiveSettings(_Section):
    model: str = "gemini-3.8-live"
    api_version: Literal["v1", "v1beta", "v1alpha"] = "v1beta"
    voice: str = "Kore"
    language: str | None = None  # BCP-47, e.g. "de-DE"; unset: native-audio models follow the speaker
    system_instruction: str = (
        "You are a friendly voice assistant on a smart speaker in someone's home. "
        "Answer in short, natural spoken sentences."
    )
    input_transcription: bool = True
    output_transcription: bool = True
    vad: VadSettings = VadSettings()
    compression: CompressionSettings = CompressionSettings()
    google_search: bool = True
    # Options only some models accept (reference/live-protocol.md section 7). None: leave unset.
    affective_dialog: bool | None = None
    proactive_audio: bool | None = None
    thinking_level: Literal["minimal", "low", "medium", "high"] | None = None
    thinking_budget: Annotated[int, Field(ge=-1)] | None = None
    media_resolution: Literal["low", "medium", "high"] | None = None
    temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    # Where to connect: None is Google's service. A local emulator needs its CA file too.
    endpoint: str | None = None
    ca_file: Path | None = None
    connect_timeout_seconds: Annotated[float, Field(gt=0, le=120)] = 10.0
    reconnect_max_seconds: Annotated[float, Field(gt=0, le=3600)] = 60.0
    token_broker: TokenBrokerSettings = TokenBrokerSettings()

    @field_validator("language")
    @classmethod
    def _bcp47(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"[a-z]{2,3}(-[A-Z][a-z]{3})?(-[A-Z]{2}|-[0-9]{3})?", v):
            raise ValueError("must be a BCP-47 language code such as en-US or de-DE")
        return v

    @field_validator("endpoint")
    @classmethod
    def _endpoint_is_url(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("https://", "http://", "wss://", "ws://")):
            raise ValueError("must be a URL starting with https://")
        return v


DeviceRef = str | Annotated[int, Field(ge=0)] | None


class AudioSettings(_Section):
    input_device: DeviceRef = None  # None: ALSA default; a name substring or an index
    output_device: DeviceRef = None
    input_rate: Annotated[int, Field(ge=8000, le=192000)] | None = None  # None: 16000 if possible
    output_rate: Annotated[int, Field(ge=8000, le=192000)] | None = None  # None: 24000 if possible
    input_channel: Annotated[int, Field(ge=0, le=31)] = 0  # which channel of a multi-channel mic
    frame_ms: Literal[80] = 80  # 1280 samples at 16 kHz: what openWakeWord consumes
    playback_buffer_ms: Annotated[int, Field(ge=10, le=500)] = 60
    playback_prebuffer_ms: Annotated[int, Field(ge=0, le=2000)] = 200  # reply queued before it starts
    preroll_seconds: Annotated[float, Field(ge=0, le=10)] = 2.0
    volume: Annotated[int, Field(ge=0, le=100)] = 70
    earcons: bool = True
    earcon_volume: Annotated[int, Field(ge=0, le=100)] = 60
    earcon_dir: Path | None = None  # WAVs named wake.wav, end.wav, error.wav, mute.wav, unmute.wav
    echo: EchoSettings = EchoSettings()  # [audio.echo]: how the speaker keeps from hearing itself
    reopen_max_seconds: Annotated[float, Field(gt=0, le=600)] = 30.0


class WakewordSettings(_Section):
    models: Annotated[list[str], Field(min_length=1)] = ["hey_jarvis"]
    threshold: Annotated[float, Field(gt=0, lt=1)] = 0.5
    thresholds: dict[str, Annotated[float, Field(gt=0, lt=1)]] = {}
    patience: Annotated[int, Field(ge=1, le=50)] = 1  # consecutive frames over the threshold
    vad_threshold: Annotated[float, Field(ge=0, lt=1)] = 0.0  # 0: no Silero VAD gate
    refractory_seconds: Seconds = 2.0
    stop_model: str | None = None  # kept listening during a conversation to say "stop"

    @model_validator(mode="after")
    def _thresholds_name_models(self) -> WakewordSettings:
        names = {_model_key(m) for m in self.models}
        if self.stop_model is not None:
            names.add(_model_key(self.stop_model))
        unknown = sorted(set(self.thresholds) - names)
        if unknown:
            raise ValueError(
                f"thresholds name models not in wakeword.models: {', '.join(unknown)}"
            )
        return self


def _model_key(model: str) -> str:
    """The name a wake-word model is known by: the built-in name or the file's stem."""
    return Path(model).stem if model.endswith((".onnx", ".tflite")) else model


class ConversationSettings(_Section):
    follow_up_seconds: Seconds = 8.0
    idle_timeout_seconds: Annotated[float, Field(gt=0)] = 15.0  # wake with no speech at all
    max_session_seconds: Annotated[float, Field(gt=0)] = 600.0
    resume: bool = True  # keep the conversation across wakes and restarts
    resume_minutes: Annotated[float, Field(gt=0, le=120)] = 120.0  # how long after its end (the service: 2 h)
    announce_max_chars: Annotated[int, Field(ge=1, le=2000)] = 400  # speakerctl announce, MQTT


class PatternSettings(_Section):
    """An LED pattern: a colour and how it moves. Plain LEDs use only brightness."""

    color: tuple[
        Annotated[float, Field(ge=0, le=1)],
        Annotated[float, Field(ge=0, le=1)],
        Annotated[float, Field(ge=0, le=1)],
    ] = (1.0, 1.0, 1.0)
    brightness: Annotated[float, Field(ge=0, le=1)] = 1.0
    mode: Literal["off", "on", "blink", "pulse", "spin"] = "on"
    on_seconds: Annotated[float, Field(gt=0)] = 0.5
    off_seconds: Annotated[float, Field(gt=0)] = 0.5


ButtonAction = Literal["none", "interrupt", "wake", "end", "mute_toggle", "wake_or_interrupt"]


class GpioSettings(_Section):
    enabled: Literal["auto", "on", "off"] = "auto"  # auto: run without GPIO when none is found
    pin_factory: Literal["auto", "lgpio", "rpigpio", "native", "mock"] = "auto"
    led_profile: Literal["none", "led", "pwm", "rgb", "apa102"] = "none"
    led_pin: Pin | None = None
    rgb_pins: tuple[Pin, Pin, Pin] | None = None
    rgb_common_anode: bool = False
    apa102_leds: Annotated[int, Field(ge=1, le=255)] = 3  # ReSpeaker 2-mic: 3, 4-mic: 12
    apa102_spi_bus: Annotated[int, Field(ge=0)] = 0
    apa102_spi_device: Annotated[int, Field(ge=0)] = 1
    apa102_power_pin: Pin | None = None  # 4-mic HAT: GPIO5 powers the ring
    button_pin: Pin | None = None  # ReSpeaker 2-mic HAT: 17
    button_pull_up: bool = True
    button_hold_seconds: Annotated[float, Field(gt=0, le=10)] = 1.0
    button_double_seconds: Annotated[float, Field(ge=0, le=2)] = 0.4
    button_bounce_seconds: Annotated[float, Field(ge=0, le=1)] = 0.03
    button_polling: bool = False  # for kernels where edge detection fails
    button_poll_ms: Annotated[int, Field(ge=1, le=200)] = 10
    push_to_talk: bool = False
    short_press: ButtonAction = "wake_or_interrupt"
    double_press: ButtonAction = "end"
    long_press: ButtonAction = "mute_toggle"
    patterns: dict[str, PatternSettings] = {}

    @field_validator("patterns")
    @classmethod
    def _known_states(cls, v: dict[str, PatternSettings]) -> dict[str, PatternSettings]:
        unknown = sorted(set(v) - set(STATES))
        if unknown:
            raise ValueError(
                f"unknown state {', '.join(unknown)}; states are {', '.join(STATES)}"
            )
        return v

    @model_validator(mode="after")
    def _pins_for_profile(self) -> GpioSettings:
        if self.led_profile in ("led", "pwm") and self.led_pin is None:
            raise ValueError(f"led_profile {self.led_profile!r} needs led_pin")
        if self.led_profile == "rgb" and self.rgb_pins is None:
            raise ValueError("led_profile 'rgb' needs rgb_pins = [red, green, blue]")
        return self


class CommandTool(_Section):
    """An owner-declared tool the model may call. It runs as argv or an HTTP request, never a shell."""

    name: Annotated[str, Field(pattern=r"^[a-zA-Z_][a-zA-Z0-9_]{0,63}$")]
    description: Annotated[str, Field(min_length=1)]
    parameters: dict[str, Any] = {"type": "object", "properties": {}}
    argv: list[str] | None = None  # "{name}" in an element is replaced by that argument's value
    url: str | None = None
    method: Literal["GET", "POST"] = "POST"
    timeout_seconds: Annotated[float, Field(gt=0, le=300)] = 10.0
    max_output_bytes: Annotated[int, Field(gt=0, le=1_000_000)] = 4096
    non_blocking: bool = False
    scheduling: Literal["interrupt", "when_idle", "silent"] = "when_idle"

    @model_validator(mode="after")
    def _one_target(self) -> CommandTool:
        if (self.argv is None) == (self.url is None):
            raise ValueError(f"tool {self.name!r} needs exactly one of argv or url")
        if self.argv is not None and not self.argv:
            raise ValueError(f"tool {self.name!r}: argv must not be empty")
        if self.parameters.get("type", "object") != "object":
            raise ValueError(f"tool {self.name!r}: parameters must be a JSON schema of type object")
        return self


class ToolsSettings(_Section):
    builtin: list[BuiltinTool] = list(BUILTIN_TOOLS)
    commands: list[CommandTool] = []
    mcp: list[McpServerSettings] = []  # [[tools.mcp]]: tools from MCP servers (docs/mcp.md)

    @model_validator(mode="after")
    def _unique_names(self) -> ToolsSettings:
        seen: set[str] = set(self.builtin)
        for tool in self.commands:
            if tool.name in seen:
                raise ValueError(f"tool name {tool.name!r} is used twice")
            seen.add(tool.name)
        servers = [server.name for server in self.mcp]
        for name in servers:
            if servers.count(name) > 1:
                raise ValueError(f"mcp server name {name!r} is used twice")
        return self


class StateSettings(_Section):
    directory: Path = Path("/var/lib/speakerd")


class ControlSettings(_Section):
    socket: Path = Path("/run/speakerd/control.sock")
    group: str | None = "speakerd"  # None: the daemon's own group


class LoggingSettings(_Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    transcripts: bool = True  # user and model words to the journal; false for privacy


class CameraSettings(_Section):
    enabled: bool = False
    source: Literal["picamera2", "v4l2", "files"] = "picamera2"
    device: str = "/dev/video0"  # v4l2 device, or a directory/video file for source "files"
    width: Annotated[int, Field(ge=64, le=4096)] = 640
    height: Annotated[int, Field(ge=64, le=4096)] = 480
    jpeg_quality: Annotated[int, Field(ge=1, le=100)] = 80
    fps: Annotated[float, Field(gt=0, le=5)] = 1.0
    send: Literal["on_look", "always"] = "on_look"
    required: bool = False


class Settings(BaseSettings):
    """The whole configuration. Field order is the order ``check-config`` prints."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
        case_sensitive=False,
    )

    live: LiveSettings = LiveSettings()
    audio: AudioSettings = AudioSettings()
    wakeword: WakewordSettings = WakewordSettings()
    conversation: ConversationSettings = ConversationSettings()
    gpio: GpioSettings = GpioSettings()
    tools: ToolsSettings = ToolsSettings()
    state: StateSettings = StateSettings()
    control: ControlSettings = ControlSettings()
    logging: LoggingSettings = LoggingSettings()
    camera: CameraSettings = CameraSettings()
    clock: ClockSettings = ClockSettings()
    timers: TimersSettings = TimersSettings()
    mqtt: MqttSettings = MqttSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The TOML file arrives as init kwargs (we parse it ourselves for clear errors);
        # the environment wins over it, as an operator expects of an override.
        return (env_settings, init_settings)


