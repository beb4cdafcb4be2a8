"""Conflicts of a schedule with other schedules and one-off broadcasts on the same stations,
and how each resolves by priority (shown when a schedule is saved, docs/schedules.md)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from controller.db.models import Broadcast, Delivery, Device
from controller.db.models_schedules import Schedule
from controller.db.statuses import PLANNED_BROADCAST, PLANNED_SCHEDULE
from controller.services.recurrence import MAX_CHECKED, Occurrence, Recurrence, occurrences
from controller.services.targets import Targets, resolve
from protocol.messages import Priority

CONFLICT_WINDOW = timedelta(days=8)
MAX_CONFLICTS = 50


# -- conflicts ------------------------------------------------------------------------------------------
def _resolution(mine: Priority, other: Priority, mine_first: bool) -> str:
    if mine.rank > other.rank:
        return "preempts"  # this schedule takes the horn; the other is interrupted or waits
    if mine.rank < other.rank:
        return "preempted"
    return "other_waits" if mine_first else "waits"


def conflicts(
    session: Session, sc: Schedule, devices: list[Device], *, now: datetime
) -> list[dict[str, Any]]:
    """Overlaps on shared stations in the coming days, and how the horn will resolve them.

    Equal priority: the one that starts later waits for the horn (and is reported missed
    if that wait exceeds the station's late-start tolerance). Higher priority preempts.
    """
    end = now + CONFLICT_WINDOW
    mine = [Occurrence(t, sc.duration_s) for t in Recurrence.of_schedule(sc).between(now, end, MAX_CHECKED)]
    if not mine:
        return []
    my_ids = {d.id for d in devices}
    my_priority = Priority(sc.priority)
    others: list[tuple[str, int, str, Priority, list[Occurrence], set[int]]] = []
    for other in session.scalars(select(Schedule).where(Schedule.status.in_(PLANNED_SCHEDULE),
                                                        Schedule.id != sc.id)):
        shared = {d.id for d in resolve(session, Targets.model_validate(other.targets))} & my_ids
        if shared:
            occ = occurrences(other, now - timedelta(seconds=other.duration_s), end, MAX_CHECKED)
            others.append(("schedule", other.id, other.title, Priority(other.priority), occ, shared))
    rows = session.execute(
        select(Broadcast, Delivery.device_id).join(Delivery, Delivery.broadcast_id == Broadcast.id)
        .where(Broadcast.status.in_(PLANNED_BROADCAST), Broadcast.start_at <= end,
               Broadcast.start_at >= now - timedelta(days=1), Delivery.device_id.in_(my_ids))
    ).all()
    by_bc: dict[int, tuple[Broadcast, set[int]]] = {}
    for bc, dev in rows:
        by_bc.setdefault(bc.id, (bc, set()))[1].add(dev)
    for bc, shared in by_bc.values():
        others.append(("broadcast", bc.id, bc.title, Priority(bc.priority),
                       [Occurrence(bc.start_at, bc.duration_s)], shared))
    found: list[dict[str, Any]] = []
    for kind, oid, title, prio, occs, shared in others:
        for a in mine:
            for b in occs:
                if a.start < b.end and b.start < a.end:
                    found.append({
                        "with": {"type": kind, "id": oid, "title": title, "priority": prio.value},
                        "at": a.start.isoformat(), "other_at": b.start.isoformat(),
                        "stations": sorted(shared),
                        "resolution": _resolution(my_priority, prio, a.start <= b.start),
                    })  # fmt: skip
                    if len(found) >= MAX_CONFLICTS:
                        return found
    return found
