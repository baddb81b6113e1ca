"""Loading the configuration: the file, the environment, the credential, one line per problem.

Why it is shaped this way: users edit the file over SSH and a typo must be caught at once,
reported in one line that names the file, key, value and rule, and never turn into a restart
loop (exit 78, which the unit lists in RestartPreventExitStatus). The API key is a secret: it is
never read from the TOML file and never printed.
"""

from __future__ import annotations

import os
import re
import stat
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import SecretStr, ValidationError

from speakerd import models
from speakerd.config import toml
from speakerd.config.sections import ENV_PREFIX, Settings
from speakerd.home.settings import mqtt_credential_warnings

EX_CONFIG = 78
DEFAULT_CONFIG_PATH = Path("/etc/speakerd/speakerd.toml")
CONFIG_ENV = "SPEAKERD_CONFIG"
CREDENTIAL_NAME = "gemini-api-key"
BROKER_CREDENTIAL_NAME = "speakerd-device-secret"


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
    if settings.mqtt.enabled:
        warnings += mqtt_credential_warnings(env)
    model = settings.live.model
    if not models.known(model):
        warnings.append(
            f"{p.name}: live.model: {model!r} is not a model speakerd knows; "
            f"model-specific options are sent as configured"
        )
    return Config(settings=settings, path=p, api_key=key, api_key_source=source,
                  warnings=tuple(warnings))


def effective_toml(cfg: Config) -> str:
    """The effective configuration as TOML, the key masked, for ``check-config``."""
    head = [f"# effective configuration from {cfg.path}"]
    if cfg.api_key is None:
        head.append("# api key: not set (credential gemini-api-key, GEMINI_API_KEY or GOOGLE_API_KEY)")
    else:
        head.append(f"# api key: ********** (from {cfg.api_key_source})")
    data = cfg.settings.model_dump(mode="json", exclude_none=False)
    return "\n".join(head) + "\n" + toml.dumps(data, show_unset=True)
