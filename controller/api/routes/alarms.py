"""Alarms: list (any signed-in user), acknowledge (operators, technicians), resolve (technicians),
each limited to the stations inside the user's area (controller/core/permissions.py)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from sqlalchemy.orm import Session

from controller.api.deps import current_user, db_session, require_role, runtime
from controller.api.params import Id, Limit, QueryId
from controller.core.errors import UserError
from controller.core.permissions import Action, communes_in_scope, covers, roles_with
from controller.db.models import Device, User
from controller.db.models_health import Alarm
from controller.runtime import Runtime
from controller.schemas.alarms import AlarmAction, AlarmOut
from controller.schemas.common import NOT_FOUND
from controller.services.alarms import engine

router = APIRouter(prefix="/api/v1", tags=["alarms"])

# Whoever runs the stations (technicians) or speaks through them (operators) may acknowledge.
ACK_ROLES = tuple(sorted(set(roles_with(Action.DEVICE_MANAGE)) | set(roles_with(Action.BROADCAST_SEND))))
RESOLVE_ROLES = roles_with(Action.DEVICE_MANAGE)


def _in_scope(s: Session, user: User, alarm_id: int) -> None:
    alarm = s.get(Alarm, alarm_id)
    device = s.get(Device, alarm.device_id) if alarm else None
    if device is not None and not covers(s, user, device.commune_id):
        raise UserError(403, "auth.forbidden")


@router.get("/alarms", response_model=list[AlarmOut], response_model_exclude_unset=True)
def list_alarms(
    state: str | None = None,
    device_id: QueryId | None = None,
    kind: str | None = None,
    limit: Limit = 500,
    user: User = Depends(current_user),
    s: Session = Depends(db_session),
) -> list[dict[str, Any]]:
    """Newest first. state: open | acknowledged | active (open or acknowledged) | resolved."""
    return engine.list_alarms(s, state=state, device_id=device_id, kind=kind, limit=limit,
                              communes=communes_in_scope(s, user))  # fmt: skip


@router.post("/alarms/{alarm_id}/ack", response_model=AlarmOut, response_model_exclude_unset=True,
             responses=NOT_FOUND)
def acknowledge(
    alarm_id: Id,
    body: AlarmAction | None = None,
    user: User = Depends(require_role(*ACK_ROLES)),
    s: Session = Depends(db_session),
    rt: Runtime = Depends(runtime),
) -> dict[str, Any]:
    _in_scope(s, user, alarm_id)
    alarm, note = engine.acknowledge(s, alarm_id, user, body.note if body else None)
    s.commit()
    if note is not None and rt.notifications is not None:
        rt.notifications.publish([note])
    return engine.to_json(alarm)


@router.post("/alarms/{alarm_id}/resolve", response_model=AlarmOut, response_model_exclude_unset=True,
             responses=NOT_FOUND)
def resolve(
    alarm_id: Id,
    body: AlarmAction | None = None,
    user: User = Depends(require_role(*RESOLVE_ROLES)),
    s: Session = Depends(db_session),
    rt: Runtime = Depends(runtime),
) -> dict[str, Any]:
    _in_scope(s, user, alarm_id)
    alarm, note = engine.resolve_manually(s, alarm_id, user, body.note if body else None)
    s.commit()
    if note is not None and rt.notifications is not None:
        rt.notifications.publish([note])
    return engine.to_json(alarm)
