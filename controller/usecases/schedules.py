"""Recurring schedules: save (create or replace), delete, approve, list and read one.

The caller is checked here for the API and the panel alike: the right to edit schedules,
the new targets and, for an existing schedule, its current targets inside the caller's
area; reads see only schedules reaching the caller's area. Writes queue their stations'
dispatch in the caller's transaction; the caller commits (or rolls back: the panel's
"Kiểm tra" runs the real save and rolls it back).
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from controller.core.permissions import Action, reaching_scope, require_targets_in_scope, visible_schedule
from controller.db.models import User
from controller.db.models_schedules import Schedule
from controller.db.statuses import DeviceKind, ScheduleStatus
from controller.services import schedules
from controller.services.schedule_limits import Limits
from controller.usecases.access import require


def _require_existing_in_scope(session: Session, user: User, schedule_id: int) -> None:
    """Editing or deleting another area's schedule is refused like creating one there."""
    sc = session.get(Schedule, schedule_id)
    if sc is not None:
        require_targets_in_scope(session, user, sc.targets, DeviceKind.SPEAKER)


def save(
    session: Session, user: User, req: schedules.ScheduleIn, *, limits: Limits, schedule_id: int | None = None
) -> schedules.Saved:
    require(user, Action.SCHEDULE_EDIT)
    # a commune operator: own commune only
    require_targets_in_scope(session, user, req.targets, DeviceKind.SPEAKER)
    if schedule_id is not None:
        _require_existing_in_scope(session, user, schedule_id)
    return schedules.save(session, req, user, schedule_id=schedule_id, limits=limits)


def delete(session: Session, user: User, schedule_id: int) -> list[int]:
    require(user, Action.SCHEDULE_EDIT)
    _require_existing_in_scope(session, user, schedule_id)
    return schedules.delete(session, schedule_id, user)


def approve(session: Session, user: User, schedule_id: int, *, limits: Limits) -> list[int]:
    """schedules.approve checks the approval right for every target commune."""
    return schedules.approve(session, schedule_id, user, limits=limits)


def get(session: Session, user: User, schedule_id: int) -> Schedule:
    """Another area's schedule is not found (404)."""
    sc: Schedule = visible_schedule(session, user, schedule_id)
    return sc


def visible(session: Session, user: User, *, include_deleted: bool = False) -> list[Schedule]:
    """The schedules that reach a station in the caller's area, oldest first."""
    q = select(Schedule).order_by(Schedule.id)
    if not include_deleted:
        q = q.where(Schedule.status != ScheduleStatus.DELETED)
    return reaching_scope(session, user, session.scalars(q), lambda sc: sc.targets)
