"""Configuration: defaults, overrides, the key, and one clear line for every kind of bad input."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from speakerd import config
from speakerd.config import toml

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "config" / "speakerd.toml"


def write(tmp_path: Path, text: str, name: str = "speakerd.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def problems(path: Path, env: dict[str, str] | None = None, monkeypatch: pytest.MonkeyPatch | None = None) -> list[str]:
    with pytest.raises(config.ConfigError) as info:
        config.load(path, env=env or {})
    return info.value.lines


def test_empty_file_gives_every_default(tmp_path: Path) -> None:
    cfg = config.load(write(tmp_path, ""), env={})
    s = cfg.settings
    assert s.live.model == "gemini-3.8-live"
    assert s.live.compression.enabled is True
    assert s.live.vad.silence_duration_ms == 700
    assert s.audio.volume == 70 and s.audio.preroll_seconds == 2.0 and s.audio.frame_ms == 80
    assert s.wakeword.models == ["hey_jarvis"] and s.wakeword.refractory_seconds == 2.0
    assert s.conversation.follow_up_seconds == 8.0
    assert s.gpio.led_profile == "none" and s.gpio.enabled == "auto"
    assert s.tools.builtin == ["set_volume", "end_conversation", "forget_conversation", "current_time"]
    assert s.state.directory == Path("/var/lib/speakerd")
    assert s.camera.enabled is False
    assert cfg.api_key is None


def test_example_file_is_exactly_the_defaults() -> None:
    cfg = config.load(EXAMPLE, env={})
    assert cfg.settings == config.Settings()


def _leaf_keys(model: type[BaseModel], prefix: str = "") -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for name, field in model.model_fields.items():
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            out += _leaf_keys(ann, f"{prefix}{name}.")
        else:
            out.append((prefix.rstrip("."), name))
    return out


def test_example_file_documents_every_key() -> None:
    text = EXAMPLE.read_text()
    sections = re.split(r"^\[([a-z_.]+)\]\s*$", text, flags=re.M)
    by_section = {sections[i]: sections[i + 1] for i in range(1, len(sections), 2)}
    missing = []
    for section, key in _leaf_keys(config.Settings):
        body = by_section.get(section, "")
        if not re.search(rf"^#? ?{key} = ", body, flags=re.M):
            missing.append(f"{section}.{key}")
    assert missing == []


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, "[audio]\nvolume = 30\n[live.vad]\nbarge_in = true\n")
    monkeypatch.setenv("SPEAKERD_AUDIO__VOLUME", "45")
    monkeypatch.setenv("SPEAKERD_LIVE__VAD__BARGE_IN", "false")
    cfg = config.load(path, env={})
    assert cfg.settings.audio.volume == 45
    assert cfg.settings.live.vad.barge_in is False


def test_bad_environment_value_names_the_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPEAKERD_AUDIO__VOLUME", "loud")
    assert problems(write(tmp_path, "")) == [
        "SPEAKERD_AUDIO__VOLUME: audio.volume: must be a whole number (got 'loud')"
    ]


def test_config_path_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, "[audio]\nvolume = 12\n", "other.toml")
    monkeypatch.setenv("SPEAKERD_CONFIG", str(path))
    assert config.load(None, env={}).settings.audio.volume == 12


def test_key_from_credential_first(tmp_path: Path) -> None:
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "gemini-api-key").write_text("cred-key-123\n")
    env = {"CREDENTIALS_DIRECTORY": str(creds), "GEMINI_API_KEY": "env-key-456"}
    cfg = config.load(write(tmp_path, ""), env=env)
    assert cfg.api_key is not None and cfg.api_key.get_secret_value() == "cred-key-123"
    assert cfg.api_key_source == "credential"


@pytest.mark.parametrize(
    ("env", "source", "value"),
    [
        ({"GEMINI_API_KEY": "gk-1234"}, "GEMINI_API_KEY", "gk-1234"),
        ({"GOOGLE_API_KEY": "ok-1234"}, "GOOGLE_API_KEY", "ok-1234"),
        ({"GEMINI_API_KEY": "gk-1234", "GOOGLE_API_KEY": "ok-1234"}, "GEMINI_API_KEY", "gk-1234"),
        ({"CREDENTIALS_DIRECTORY": "/nonexistent", "GOOGLE_API_KEY": "ok-1234"}, "GOOGLE_API_KEY", "ok-1234"),
    ],
)
def test_key_from_environment(tmp_path: Path, env: dict[str, str], source: str, value: str) -> None:
    cfg = config.load(write(tmp_path, ""), env=env)
    assert cfg.api_key is not None and cfg.api_key.get_secret_value() == value
    assert cfg.api_key_source == source


@pytest.mark.parametrize(
    ("toml", "line"),
    [
        ("[audio]\nvolume = 170\n", "speakerd.toml: audio.volume: must be <= 100 (got 170)"),
        ("[audio]\nvolume = -1\n", "speakerd.toml: audio.volume: must be >= 0 (got -1)"),
        ("[audio]\nvolume = 'loud'\n", "speakerd.toml: audio.volume: must be a whole number (got 'loud')"),
        ("[audio]\nearcons = 'yes please'\n", "speakerd.toml: audio.earcons: must be true or false (got 'yes please')"),
        ("[audio]\ninput_device = -2\n", "speakerd.toml: audio.input_device: must be >= 0 (got -2)"),
        ("[audio]\nvolum = 3\n", "speakerd.toml: audio.volum: unknown key"),
        ("[audoi]\nvolume = 3\n", "speakerd.toml: audoi: unknown key"),
        ("[live.vad]\nbargein = true\n", "speakerd.toml: live.vad.bargein: unknown key"),
        ("[live.vad]\nstart_sensitivity = 'medium'\n",
         "speakerd.toml: live.vad.start_sensitivity: must be one of 'low' or 'high' (got 'medium')"),
        ("[live]\nendpoint = 'ftp://x'\n", "speakerd.toml: live.endpoint: must be a URL starting with https:// (got 'ftp://x')"),
        ("[live.compression]\ntrigger_tokens = 100\ntarget_tokens = 200\n",
         "speakerd.toml: live.compression: target_tokens must be below trigger_tokens (got 200 >= 100)"),
        ("[wakeword]\nmodels = []\n", "speakerd.toml: wakeword.models: must have at least 1 item(s)"),
        ("[wakeword]\nthresholds = {alexa = 0.3}\n",
         "speakerd.toml: wakeword: thresholds name models not in wakeword.models: alexa"),
        ("[wakeword]\nthreshold = 1.5\n", "speakerd.toml: wakeword.threshold: must be < 1.0 (got 1.5)"),
        ("[gpio]\nled_profile = 'pwm'\n", "speakerd.toml: gpio: led_profile 'pwm' needs led_pin"),
        ("[gpio]\nbutton_pin = 99\n", "speakerd.toml: gpio.button_pin: must be <= 53 (got 99)"),
        ("[gpio.patterns.sleeping]\nmode = 'on'\n",
         "speakerd.toml: gpio.patterns: unknown state sleeping; states are booting, idle, wake, listening, "
         "thinking, speaking, muted, offline, error, alarm"),
        ("[[tools.commands]]\nname = 'x'\ndescription = 'd'\n",
         "speakerd.toml: tools.commands.0: tool 'x' needs exactly one of argv or url"),
        ("[[tools.commands]]\nname = 'bad name'\ndescription = 'd'\nargv = ['true']\n",
         "speakerd.toml: tools.commands.0.name: must match ^[a-zA-Z_][a-zA-Z0-9_]{0,63}$ (got 'bad name')"),
        ("[[tools.commands]]\nname = 'set_volume'\ndescription = 'd'\nargv = ['true']\n",
         "speakerd.toml: tools: tool name 'set_volume' is used twice"),
        ("audio = 3\n", "speakerd.toml: audio: must be a table (got 3)"),
    ],
)
def test_each_bad_value_is_one_clear_line(tmp_path: Path, toml: str, line: str) -> None:
    assert problems(write(tmp_path, toml)) == [line]


def test_several_problems_give_one_line_each(tmp_path: Path) -> None:
    lines = problems(write(tmp_path, "[audio]\nvolume = 170\nvolum = 1\n[live]\nvoice = 3\n"))
    assert sorted(lines) == [
        "speakerd.toml: audio.volum: unknown key",
        "speakerd.toml: audio.volume: must be <= 100 (got 170)",
        "speakerd.toml: live.voice: must be a string (got 3)",
    ]


def test_keys_with_control_characters_stay_on_one_line(tmp_path: Path) -> None:
    """Found by the generated-config test: a quoted key holding a newline split its problem in two."""
    lines = problems(write(tmp_path, '[audio]\n"\\n" = []\n"ok\\tkey" = 1\n'))
    assert sorted(lines) == [
        "speakerd.toml: audio.'\\n': unknown key",
        "speakerd.toml: audio.'ok\\tkey': unknown key",
    ]


def test_malformed_toml(tmp_path: Path) -> None:
    (line,) = problems(write(tmp_path, "[audio\nvolume = 3\n"))
    assert line.startswith("speakerd.toml: malformed TOML: ")
    assert "line 1" in line


def test_missing_and_unreadable_files(tmp_path: Path) -> None:
    assert problems(tmp_path / "nope.toml") == [f"{tmp_path / 'nope.toml'}: file not found"]
    assert problems(tmp_path) == [f"{tmp_path}: is a directory, not a TOML file"]
    binary = tmp_path / "bin.toml"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    assert problems(binary) == ["bin.toml: not UTF-8 text (byte 0)"]


def test_world_writable_config_is_warned_about(tmp_path: Path) -> None:
    path = write(tmp_path, "")
    path.chmod(0o666)
    cfg = config.load(path, env={})
    assert any("writable by every user" in w for w in cfg.warnings)


def test_unknown_model_is_a_warning_not_an_error(tmp_path: Path) -> None:
    cfg = config.load(write(tmp_path, "[live]\nmodel = 'gemini-9-live'\n"), env={})
    assert any("not a model speakerd knows" in w for w in cfg.warnings)


def test_effective_toml_round_trips_and_masks_the_key(tmp_path: Path) -> None:
    path = write(tmp_path, "[audio]\nvolume = 33\n[gpio]\nled_profile='rgb'\nrgb_pins=[5,6,13]\n"
                 "[gpio.patterns.idle]\nmode='off'\n")
    cfg = config.load(path, env={"GEMINI_API_KEY": "super-secret-value"})
    text = config.effective_toml(cfg)
    assert "super-secret-value" not in text
    assert "********** (from GEMINI_API_KEY)" in text
    again = config.load(write(tmp_path, text, "again.toml"), env={})
    assert again.settings == cfg.settings


# Hypothesis: whatever the file holds, load() ends in a Config or a ConfigError, never a traceback.

_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
)
_values = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=6)
_known = [(s, k) for s, k in _leaf_keys(config.Settings)]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    picks=st.lists(st.tuples(st.sampled_from(_known), _values), max_size=6),
    junk=st.dictionaries(st.text(min_size=1, max_size=6), _values, max_size=2),
)
def test_generated_configs_never_raise_anything_else(tmp_path: Path, picks: list[tuple[tuple[str, str], object]], junk: dict[str, object]) -> None:
    data: dict[str, dict[str, object]] = {}
    for (section, key), value in picks:
        data.setdefault(section or "live", {})[key] = value
    if junk:
        data.setdefault("audio", {}).update(junk)
    path = tmp_path / "gen.toml"
    path.write_text(toml.dumps(data))
    try:
        config.load(path, env={})
    except config.ConfigError as e:
        assert e.lines
        for line in e.lines:
            assert "\n" not in line and line.startswith("gen.toml: "), line


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_raise_anything_else(tmp_path: Path, blob: bytes) -> None:
    path = tmp_path / "blob.toml"
    path.write_bytes(blob)
    try:
        config.load(path, env={})
    except config.ConfigError as e:
        assert len(e.lines) >= 1


def test_check_config_cli(tmp_path: Path) -> None:
    good = subprocess.run(
        [sys.executable, "-m", "speakerd", "check-config", "--config", str(EXAMPLE)],
        capture_output=True, text=True, env={"PATH": "/usr/bin:/bin", "GEMINI_API_KEY": "abcd-secret-9"},
    )
    assert good.returncode == 0, good.stderr
    assert "[audio]" in good.stdout and "abcd-secret-9" not in good.stdout + good.stderr
    bad = write(tmp_path, "[audio]\nvolume = 170\n")
    res = subprocess.run([sys.executable, "-m", "speakerd", "check-config", "--config", str(bad)],
                         capture_output=True, text=True)
    assert res.returncode == 78
    assert res.stderr == "speakerd.toml: audio.volume: must be <= 100 (got 170)\n"
    assert res.stdout == ""
    for args in (["--config", str(tmp_path / "missing.toml")], ["--config", str(write(tmp_path, "[x", "m.toml"))]):
        res = subprocess.run([sys.executable, "-m", "speakerd", "check-config", *args], capture_output=True, text=True)
        assert res.returncode == 78 and len(res.stderr.splitlines()) == 1 and "Traceback" not in res.stderr


def test_version_and_usage() -> None:
    from speakerd import __version__

    res = subprocess.run([sys.executable, "-m", "speakerd", "--version"], capture_output=True, text=True)
    assert res.returncode == 0 and res.stdout.strip() == f"speakerd {__version__}"
    res = subprocess.run([sys.executable, "-m", "speakerd"], capture_output=True, text=True)
    assert res.returncode == 2 and "check-config" in res.stderr


_toml_keys = st.text(min_size=1, max_size=8)
_toml_scalars = st.one_of(st.booleans(), st.integers(-10**9, 10**9), st.text(max_size=12),
                          st.floats(allow_nan=False, allow_infinity=False))
_toml_docs = st.recursive(
    st.dictionaries(_toml_keys, _toml_scalars | st.lists(_toml_scalars, max_size=3), max_size=4),
    lambda inner: st.dictionaries(_toml_keys, inner | st.lists(inner, min_size=1, max_size=2), max_size=3),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None)
@given(_toml_docs)
def test_the_toml_writer_round_trips(doc: dict[str, object]) -> None:
    """Whatever the settings, the rig or a test hold, tomllib reads back exactly what was written."""
    import tomllib

    assert tomllib.loads(toml.dumps(doc)) == doc


def test_check_config_and_the_connect_config_agree_on_models(tmp_path: Path) -> None:
    """One capability table: a model the connect config knows is not 'unknown' to check-config,
    and an option the model rejects is named by check-config, before any conversation."""
    from speakerd import models

    for model in models.MODELS:
        p = tmp_path / "m.toml"
        p.write_text(f'[live]\nmodel = "{model}"\n')
        assert not [w for w in config.load(p, env={}).warnings if "not a model speakerd knows" in w], model
    p = tmp_path / "opts.toml"
    p.write_text('[live]\nmodel = "gemini-3.8-live"\naffective_dialog = true\n')
    res = subprocess.run([sys.executable, "-m", "speakerd", "check-config", "-q", "--config", str(p)],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0
    assert "warning: opts.toml: live.affective_dialog is not supported by gemini-3.8-live; ignored" in res.stderr


def test_language_is_optional_checked_and_said_by_check_config(tmp_path: Path) -> None:
    from speakerd.live.connect_config import build_connect_config, connect_config_warnings

    assert config.LiveSettings().language is None
    assert build_connect_config(config.LiveSettings()).speech_config.language_code is None  # type: ignore[union-attr]
    de = config.LiveSettings(language="de-DE")
    assert build_connect_config(de).speech_config.language_code == "de-DE"  # type: ignore[union-attr]
    odd = config.LiveSettings(language="gd-GB")  # well formed, not a language the Live API lists
    assert build_connect_config(odd).speech_config.language_code is None  # type: ignore[union-attr]
    assert connect_config_warnings(odd) == [
        "live.language = 'gd-GB' (not a language the Live API lists) is not supported by gemini-3.8-live; ignored"]
    bad = tmp_path / "bad.toml"
    bad.write_text('[live]\nlanguage = "english"\n')
    with pytest.raises(config.ConfigError) as e:
        config.load(bad, env={})
    assert e.value.lines == ["bad.toml: live.language: must be a BCP-47 language code such as en-US or de-DE "
                             "(got 'english')"]
    for text, said in (("", "language: the model's choice"), ('[live]\nlanguage = "fr-FR"\n', "language: fr-FR")):
        p = tmp_path / "lang.toml"
        p.write_text(text)
        res = subprocess.run([sys.executable, "-m", "speakerd", "check-config", "--config", str(p)],
                             capture_output=True, text=True, timeout=60)
        assert res.returncode == 0 and res.stdout.startswith(f"# {said}"), res.stdout[:200]
