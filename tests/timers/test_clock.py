"""The time zone: a configured IANA name, or the system's from $TZ, /etc/localtime, /etc/timezone."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from pathlib import Path

import pytest
from pydantic import ValidationError

from speakerd.timers import ClockSettings, TimersSettings, resolve_timezone
from speakerd.timers.clock import system_timezone_name

ZONEINFO = Path("/usr/share/zoneinfo")


def test_configured_name_is_validated() -> None:
    assert ClockSettings(timezone="Europe/Berlin").timezone == "Europe/Berlin"
    assert ClockSettings().timezone is None
    with pytest.raises(ValidationError, match="unknown time zone 'Mars/Olympus'"):
        ClockSettings(timezone="Mars/Olympus")
    with pytest.raises(ValidationError, match="unknown time zone"):
        ClockSettings(timezone="../../etc/passwd")
    with pytest.raises(ValidationError):
        ClockSettings.model_validate({"timezone": "UTC", "zone": "x"})  # extra keys are typos


def test_settings_are_checked() -> None:
    with pytest.raises(ValidationError):
        TimersSettings(alarm_volume=101)
    with pytest.raises(ValidationError):
        TimersSettings(max_active=0)
    s = TimersSettings()
    with pytest.raises(ValidationError):
        s.speak = False  # type: ignore[misc]  # frozen


def test_system_zone_from_tz_then_link_then_file(tmp_path: Path) -> None:
    link = tmp_path / "localtime"
    link.symlink_to(ZONEINFO / "Europe" / "Berlin")
    tzfile = tmp_path / "timezone"
    tzfile.write_text("Asia/Tokyo\n")
    assert system_timezone_name({"TZ": ":America/New_York"}, link, tzfile) == "America/New_York"
    assert system_timezone_name({}, link, tzfile) == "Europe/Berlin"
    assert system_timezone_name({}, tmp_path / "none", tzfile) == "Asia/Tokyo"
    assert system_timezone_name({}, tmp_path / "none", tmp_path / "none") is None


def test_resolve(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    none = tmp_path / "none"
    assert resolve_timezone("Europe/Berlin") == zoneinfo.ZoneInfo("Europe/Berlin")
    assert resolve_timezone(None, env={"TZ": "Europe/London"}, localtime=none,
                            timezone_file=none) == zoneinfo.ZoneInfo("Europe/London")
    # A copied (not linked) /etc/localtime with no name anywhere: its rules are used.
    copy = tmp_path / "localtime"
    copy.write_bytes((ZONEINFO / "Europe" / "Berlin").read_bytes())
    tz = resolve_timezone(None, env={}, localtime=copy, timezone_file=none)
    assert dt.datetime(2026, 7, 1, 12, tzinfo=tz).utcoffset() == dt.timedelta(hours=2)
    # A POSIX TZ string zoneinfo cannot name, and nothing else: UTC, said once.
    assert resolve_timezone(None, env={"TZ": "CET-1CEST"}, localtime=none, timezone_file=none) == dt.UTC
    assert caplog.text.count("alarms use UTC") == 1
