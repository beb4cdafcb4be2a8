"""Recurring schedules: save, delete and approve (the rule itself: services/recurrence.py).

Occurrences are never stored: the rule is the truth and every desired-state build
expands it for the horizon. Each occurrence gets the item id
``s{schedule_id}@{UTC yyyymmddThhmmssZ}``, which is stable across rebuilds, edits and
controller restarts, so a station never plays the same occurrence twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from controller.core.errors import NotFound, UserError
from controller.db.models import Device, Media, User, utcnow
from controller.db.models_schedules import Schedule
from controller.db.statuses import (
    DeviceKind,
    ScheduleStatus,
)
from controller.schemas.schedules import ScheduleIn
from controller.services import approval, audit, dispatch, media_library, policy
from controller.services.recurrence import (
    CHECK_WINDOW,
    MAX_CHECKED,
    Occurrence,
    Recurrence,
    wall_time,
)
from controller.services.schedule_conflicts import conflicts
from controller.services.schedule_limits import Limits, check_desired_size, check_rule, check_rule_text
from controller.services.targets import Targets, resolve, stored


# -- saving -----------------------------------------------------------------------------------------
@dataclass
class Saved:
    schedule: Schedule
    device_ids: list[int]
    conflicts: list[dict[str, Any]]
    policy: dict[str, Any]
    approved: bool


def _validate(
    session: Session, req: ScheduleIn, limits: Limits
) -> tuple[Recurrence, dict[str, Media], list[Device]]:
    media = {m.sha256: m for m in session.scalars(select(Media).where(Media.sha256.in_(req.media)))}
    for sha in req.media:
        if sha not in media:
            raise NotFound("media.not_found", sha256=sha)
    media_library.check_usable(list(media.values()))
    check_rule_text(req.rrule)
    rec = Recurrence.of(req.rrule, req.dtstart, req.until, req.exdates, req.timezone)
    check_rule(rec.rule, req.rrule, limits)  # the rule dateutil built, not its text
    devices = resolve(session, req.targets, kind=DeviceKind.SPEAKER)
    if not devices:
        raise UserError(422, "broadcast.no_targets")
    return rec, media, devices


def _apply(session: Session, sc: Schedule, req: ScheduleIn, rec: Recurrence, media: dict[str, Media]) -> None:
    sc.title = req.title
    sc.media = list(req.media)
    sc.duration_s = sum(media[s].duration_s for s in req.media)
    sc.rrule = req.rrule.strip()
    sc.dtstart = wall_time(req.dtstart, rec.tz).isoformat()
    sc.until = rec.until_local.isoformat() if rec.until_local else None
    sc.exdates = sorted(e.isoformat() for e in rec.exdates_local)
    sc.timezone = req.timezone
    sc.targets = stored(session, req.targets)
    sc.priority = req.priority.value
    sc.override_reason = req.override_reason
    sc.updated_at = utcnow()


def save(
    session: Session, req: ScheduleIn, user: User, *, schedule_id: int | None = None,
    now: datetime | None = None, limits: Limits | None = None,
) -> Saved:
    """Create (schedule_id None) or replace a schedule: validate, policy, approval, conflicts.

    `limits`: the settings' schedule limits (schedule_limits.Limits.of(settings))."""
    now = now or datetime.now(UTC)
    limits = limits or Limits.defaults()
    rec, media, devices = _validate(session, req, limits)
    old_devices: list[int] = []
    if schedule_id is None:
        sc = Schedule(created_by=user.id, status=ScheduleStatus.DRAFT)
    else:
        found = session.get(Schedule, schedule_id)
        if found is None or found.status == ScheduleStatus.DELETED:
            raise NotFound("schedule.not_found", id=schedule_id)
        sc = found
        old_targets = Targets.model_validate(sc.targets)
        old_devices = [d.id for d in resolve(session, old_targets, kind=DeviceKind.SPEAKER)]
    _apply(session, sc, req, rec, media)
    upcoming = [Occurrence(t, sc.duration_s) for t in rec.between(now, now + CHECK_WINDOW, MAX_CHECKED)]
    communes = sorted({d.commune_id for d in devices})
    outcome = policy.enforce(
        session, user, communes, upcoming, req.priority, req.override_reason,
        exclude_schedule=schedule_id,
    )
    approved = approval.can_approve(session, user, communes)
    session.add(sc)
    session.flush()
    action = "schedule.create" if schedule_id is None else "schedule.update"
    audit.record(session, user.id, action, "schedule", sc.id, title=sc.title, rrule=sc.rrule,
                 dtstart=sc.dtstart, until=sc.until, targets=sc.targets, priority=sc.priority,
                 stations=len(devices), policy=outcome)
    if outcome.get("status") == "override":
        audit.record(session, user.id, "policy.override", "schedule", sc.id,
                     reason=req.override_reason, rule=outcome.get("rule"))
    if approved:
        sc.status, sc.approved_by, sc.approved_at = "active", user.id, now
        audit.record(session, user.id, "schedule.approve", "schedule", sc.id, automatic=True,
                     why="creator has approval rights for the area")
        check_desired_size(session, devices, limits, now=now)  # active now: in its stations' states
    else:
        sc.status, sc.approved_by, sc.approved_at = ScheduleStatus.DRAFT, None, None
    found_conflicts = conflicts(session, sc, devices, now=now)
    ids = sorted({d.id for d in devices} | set(old_devices))
    dispatch.stations_changed(session, ids)
    return Saved(sc, ids, found_conflicts, outcome, approved)


def delete(session: Session, schedule_id: int, user: User) -> list[int]:
    sc = session.get(Schedule, schedule_id)
    if sc is None or sc.status == ScheduleStatus.DELETED:
        raise NotFound("schedule.not_found", id=schedule_id)
    sc.status = ScheduleStatus.DELETED
    sc.updated_at = utcnow()
    audit.record(session, user.id, "schedule.delete", "schedule", sc.id, title=sc.title)
    ids = [d.id for d in resolve(session, Targets.model_validate(sc.targets), kind=DeviceKind.SPEAKER)]
    dispatch.stations_changed(session, ids)
    return ids


def approve(
    session: Session, schedule_id: int, user: User, *, now: datetime | None = None,
    limits: Limits | None = None,
) -> list[int]:  # fmt: skip
    sc = session.get(Schedule, schedule_id)
    if sc is None or sc.status == ScheduleStatus.DELETED:
        raise NotFound("schedule.not_found", id=schedule_id)
    devices = resolve(session, Targets.model_validate(sc.targets), kind=DeviceKind.SPEAKER)
    approval.require(session, user, {d.commune_id for d in devices})
    if sc.status != ScheduleStatus.ACTIVE:
        now, limits = now or datetime.now(UTC), limits or Limits.defaults()
        check_rule_text(sc.rrule)  # a draft saved before these checks existed
        check_rule(Recurrence.of_schedule(sc).rule, sc.rrule, limits)
        sc.status, sc.approved_by, sc.approved_at = "active", user.id, now
        check_desired_size(session, devices, limits, now=now)
        audit.record(session, user.id, "schedule.approve", "schedule", sc.id, title=sc.title)
    dispatch.stations_changed(session, [d.id for d in devices])
    return [d.id for d in devices]
