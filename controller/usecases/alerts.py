"""Who receives alarms on their phone, and how (issue 20 item 9): one user's SMS number, Zalo user
id, channels and quiet hours. A user reads and sets their own; an admin (user.manage) anyone's;
nobody else anyone else's (403, so another area's operator cannot send alarms to their phone)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from controller.core.errors import NotFound, UserError
from controller.core.permissions import Action, can
from controller.db.models import User
from controller.db.models_alerts import UserAlertPrefs
from controller.services import audit
from controller.services.alarms.personal import parse_hhmm

PHONE = re.compile(r"^\+?[0-9]{9,15}$")
ZALO_ID = re.compile(r"^[0-9]{1,64}$")


@dataclass(frozen=True)
class AlertPrefsIn:
    phone: str = ""
    zalo_user_id: str = ""
    sms: bool = False
    zalo: bool = False
    quiet_start: str = ""
    quiet_end: str = ""


def _target(session: Session, caller: User, user_id: int) -> User:
    if user_id != caller.id and not can(caller, Action.USER_MANAGE):
        raise UserError(403, "auth.forbidden")
    user = session.get(User, user_id)
    if user is None:
        raise NotFound("alerts.user_not_found", id=user_id)
    return user


def get(session: Session, caller: User, user_id: int) -> tuple[User, UserAlertPrefs | None]:
    user = _target(session, caller, user_id)
    return user, session.get(UserAlertPrefs, user.id)


def people(session: Session, caller: User) -> list[User]:
    """Whose settings the caller may open: everyone for an admin, else themselves."""
    if can(caller, Action.USER_MANAGE):
        return list(session.scalars(select(User).order_by(User.username)))
    return [caller]


def _checked(values: AlertPrefsIn) -> AlertPrefsIn:
    phone = re.sub(r"[\s.\-()]", "", values.phone)
    zalo_id = values.zalo_user_id.strip()
    if phone and not PHONE.match(phone):
        raise UserError(422, "alerts.bad_phone", value=values.phone[:40])
    if zalo_id and not ZALO_ID.match(zalo_id):
        raise UserError(422, "alerts.bad_zalo_id")
    if values.sms and not phone:
        raise UserError(422, "alerts.sms_needs_phone")
    if values.zalo and not zalo_id:
        raise UserError(422, "alerts.zalo_needs_id")
    start, end = values.quiet_start.strip(), values.quiet_end.strip()
    try:  # parse_hhmm: ValueError for "7h", "25:00", "06:60"
        if bool(start) != bool(end):
            raise ValueError
        parse_hhmm(start), parse_hhmm(end)
    except ValueError:
        raise UserError(422, "alerts.bad_quiet_hours") from None
    norm = [f"{parse_hhmm(v):%H:%M}" if v else "" for v in (start, end)]
    return AlertPrefsIn(phone, zalo_id, values.sms, values.zalo, norm[0], norm[1])


def save(session: Session, caller: User, user_id: int, values: AlertPrefsIn) -> UserAlertPrefs:
    user = _target(session, caller, user_id)
    v = _checked(values)
    prefs = session.get(UserAlertPrefs, user.id) or UserAlertPrefs(user_id=user.id)
    prefs.phone, prefs.zalo_user_id = v.phone or None, v.zalo_user_id or None
    prefs.sms, prefs.zalo = v.sms, v.zalo
    prefs.quiet_start, prefs.quiet_end = v.quiet_start or None, v.quiet_end or None
    session.add(prefs)
    session.flush()
    audit.record(
        session,
        caller.id,
        "user.alert_prefs",
        "user",
        user.id,
        sms=v.sms,
        zalo=v.zalo,
        quiet=f"{v.quiet_start}-{v.quiet_end}" if v.quiet_start else None,
    )
    return prefs
