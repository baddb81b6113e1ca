"""Time for timers: a wall clock, a monotonic clock and the local time zone, all injectable.

Why two clocks: a timer means "so many seconds from now", which the monotonic clock measures even
when NTP steps the wall clock (a Pi has no RTC, so its first sync is often a jump of hours); an
alarm means "when the wall clock says 07:00 here", which only the wall clock and the zone rules
can say. The boot id tells whether a stored monotonic reading is still meaningful (same boot).
"""

from __future__ import annotations

import logging
import os
import time
import zoneinfo
from datetime import UTC, tzinfo
from pathlib import Path
from typing import Protocol

log = logging.getLogger("speakerd.timers")

LOCALTIME = Path("/etc/localtime")
TIMEZONE_FILE = Path("/etc/timezone")
BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


class Clock(Protocol):
    def wall(self) -> float:
        """Seconds since the epoch (UTC), as time.time()."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never jumps, as time.monotonic() (the asyncio loop's clock)."""
        ...

    def boot_id(self) -> str | None:
        """Identifies this boot: a monotonic reading is comparable only within one."""
        ...


class SystemClock:
    def wall(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def boot_id(self) -> str | None:
        try:
            return BOOT_ID.read_text().strip() or None
        except OSError:
            return None


class FakeClock:
    """A clock tests move by hand: ``advance`` is time passing, ``jump`` is the wall clock set."""

    def __init__(self, wall: float, monotonic: float = 1000.0, boot: str | None = "boot-1") -> None:
        self._wall = wall
        self._mono = monotonic
        self._boot = boot

    def wall(self) -> float:
        return self._wall

    def monotonic(self) -> float:
        return self._mono

    def boot_id(self) -> str | None:
        return self._boot

    def advance(self, seconds: float) -> None:
        self._wall += seconds
        self._mono += seconds

    def jump(self, seconds: float) -> None:
        """The wall clock is set forwards (or backwards); no time passes."""
        self._wall += seconds

    def reboot(self, down_seconds: float, boot: str = "boot-2") -> None:
        """The machine was off for a while: wall time passed, the monotonic clock restarted."""
        self._wall += down_seconds
        self._mono = 10.0
        self._boot = boot


class TimezoneError(ValueError):
    pass


def check_timezone_name(name: str) -> str:
    """The IANA name if the zone database knows it; TimezoneError (one line) otherwise."""
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        raise TimezoneError(
            f"unknown time zone {name!r}; use an IANA name such as 'Europe/Berlin' "
            "(timedatectl list-timezones lists them)") from None
    return name


def system_timezone_name(env: dict[str, str] | None = None, localtime: Path = LOCALTIME,
                         timezone_file: Path = TIMEZONE_FILE) -> str | None:
    """The system's zone name: $TZ, the /etc/localtime link, or /etc/timezone; None if none says."""
    env = dict(os.environ) if env is None else env
    tz = env.get("TZ", "").lstrip(":")
    if tz:
        if tz.startswith("/"):
            localtime = Path(tz)
        else:
            return tz
    try:
        target = str(localtime.resolve(strict=True))
        if "/zoneinfo/" in target:
            return target.split("/zoneinfo/", 1)[1]
    except OSError:
        pass
    try:
        name = timezone_file.read_text().strip()
        return name or None
    except OSError:
        return None


def resolve_timezone(name: str | None, *, env: dict[str, str] | None = None,
                     localtime: Path = LOCALTIME, timezone_file: Path = TIMEZONE_FILE) -> tzinfo:
    """The zone for ``[clock] timezone``; unset means the system's, and UTC if even that is unknown.

    A configured name was validated with the settings; a system zone that the database lacks
    gives one warning and UTC (or the rules in /etc/localtime when they can be read).
    """
    if name is not None:
        return zoneinfo.ZoneInfo(check_timezone_name(name))
    sysname = system_timezone_name(env, localtime, timezone_file)
    if sysname is not None:
        try:
            return zoneinfo.ZoneInfo(check_timezone_name(sysname))
        except TimezoneError:
            pass
    try:
        with localtime.open("rb") as f:
            return zoneinfo.ZoneInfo.from_file(f, key=sysname)
    except (OSError, ValueError):
        pass
    log.warning("cannot tell the system's time zone (%s); alarms use UTC: set [clock] timezone",
                sysname or "no TZ, /etc/localtime or /etc/timezone")
    return UTC
