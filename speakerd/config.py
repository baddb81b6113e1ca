"""Configuration: one TOML file, then ``SPEAKERD_*`` environment overrides, then the API key.

Why it is shaped this way: users edit the file over SSH and a typo must be caught at once (every
model forbids unknown keys), reported in one line that names the file, key, value and rule, and
never turn into a restart loop (exit 78, which the unit lists in RestartPreventExitStatus). The
API key is a secret: it is never read from the TOML file and never printed.
"""

from __future__ import annotations

import os
import re
import stat
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

EX_CONFIG = 78
DEFAULT_CONFIG_PATH = Path("/etc/speakerd/speakerd.toml")
CONFIG_ENV = "SPEAKERD_CONFIG"
ENV_PREFIX = "SPEAKERD_"
CREDENTIAL_NAME = "gemini-api-key"
BROKER_CREDENTIAL_NAME = "speakerd-device-secret"

# Models speakerd knows the options of (reference/live-protocol.md section 7). Another model id is
# accepted with a warning so a new release does not need a new speakerd.
KNOWN_MODELS = (
    "gemini-3.8-live",
    "gemini-3.1-flash-live-preview",
    "gemini-2.5-flash-native-audio-preview-12-2025",
)
BUILTIN_WAKEWORDS = ("alexa", "hey_jarvis", "hey_mycroft", "hey_rhasspy")
BuiltinTool = Literal["set_volume", "end_conversation", "current_time"]
BUILTIN_TOOLS: tuple[BuiltinTool, ...] = ("set_volume", "end_conversation", "current_time")
STATES = (
    "booting",
    "idle",
    "wake",
    "listening",
    "thinking",
    "speaking",
    "muted",
    "offline",
    "error",
)


class _Section(BaseModel):
    """Base of every section: unknown keys are errors, values are checked on assignment too."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)


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
    language: str = "en-US"
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
    preroll_seconds: Annotated[float, Field(ge=0, le=10)] = 2.0
    volume: Annotated[int, Field(ge=0, le=100)] = 70
    earcons: bool = True
    earcon_volume: Annotated[int, Field(ge=0, le=100)] = 60
    earcon_dir: Path | None = None  # WAVs named wake.wav, end.wav, error.wav, mute.wav, unmute.wav
    echo_cancellation: bool = False
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
    resume: bool = True  # keep the conversation across wakes and restarts (2 h handle)


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

    @model_validator(mode="after")
    def _unique_names(self) -> ToolsSettings:
        seen: set[str] = set(self.builtin)
        for tool in self.commands:
            if tool.name in seen:
                raise ValueError(f"tool name {tool.name!r} is used twice")
            seen.add(tool.name)
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
        validate_assignment=True,
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


@dataclass(frozen=True)
class Config:
    """What the daemon runs with: validated settings, where they came from, and the key."""

    settings: Settings
    path: Path
    api_key: SecretStr | None
    api_key_source: str | None  # "credential", "GEMINI_API_KEY", ... never the value
    warnings: tuple[str, ...] = ()


class ConfigError(Exception):
    """Bad configuration: ``lines`` are the one-line problems, ready to print."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines


def config_path(cli_path: str | os.PathLike[str] | None = None) -> Path:
    if cli_path is not None:
        return Path(cli_path)
    env = os.environ.get(CONFIG_ENV)
    return Path(env) if env else DEFAULT_CONFIG_PATH


def read_toml(path: Path) -> dict[str, Any]:
    """Parse the file, turning every way it can be unreadable into one clear line."""
    name = path.name
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError([f"{path}: file not found"]) from None
    except IsADirectoryError:
        raise ConfigError([f"{path}: is a directory, not a TOML file"]) from None
    except PermissionError:
        raise ConfigError([f"{path}: permission denied"]) from None
    except OSError as e:
        raise ConfigError([f"{path}: cannot read ({e.strerror})"]) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError([f"{name}: not UTF-8 text (byte {e.start})"]) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError([f"{name}: malformed TOML: {e}"]) from None


