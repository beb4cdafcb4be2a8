"""Today and upcoming plays ("Hôm nay / Sắp tới"), for the caller's area.

Why a use case: the list mixes recurring schedules (the real recurrence engine, the same
occurrences the stations' horizons get) with one-off broadcasts, and for the plays already
past it counts what the play log says happened, only on the stations the caller may see.
The area rules are the ones of `schedules.visible` and `broadcasts.visible`, so the panel's
agenda never shows what the API would not.

The month calendar (controller/web/calendar.py) asks for `history`: what was planned and then
taken back still happened in part, so past days also keep cancelled broadcasts (a stopped
emergency is one) and the occurrences a schedule had before it was deleted, each with its
play log.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from controller.core.permissions import broadcast_filter, communes_in_scope
from controller.db.models import Broadcast, Device, PlayLog, User
from controller.db.models_emergency import EmergencyBroadcast
from controller.db.statuses import (
    PLANNED_BROADCAST,
    PLANNED_SCHEDULE,
    BroadcastStatus,
    PlayStatus,
    ScheduleStatus,
)
from controller.services import recurrence
from controller.usecases import schedules as planning

MAX_PER_SCHEDULE = 200  # an "every hour" schedule over a week: 168


@dataclass
class Entry:
    """One play on the agenda: a schedule's occurrence or a one-off broadcast."""

    at: datetime  # aware, UTC
    title: str
    source: str  # "schedule" | "broadcast"
    ref_id: int
    targets: dict[str, Any]
    awaiting_approval: bool
    priority: str
    item_id: str = ""
    outcome: Counter[PlayStatus] = field(default_factory=Counter)  # play log, caller's stations only
    emergency: bool = False  # sent through the emergency fan-out (services/emergency.py)
    cancelled: bool = False  # only with `history`: a broadcast cancelled (before or while it played)


def entries(session: Session, user: User, start: datetime, end: datetime, *, now: datetime,
            per_schedule: int = MAX_PER_SCHEDULE, history: bool = False) -> list[Entry]:  # fmt: skip
    """Every play between `start` and `end` (aware) that reaches the caller's area, in time order;
    the ones that began before `now` carry their play-log outcome. `per_schedule`: at most this
    many occurrences of one schedule; `history`: also, before `now`, cancelled broadcasts and
    the occurrences deleted schedules had before their deletion (cancelled broadcasts are marked
    `cancelled`; a deleted schedule's past occurrences aired as any other)."""
    found = [*_schedule_entries(session, user, start, end, per_schedule, now if history else None),
             *_broadcast_entries(session, user, start, end, now if history else None)]  # fmt: skip
    found.sort(key=lambda e: (e.at, e.title))
    past = [e for e in found if e.at <= now]
    _attach_outcomes(session, user, past)
    return found


def _schedule_entries(session: Session, user: User, start: datetime, end: datetime, per_schedule: int,
                      history_until: datetime | None) -> Iterable[Entry]:  # fmt: skip
    """`history_until` (now): deleted schedules too, from their approval up to their deletion
    (never after it; one deleted as a draft never aired)."""
    for sc in planning.visible(session, user, include_deleted=history_until is not None):  # GET /schedules
        lo, hi, deleted = start, end, sc.status == ScheduleStatus.DELETED
        if deleted and history_until is not None and sc.approved_at is not None:
            lo, hi = max(start, sc.approved_at), min(end, history_until, sc.updated_at)
        elif sc.status not in PLANNED_SCHEDULE:
            continue
        if hi <= lo:
            continue
        for occ in recurrence.occurrences(sc, lo, hi, limit=per_schedule):
            yield Entry(occ.start, sc.title, "schedule", sc.id, dict(sc.targets), sc.status == "draft",
                        sc.priority, item_id=recurrence.item_id(sc.id, occ.start))  # fmt: skip


def _broadcast_entries(session: Session, user: User, start: datetime, end: datetime,
                       history_until: datetime | None) -> Iterable[Entry]:  # fmt: skip
    """`history_until` (now): cancelled broadcasts that were due before it too."""
    planned = Broadcast.status.in_(PLANNED_BROADCAST)
    if history_until is not None:
        planned = or_(planned, and_(Broadcast.status == BroadcastStatus.CANCELLED,
                                    Broadcast.start_at <= history_until))  # fmt: skip
    q = (select(Broadcast)
         .where(Broadcast.start_at >= start, Broadcast.start_at < end, planned,
                *broadcast_filter(session, user))  # the area rule of GET /broadcasts
         .order_by(Broadcast.start_at).limit(500))  # fmt: skip
    rows = list(session.scalars(q))
    ids = [bc.id for bc in rows]
    fanout = set(session.scalars(select(EmergencyBroadcast.broadcast_id)
                                 .where(EmergencyBroadcast.broadcast_id.in_(ids or [-1]))))  # fmt: skip
    for bc in rows:
        yield Entry(bc.start_at, bc.title, "broadcast", bc.id, dict(bc.targets),
                    bc.status == BroadcastStatus.DRAFT, bc.priority,
                    emergency=bc.id in fanout or bc.priority == "emergency",
                    cancelled=bc.status == BroadcastStatus.CANCELLED)  # fmt: skip


def _attach_outcomes(session: Session, user: User, past: list[Entry]) -> None:
    if not past:
        return
    scope = communes_in_scope(session, user)
    q = select(PlayLog.item_id, PlayLog.broadcast_id, PlayLog.status, func.count()).join(
        Device, Device.id == PlayLog.device_id
    )
    if scope is not None:
        q = q.where(Device.commune_id.in_(scope))
    items = {e.item_id: e for e in past if e.source == "schedule"}
    casts = {e.ref_id: e for e in past if e.source == "broadcast"}
    rows: list[Any] = []
    if items:
        rows += session.execute(
            q.where(PlayLog.item_id.in_(items)).group_by(
                PlayLog.item_id, PlayLog.broadcast_id, PlayLog.status
            )
        ).all()
    if casts:
        rows += session.execute(
            q.where(PlayLog.broadcast_id.in_(casts)).group_by(
                PlayLog.item_id, PlayLog.broadcast_id, PlayLog.status
            )
        ).all()
    for item_id, broadcast_id, status, count in rows:
        entry = items.get(item_id) or casts.get(broadcast_id)
        if entry is not None:
            entry.outcome[PlayStatus(status)] += count
