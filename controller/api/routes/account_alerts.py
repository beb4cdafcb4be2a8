"""Where my alarms reach me (issue 20 item 9): the REST twin of the panel page /account/alerts.

GET/PUT /api/v1/account/alerts: the caller's own settings; GET/PUT /api/v1/account/alerts/{user_id}:
anyone's for an admin (user.manage), 403 for everyone else, exactly as the panel (the same use-case
functions, controller/usecases/alerts.py)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from sqlalchemy.orm import Session

from controller.api.deps import current_user, db_session, runtime
from controller.api.params import Id
from controller.db.models import User
from controller.db.models_alerts import UserAlertPrefs
from controller.runtime import Runtime
from controller.schemas.alerts import AlertPrefsCreate, AlertPrefsPublic
from controller.schemas.common import NOT_FOUND
from controller.usecases import alerts

router = APIRouter(prefix="/api/v1", tags=["account"])


def _public(user: User, prefs: UserAlertPrefs | None, critical: list[str]) -> dict[str, Any]:
    p = prefs or UserAlertPrefs(user_id=user.id)
    return {"user_id": user.id, "username": user.username, "phone": p.phone or "",
            "zalo_user_id": p.zalo_user_id or "", "sms": bool(p.sms), "zalo": bool(p.zalo),
            "quiet_start": p.quiet_start or "", "quiet_end": p.quiet_end or "",
            "critical_kinds": list(critical)}  # fmt: skip


def _get(s: Session, caller: User, user_id: int, rt: Runtime) -> dict[str, Any]:
    user, prefs = alerts.get(s, caller, user_id)
    return _public(user, prefs, rt.settings.alarm_critical_kinds)


def _put(s: Session, caller: User, user_id: int, body: AlertPrefsCreate, rt: Runtime) -> dict[str, Any]:
    alerts.save(s, caller, user_id, alerts.AlertPrefsIn(**body.model_dump()))
    s.commit()
    return _get(s, caller, user_id, rt)


@router.get("/account/alerts", response_model=AlertPrefsPublic, response_model_exclude_unset=True)
def my_alerts(user: User = Depends(current_user), s: Session = Depends(db_session),
              rt: Runtime = Depends(runtime)) -> dict[str, Any]:  # fmt: skip
    """My SMS number, Zalo user id, channels and quiet hours (empty when never set)."""
    return _get(s, user, user.id, rt)


@router.put("/account/alerts", response_model=AlertPrefsPublic, response_model_exclude_unset=True)
def set_my_alerts(body: AlertPrefsCreate, user: User = Depends(current_user),
                  s: Session = Depends(db_session),
                  rt: Runtime = Depends(runtime)) -> dict[str, Any]:  # fmt: skip
    return _put(s, user, user.id, body, rt)


@router.get("/account/alerts/{user_id}", response_model=AlertPrefsPublic, response_model_exclude_unset=True,
            responses=NOT_FOUND)
def user_alerts(user_id: Id, user: User = Depends(current_user), s: Session = Depends(db_session),
                rt: Runtime = Depends(runtime)) -> dict[str, Any]:  # fmt: skip
    """Another user's settings: admins only (403 otherwise, also for a user id that does not exist)."""
    return _get(s, user, user_id, rt)


@router.put("/account/alerts/{user_id}", response_model=AlertPrefsPublic, response_model_exclude_unset=True,
            responses=NOT_FOUND)
def set_user_alerts(user_id: Id, body: AlertPrefsCreate, user: User = Depends(current_user),
                    s: Session = Depends(db_session),
                    rt: Runtime = Depends(runtime)) -> dict[str, Any]:  # fmt: skip
    return _put(s, user, user_id, body, rt)