def _rule(err: Mapping[str, Any]) -> str:
    """Pydantic's error as the short rule a person editing the file wants to read."""
    kind = err["type"]
    ctx = err.get("ctx") or {}
    simple = {
        "less_than_equal": "must be <= {le}",
        "less_than": "must be < {lt}",
        "greater_than_equal": "must be >= {ge}",
        "greater_than": "must be > {gt}",
        "too_short": "must have at least {min_length} item(s)",
        "string_pattern_mismatch": "must match {pattern}",
    }
    if kind in simple:
        return simple[kind].format(**ctx)
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required key is missing"
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected', '?')}"
    if kind in ("int_parsing", "int_type", "int_from_float"):
        return "must be a whole number"
    if kind in ("float_parsing", "float_type"):
        return "must be a number"
    if kind in ("bool_parsing", "bool_type"):
        return "must be true or false"
    if kind in ("string_type",):
        return "must be a string"
    if kind in ("list_type", "tuple_type"):
        return "must be a list"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return "must be a table"
    if kind == "value_error":
        return str(ctx.get("error", err["msg"]))
    msg = str(err["msg"])
    return msg[:1].lower() + msg[1:]


_PLAIN_KEY = re.compile(r"[\w-]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _one_line(text: str) -> str:
    """Bad input must not break the one-line-per-problem promise (a key or file name with a newline)."""
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], text)


def _loc(err: Mapping[str, Any]) -> str:
    # Drop pydantic's union-branch tags (e.g. "int", "constrained-int") from the location.
    parts = [
        p if isinstance(p, str) and _PLAIN_KEY.fullmatch(p) else repr(p) if isinstance(p, str) else str(p)
        for p in err["loc"]
        if not (isinstance(p, str) and (p in {"int", "str", "none", "float", "bool"} or "[" in p))
        and not (isinstance(p, str) and p.startswith(("constrained-", "function-")))
    ]
    return ".".join(parts) or "(top level)"


def _show(value: Any) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    if isinstance(value, dict):
        text = "a table"
    return text if len(text) <= 60 else text[:57] + "..."


def _env_name(loc: str) -> str | None:
    """The environment variable that set this key, if one did."""
    name = ENV_PREFIX + loc.replace(".", "__").upper()
    for key in os.environ:
        upper = key.upper()
        matches = upper == name or name.startswith(upper + "__")
        if matches and upper.startswith(ENV_PREFIX) and upper != CONFIG_ENV:
            return key
    return None


def format_errors(source: str, exc: ValidationError) -> list[str]:
    lines: list[str] = []
    seen: set[str] = set()
    errors = exc.errors()
    # A union (e.g. a device name or index) fails once per branch: keep the most specific rule.
    type_only = {"string_type", "int_type", "int_parsing", "float_type", "none_required"}
    specific = {_loc(e) for e in errors if e["type"] not in type_only}
    for err in errors:
        loc = _loc(err)
        if err["type"] in type_only and loc in specific:
            continue
        rule = _rule(err)
        where = _env_name(loc) or source
        line = f"{where}: {loc}: {rule}"
        if err["type"] not in ("missing", "extra_forbidden") and "input" in err:
            value = err["input"]
            if not isinstance(value, dict | list) or err["type"] in ("dict_type", "list_type"):
                line += f" (got {_show(value)})"
        elif err["type"] == "extra_forbidden":
            line = f"{where}: {loc}: unknown key"
        line = _one_line(line)
        if line not in seen:
            seen.add(line)
            lines.append(line)
    return lines


def _read_secret_file(path: Path) -> str:
    return path.read_text(encoding="utf-8").strip()


