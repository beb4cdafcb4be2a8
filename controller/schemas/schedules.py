"""Recurring schedules and the communes' broadcast policy."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import Field

from controller.schemas.common import Number, Out, PolicyOutcome

if TYPE_CHECKING:
    from controller.services.schedules import Saved


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
    def body(cls, saved: Saved) -> dict[str, Any]:
        from controller.services.schedules import schedule_json  # services import these schemas

        return schedule_json(saved.schedule) | {
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
