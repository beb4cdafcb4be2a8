"""Broadcast policy per commune: allowed hours, days, minutes per session and per day.

A schedule or broadcast outside the policy of any commune it reaches is refused with
the first rule it breaks, unless the caller may override (`policy.edit` for every one of
those communes) and gives a reason; the override is audited. Emergency is exempt.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from controller.core.config import DEFAULT_TIMEZONE
from controller.core.errors import NotFound, UserError
from controller.core.permissions import Action, can_act_on_area
from controller.db.models import Area, Broadcast, Delivery, Device, User
from controller.db.models_schedules import CommunePolicy, Schedule
from controller.db.statuses import PLANNED_BROADCAST, PLANNED_SCHEDULE, AreaLevel
from controller.i18n import formats
from controller.schemas.schedules import PolicyIn, PolicyOut
from controller.services import audit
from controller.services.recurrence import MAX_CHECKED, occurrences
from controller.services.targets import Targets, resolve
from protocol.messages import Priority

# The zone of local days and hours when the caller passes none (the default of
# Settings.timezone); callers holding settings pass `tz=ZoneInfo(settings.timezone)`.
TZ = ZoneInfo(DEFAULT_TIMEZONE)
DAY_LABELS = {1: "T2", 2: "T3", 3: "T4", 4: "T5", 5: "T6", 6: "T7", 7: "CN"}


class _Occ(Protocol):
    @property
    def start(self) -> datetime: ...
    @property
    def duration_s(self) -> float: ...


class PolicyViolation(UserError):
    """422 with the rule broken, machine-readable in `rule`. Data only: the API layer turns it
    into a reply (controller/api/refusals.py), the panel into a page."""

    def __init__(self, key: str, rule: dict[str, Any], **params: object) -> None:
        super().__init__(422, key, **params)
        self.rule = rule

    def details(self) -> dict[str, object]:
        return {"rule": self.rule}


def put(session: Session, commune_id: int, req: PolicyIn, user: User) -> CommunePolicy:
    area = session.get(Area, commune_id)
    if area is None or area.level != AreaLevel.COMMUNE:
        raise NotFound("policy.no_commune", id=commune_id)
    if not can_act_on_area(session, user, Action.POLICY_EDIT, commune_id):
        raise UserError(403, "auth.forbidden")
    p = session.get(CommunePolicy, commune_id) or CommunePolicy(commune_id=commune_id)
    p.allowed_hours = [list(w) for w in req.allowed_hours]
    p.days = list(req.days)  # type: ignore[arg-type]
    p.max_minutes_per_session = req.max_minutes_per_session
    p.max_minutes_per_day = req.max_minutes_per_day
    p.updated_by = user.id
    p.updated_at = datetime.now(UTC)
    session.add(p)
    audit.record(session, user.id, "policy.update", "commune", commune_id, **PolicyOut.body(p, commune_id))
    return p


def _minutes(hhmm: str) -> int:
    h, m = hhmm.split(":")
    return int(h) * 60 + int(m)


def _check_one(p: CommunePolicy, name: str, occ: _Occ, tz: ZoneInfo) -> PolicyViolation | None:
    start = occ.start.astimezone(tz)
    end = start + timedelta(seconds=occ.duration_s)
    if p.days and start.isoweekday() not in p.days:
        days = ", ".join(DAY_LABELS[d] for d in p.days)
        rule = {"rule": "days", "days": p.days, "at": start.isoformat()}
        return PolicyViolation("policy.outside_days", rule, commune=name, at=formats.time_date(occ.start, tz),
                               days=days)
    if p.allowed_hours:
        s_min = start.hour * 60 + start.minute + start.second / 60
        e_min = s_min + occ.duration_s / 60
        if not any(_minutes(a) <= s_min and e_min <= _minutes(b) for a, b in p.allowed_hours):
            windows = ", ".join(f"{a}–{b}" for a, b in p.allowed_hours)
            return PolicyViolation("policy.outside_hours",
                                   {"rule": "allowed_hours", "allowed_hours": p.allowed_hours,
                                    "at": start.isoformat(), "until": end.isoformat()},
                                   commune=name, at=formats.time_date(occ.start, tz), windows=windows)
    if p.max_minutes_per_session is not None and occ.duration_s > p.max_minutes_per_session * 60:
        return PolicyViolation("policy.session_too_long",
                               {"rule": "max_minutes_per_session", "limit": p.max_minutes_per_session,
                                "minutes": round(occ.duration_s / 60, 1), "at": start.isoformat()},
                               commune=name, limit=p.max_minutes_per_session,
                               minutes=round(occ.duration_s / 60, 1))
    return None


def _existing_minutes(
    session: Session, commune_id: int, start: datetime, end: datetime, exclude_schedule: int | None,
    tz: ZoneInfo, exclude_broadcast: int | None = None,
) -> dict[str, float]:
    """Minutes already planned per local day (YYYY-MM-DD) on one commune's stations (without the
    schedule or broadcast being changed: its old time must not count against its new one)."""
    per_day: dict[str, float] = defaultdict(float)
    # (ids first: PostgreSQL cannot DISTINCT rows that hold JSON columns)
    on_commune = (select(Delivery.broadcast_id).join(Device, Device.id == Delivery.device_id)
                  .where(Device.commune_id == commune_id))
    q = select(Broadcast).where(Broadcast.id.in_(on_commune), Broadcast.status.in_(PLANNED_BROADCAST),
                                Broadcast.start_at >= start, Broadcast.start_at <= end)
    for bc in session.scalars(q):
        if bc.id != exclude_broadcast and Priority(bc.priority) is not Priority.EMERGENCY:
            per_day[bc.start_at.astimezone(tz).date().isoformat()] += bc.duration_s / 60
    for sc in session.scalars(select(Schedule).where(Schedule.status.in_(PLANNED_SCHEDULE))):
        if sc.id == exclude_schedule or Priority(sc.priority) is Priority.EMERGENCY:
            continue
        if not any(d.commune_id == commune_id for d in resolve(session, Targets.model_validate(sc.targets))):
            continue
        for occ in occurrences(sc, start, end, MAX_CHECKED):
            per_day[occ.start.astimezone(tz).date().isoformat()] += occ.duration_s / 60
    return per_day


def check(
    session: Session, commune_ids: Iterable[int], occs: Sequence[_Occ], *,
    exclude_schedule: int | None = None, exclude_broadcast: int | None = None, tz: ZoneInfo = TZ,
) -> PolicyViolation | None:
    """The first rule broken by any occurrence on any commune, or None."""
    ids = sorted(set(commune_ids))
    policies = list(session.scalars(select(CommunePolicy).where(CommunePolicy.commune_id.in_(ids))))
    if not policies or not occs:
        return None
    names = dict(session.execute(select(Area.id, Area.name).where(Area.id.in_(ids))).all())
    for p in policies:
        name = names.get(p.commune_id, str(p.commune_id))
        for occ in occs:
            bad = _check_one(p, name, occ, tz)
            if bad is not None:
                bad.rule["commune_id"] = p.commune_id
                return bad
        if p.max_minutes_per_day is not None:
            first = min(o.start for o in occs) - timedelta(days=1)
            last = max(o.start for o in occs) + timedelta(days=1)
            per_day = _existing_minutes(session, p.commune_id, first, last, exclude_schedule, tz,
                                        exclude_broadcast)
            for occ in occs:
                day = occ.start.astimezone(tz).date().isoformat()
                per_day[day] += occ.duration_s / 60
            for occ in occs:
                day = occ.start.astimezone(tz).date()
                total = per_day[day.isoformat()]
                if total > p.max_minutes_per_day + 1e-6:
                    return PolicyViolation(
                        "policy.day_too_long",
                        {"rule": "max_minutes_per_day", "limit": p.max_minutes_per_day,
                         "minutes": round(total, 1), "day": day.isoformat(), "commune_id": p.commune_id},
                        commune=name, limit=p.max_minutes_per_day, minutes=round(total, 1),
                        day=formats.day(day))
    return None


def enforce(
    session: Session, user: User, commune_ids: Iterable[int], occs: Sequence[_Occ], priority: Priority,
    override_reason: str | None, *, exclude_schedule: int | None = None,
    exclude_broadcast: int | None = None, tz: ZoneInfo = TZ,
) -> dict[str, Any]:
    """Refuse (raise PolicyViolation) or say why it may air: ok, exempt, override."""
    ids = sorted(set(commune_ids))
    if priority is Priority.EMERGENCY:
        return {"status": "exempt", "reason": "emergency"}
    bad = check(session, ids, occs, exclude_schedule=exclude_schedule, exclude_broadcast=exclude_broadcast,
                tz=tz)
    if bad is None:
        return {"status": "ok"}
    reason = (override_reason or "").strip()
    if not reason:
        raise bad
    if not all(can_act_on_area(session, user, Action.POLICY_EDIT, c) for c in ids):
        raise UserError(403, "policy.override_forbidden")
    return {"status": "override", "reason": reason, "rule": bad.rule, "code": bad.key}
