"""Recurring schedules: create, edit, delete, approve, preview occurrences (docs/schedules.md)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter, Depends, Request
from sqlalchemy.orm import Session

from controller.api.deps import current_user, db_session, lang, require_role, runtime
from controller.api.params import Id
from controller.api.refusals import policy_refusal
from controller.core.errors import UserError
from controller.core.permissions import (
    Action,
    roles_with,
)
from controller.db.models import User
from controller.db.models_schedules import Schedule
from controller.runtime import Runtime
from controller.schemas.common import NOT_FOUND, POLICY_REFUSAL, StatusOut
from controller.schemas.schedules import ScheduleOut, ScheduleSaved
from controller.services import recurrence, schedules
from controller.services.policy import PolicyViolation
from controller.services.schedule_limits import Limits
from controller.usecases import schedules as usecase

router = APIRouter(prefix="/api/v1", tags=["schedules"])
EDITORS = roles_with(Action.SCHEDULE_EDIT)


@router.post("/schedules", status_code=201, response_model=ScheduleSaved, response_model_exclude_unset=True,
             responses=POLICY_REFUSAL)
def create_schedule(
    req: schedules.ScheduleIn, request: Request, user: User = Depends(require_role(*EDITORS)),
    s: Session = Depends(db_session), rt: Runtime = Depends(runtime),
) -> Any:
    try:
        saved = usecase.save(s, user, req, limits=Limits.of(rt.settings))  # checks the right and the area
    except PolicyViolation as exc:
        return policy_refusal(exc, lang(request))
    s.commit()
    return ScheduleSaved.body(saved)


@router.put("/schedules/{schedule_id}", response_model=ScheduleSaved, response_model_exclude_unset=True,
            responses=POLICY_REFUSAL | NOT_FOUND)
def update_schedule(
    schedule_id: Id, req: schedules.ScheduleIn, request: Request,
    user: User = Depends(require_role(*EDITORS)), s: Session = Depends(db_session),
    rt: Runtime = Depends(runtime),
) -> Any:
    try:
        saved = usecase.save(s, user, req, schedule_id=schedule_id, limits=Limits.of(rt.settings))
    except PolicyViolation as exc:
        return policy_refusal(exc, lang(request))
    s.commit()
    return ScheduleSaved.body(saved)


@router.delete("/schedules/{schedule_id}", response_model=StatusOut, response_model_exclude_unset=True,
               responses=NOT_FOUND)
def delete_schedule(
    schedule_id: Id, user: User = Depends(require_role(*EDITORS)), s: Session = Depends(db_session),
    rt: Runtime = Depends(runtime),
) -> dict[str, Any]:
    usecase.delete(s, user, schedule_id)  # another area's schedule: refused
    s.commit()
    return {"id": schedule_id, "status": "deleted"}


@router.post("/schedules/{schedule_id}/approve", response_model=ScheduleOut,
             response_model_exclude_unset=True, responses=NOT_FOUND)
def approve_schedule(
    schedule_id: Id, user: User = Depends(current_user), s: Session = Depends(db_session),
    rt: Runtime = Depends(runtime),
) -> dict[str, Any]:
    usecase.approve(s, user, schedule_id, limits=Limits.of(rt.settings))
    s.commit()
    sc = s.get(Schedule, schedule_id)
    assert sc is not None
    return ScheduleOut.body(sc)


@router.get("/schedules", response_model=list[ScheduleOut], response_model_exclude_unset=True)
def list_schedules(
    include_deleted: bool = False, user: User = Depends(current_user), s: Session = Depends(db_session)
) -> list[dict[str, Any]]:
    """The schedules that reach a station in the caller's area."""
    return [ScheduleOut.body(sc) for sc in usecase.visible(s, user, include_deleted=include_deleted)]


@router.get("/schedules/{schedule_id}", response_model=ScheduleOut, response_model_exclude_unset=True,
            responses=NOT_FOUND)
def get_schedule(
    schedule_id: Id, user: User = Depends(current_user), s: Session = Depends(db_session)
) -> dict[str, Any]:
    return ScheduleOut.body(usecase.get(s, user, schedule_id))  # another area's: 404


@router.get("/schedules/{schedule_id}/occurrences", response_model=list[str],
            response_model_exclude_unset=True, responses=NOT_FOUND)
def schedule_occurrences(
    schedule_id: Id, request: Request, user: User = Depends(current_user), s: Session = Depends(db_session),
) -> list[str]:
    """ISO-8601 instants with the schedule's local offset, in [from, to]."""
    sc = usecase.get(s, user, schedule_id)
    rec = recurrence.Recurrence.of_schedule(sc)
    try:
        start = _aware(request.query_params["from"], rec)
        end = _aware(request.query_params["to"], rec)
    except (KeyError, ValueError):
        raise UserError(422, "schedule.bad_window") from None
    if end < start or end - start > timedelta(days=800):
        raise UserError(422, "schedule.bad_window")
    return [t.astimezone(rec.tz).isoformat() for t in rec.between(start, end, 5000)]


def _aware(text: str, rec: recurrence.Recurrence) -> datetime:
    if "T" in text and " " in text:  # an unencoded '+' of the offset arrives as a space
        text = text.replace(" ", "+")
    dt = datetime.fromisoformat(text)
    return dt if dt.tzinfo else dt.replace(tzinfo=rec.tz)