def load_api_key(env: Mapping[str, str] | None = None) -> tuple[SecretStr | None, str | None]:
    """The Gemini API key: systemd credential first, then GEMINI_API_KEY, then GOOGLE_API_KEY."""
    env = os.environ if env is None else env
    cred_dir = env.get("CREDENTIALS_DIRECTORY")
    if cred_dir:
        cred = Path(cred_dir) / CREDENTIAL_NAME
        try:
            value = _read_secret_file(cred)
        except FileNotFoundError:
            value = ""
        except OSError as e:
            raise ConfigError([f"credential {CREDENTIAL_NAME}: cannot read ({e.strerror})"]) from None
        if value:
            return SecretStr(value), "credential"
    for name in ("GEMINI_API_KEY", "GOOGLE_API_KEY"):
        value = env.get(name, "").strip()
        if value:
            return SecretStr(value), name
    return None, None


def _permission_warnings(path: Path) -> list[str]:
    """Config is world-readable by design, but it must not be writable by others."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return []
    if mode & stat.S_IWOTH:
        return [f"{path}: writable by every user; run: chmod o-w {path}"]
    return []


def _credential_warnings(env: Mapping[str, str] | None) -> list[str]:
    """The key must be readable by speakerd (and root) alone.

    systemd before 257 hands it over as the service user's 0400; 257 as root:root 0440 with an
    ACL entry for the service user, which is just as private: the ACL is checked, not just the bits.
    """
    from speakerd.acl import other_readers

    cred_dir = (os.environ if env is None else env).get("CREDENTIALS_DIRECTORY")
    if not cred_dir:
        return []
    cred = Path(cred_dir) / CREDENTIAL_NAME
    try:
        readers = other_readers(cred)
    except OSError:
        return []
    if readers:
        return [f"credential {CREDENTIAL_NAME}: readable by {', '.join(readers)}; make the key file "
                f"readable by its owner only (chmod 600, and setfacl -b if it has an ACL): {cred}"]
    return []


def load(path: Path | str | None = None, *, env: Mapping[str, str] | None = None) -> Config:
    """Read, validate and return the configuration, or raise ConfigError with one line per problem."""
    p = config_path(path)
    data = read_toml(p)
    try:
        settings = Settings(**data)
    except ValidationError as e:
        raise ConfigError(format_errors(p.name, e)) from None
    key, source = load_api_key(env)
    warnings = _permission_warnings(p)
    if source == "credential":
        warnings += _credential_warnings(env)
    model = settings.live.model
    if model.removeprefix("models/") not in KNOWN_MODELS:
        warnings.append(
            f"{p.name}: live.model: {model!r} is not a model speakerd knows; "
            f"model-specific options are sent as configured"
        )
    return Config(settings=settings, path=p, api_key=key, api_key_source=source,
                  warnings=tuple(warnings))


def effective_toml(cfg: Config) -> str:
    """The effective configuration as TOML, the key masked, for ``check-config``."""
    data = cfg.settings.model_dump(mode="json", exclude_none=False)
    out: list[str] = [f"# effective configuration from {cfg.path}"]
    if cfg.api_key is None:
        out.append("# api key: not set (credential gemini-api-key, GEMINI_API_KEY or GOOGLE_API_KEY)")
    else:
        out.append(f"# api key: ********** (from {cfg.api_key_source})")
    _emit_table(out, [], data)
    return "\n".join(out) + "\n"


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k} = {_toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(type(v))


def _emit_table(out: list[str], prefix: list[str], data: Mapping[str, Any]) -> None:
    scalars = {k: v for k, v in data.items() if not isinstance(v, dict) or not v or prefix == []}
    tables = {k: v for k, v in data.items() if k not in scalars}
    if prefix:
        out.append("")
        out.append(f"[{'.'.join(prefix)}]")
    for k, v in scalars.items():
        if isinstance(v, dict) and prefix == []:
            tables[k] = v
            continue
        if v is None:
            out.append(f"# {k} = (unset)")
        else:
            out.append(f"{k} = {_toml_value(v)}")
    for k, v in tables.items():
        _emit_table(out, [*prefix, k], v)
