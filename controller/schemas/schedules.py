"""Recurring schedules and the communes' broadcast policy."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator

from controller.core.config import DEFAULT_TIMEZONE
from controller.db.models_schedules import CommunePolicy, Schedule
from controller.db.statuses import ScheduleStatus
from controller.schemas.common import Number, Out, PolicyOutcome
from controller.schemas.targets import Targets
from protocol.messages import Priority


class SavedSchedule(Protocol):
    """What a save returns (services/schedules.py Saved), as far as its reply needs it."""

    schedule: Schedule
    device_ids: list[int]
    conflicts: list[dict[str, Any]]
    policy: dict[str, Any]


class ScheduleOut(Out):
    id: int
    title: str
    media: list[str] | None = None
    duration_s: Number | None = None
    rrule: str
    dtstart: str | None = None
    until: str | None = None
    exdates: list[str] | None = None
    timezone: str | None = None
    targets: dict[str, Any]
    priority: str
    status: str
    approved: bool
    override_reason: str | None = None
    created_by: int | None = None
    created_at: str | None = None
    approved_by: int | None = None
    approved_at: str | None = None

    @classmethod
    def body(cls, sc: Schedule) -> dict[str, Any]:
        return {
            "id": sc.id, "title": sc.title, "media": sc.media, "duration_s": sc.duration_s,
            "rrule": sc.rrule, "dtstart": sc.dtstart, "until": sc.until, "exdates": sc.exdates,
            "timezone": sc.timezone, "targets": sc.targets, "priority": sc.priority, "status": sc.status,
            "approved": sc.status == ScheduleStatus.ACTIVE, "override_reason": sc.override_reason,
            "created_by": sc.created_by, "created_at": sc.created_at.isoformat() if sc.created_at else None,
            "approved_by": sc.approved_by,
            "approved_at": sc.approved_at.isoformat() if sc.approved_at else None,
        }  # fmt: skip


class ConflictWith(Out):
    type: str
    id: int
    title: str | None = None
    priority: str


class Conflict(Out):
    """Another schedule or broadcast on the same stations at an overlapping time, and who wins."""

    with_: ConflictWith = Field(alias="with")
    at: str
    other_at: str
    stations: list[int]
    resolution: str


class ScheduleSaved(ScheduleOut):
    """POST/PUT /schedules: the schedule, how many stations it reaches, its conflicts, the policy."""

    stations: int
    conflicts: list[Conflict]
    policy: PolicyOutcome | None = None

    @classmethod
    def body(cls, saved: SavedSchedule) -> dict[str, Any]:  # type: ignore[override]
        return ScheduleOut.body(saved.schedule) | {
            "stations": len(saved.device_ids), "conflicts": saved.conflicts, "policy": saved.policy,
        }


class PolicyOut(Out):
    """A commune's broadcast policy; empty lists and nulls: no limit."""

    commune_id: int
    allowed_hours: list[list[str]]
    days: list[int]
    max_minutes_per_session: int | None = None
    max_minutes_per_day: int | None = None
    timezone: str
    updated_at: str | None = None

    @classmethod
    def body(cls, p: CommunePolicy | None, commune_id: int, tz: str = DEFAULT_TIMEZONE) -> dict[str, Any]:
        """The JSON body (also what the audit entry of a change records); no policy yet: no limits."""
        if p is None:
            return {"commune_id": commune_id, "allowed_hours": [], "days": [],
                    "max_minutes_per_session": None, "max_minutes_per_day": None,
                    "timezone": tz}
        return {"commune_id": commune_id, "allowed_hours": p.allowed_hours, "days": p.days,
                "max_minutes_per_session": p.max_minutes_per_session,
                "max_minutes_per_day": p.max_minutes_per_day, "timezone": tz,
                "updated_at": p.updated_at.isoformat() if p.updated_at else None}


# -- requests ------------------------------------------------------------------------------------------
DEFAULT_TZ = DEFAULT_TIMEZONE  # a schedule's zone unless it names one
_HHMM = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$|^24:00$")
DAY_NAMES = {"mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6, "sun": 7,
             "mo": 1, "tu": 2, "we": 3, "th": 4, "fr": 5, "sa": 6, "su": 7}


class ScheduleIn(BaseModel):
    """The contract of POST /api/v1/schedules (PUT takes the same body)."""

    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1, max_length=300)
    media: list[str] = Field(min_length=1, max_length=50)
    rrule: str = Field(min_length=6, max_length=1000)
    dtstart: datetime  # local wall time; an offset, if given, is converted to the zone
    until: datetime | None = None
    exdates: list[datetime] = Field(default_factory=list, max_length=1000)
    targets: Targets
    priority: Priority = Priority.NORMAL
    timezone: str = DEFAULT_TZ
    override_reason: str | None = Field(default=None, max_length=1000)

    @field_validator("media")
    @classmethod
    def _shas(cls, v: list[str]) -> list[str]:
        for sha in v:
            if not re.fullmatch(r"[0-9a-f]{64}", sha):
                raise ValueError(f"not a sha256: {sha[:70]}")
        return v


class PolicyIn(BaseModel):
    """PUT /api/v1/communes/{id}/policy: allowed hours, days, minutes per session and per day."""

    model_config = ConfigDict(extra="forbid")

    allowed_hours: list[tuple[str, str]] = Field(default_factory=list, max_length=24)
    days: list[int | str] = Field(default_factory=list, max_length=7)
    max_minutes_per_session: int | None = Field(default=None, ge=1, le=24 * 60)
    max_minutes_per_day: int | None = Field(default=None, ge=1, le=24 * 60)

    @field_validator("allowed_hours")
    @classmethod
    def _hours(cls, v: list[tuple[str, str]]) -> list[tuple[str, str]]:
        for a, b in v:
            if not (_HHMM.match(a) and _HHMM.match(b)) or a >= b:
                raise ValueError(f"window {a}-{b}: HH:MM, start before end")
        return v

    @field_validator("days")
    @classmethod
    def _days(cls, v: list[int | str]) -> list[int]:
        out: set[int] = set()
        for d in v:
            n = DAY_NAMES.get(d.strip().lower()) if isinstance(d, str) else d
            if n is None or not 1 <= n <= 7:
                raise ValueError(f"day {d!r}: 1..7 (Mon..Sun) or mon..sun")
            out.add(n)
        return sorted(out)  # type: ignore[return-value]
