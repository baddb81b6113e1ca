"""The ``[clock]`` and ``[timers]`` sections (the lead adds them to ``config.Settings``)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator

from speakerd.timers.clock import check_timezone_name


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ClockSettings(_Section):
    # IANA name such as "Europe/Berlin"; unset: the system's ($TZ, /etc/localtime, /etc/timezone)
    timezone: str | None = None

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, v: str | None) -> str | None:
        return None if v is None else check_timezone_name(v)


class TimersSettings(_Section):
    enabled: bool = True  # offer the timer tools to the model
    speak: bool = True  # say a timer's label or a reminder's text after the alarm sound
    alarm_volume: Annotated[int, Field(ge=0, le=100)] = 80  # percent, for the alarm sound
    ring_max_seconds: Annotated[float, Field(gt=0, le=3600)] = 300.0  # rings until dismissed, at most
    max_active: Annotated[int, Field(ge=1, le=500)] = 50  # timers + alarms + reminders at once
    max_timer_seconds: Annotated[int, Field(ge=60, le=7 * 86400)] = 86400  # longest timer
    max_reminder_days: Annotated[int, Field(ge=1, le=3660)] = 366  # furthest reminder ahead
    late_max_minutes: Annotated[int, Field(ge=0, le=7 * 1440)] = 120  # missed while down: ring at start
    wall_check_seconds: Annotated[float, Field(ge=1, le=3600)] = 60.0  # see docs/timers.md
