"""Which (station, item) pairs a station may report proof of play for.

A play event is evidence for a report that communes show the province, so it is taken only
for an item the controller gave that station: a broadcast delivered to it (a Delivery row;
an emergency whose rows are not written yet: its targets), or an occurrence of a schedule
targeting it. Another station's item, or one a station invents, is refused by ingest
(counted in communecast_play_events_refused_total, logged) and never reaches the play log.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from controller.db.models import Broadcast, Delivery, Device
from controller.db.models_schedules import Schedule
from controller.services import recurrence, schedule_horizon

_BROADCAST_ITEM = re.compile(r"b(\d+)")

Key = tuple[int, str]


def delivered(session: Session, keys: set[Key]) -> set[Key]:
    """The subset of (device id, item id) naming an item delivered to that device."""
    if not keys:
        return set()
    devices, items = sorted({d for d, _ in keys}), sorted({i for _, i in keys})
    if session.get_bind().dialect.name == "postgresql":  # two array parameters, not IN lists of 1,000
        found: Iterable[tuple[int, str]] = session.connection().exec_driver_sql(
            "SELECT device_id, item_id FROM deliveries WHERE item_id = ANY(%s) AND device_id = ANY(%s)",
            (items, devices),
        )
    else:
        found = session.execute(
            select(Delivery.device_id, Delivery.item_id).where(
                Delivery.item_id.in_(items), Delivery.device_id.in_(devices)
            )
        )
    ok = {(d, i) for d, i in found} & keys
    rest = keys - ok
    if rest:
        ok |= _by_targets(session, rest)
    return ok


def _by_targets(session: Session, keys: set[Key]) -> set[Key]:
    """Schedule occurrences targeting the station; broadcasts not yet given Delivery rows
    (an emergency plays as soon as it is published, its rows are written just after)."""
    sched: dict[Key, tuple[int, datetime]] = {}
    bcast: dict[Key, int] = {}
    for key in keys:
        parsed = recurrence.parse_item_id(key[1])
        if parsed is not None:
            sched[key] = parsed
        elif (m := _BROADCAST_ITEM.fullmatch(key[1])) is not None:
            bcast[key] = int(m.group(1))
    if not sched and not bcast:
        return set()
    devices = {d.id: d for d in session.scalars(select(Device).where(Device.id.in_({d for d, _ in keys})))}
    communes = {d.commune_id for d in devices.values()}
    groups_of = schedule_horizon.groups_by_commune(session, communes)
    ok: set[Key] = set()
    by_id = (
        {
            sc.id: sc
            for sc in session.scalars(select(Schedule).where(Schedule.id.in_({s for s, _ in sched.values()})))
        }
        if sched
        else {}
    )
    for key, (schedule_id, instant) in sched.items():
        sc, device = by_id.get(schedule_id), devices.get(key[0])
        if sc is None or device is None:
            continue
        if not schedule_horizon.targets_match(sc.targets or {}, device, groups_of):
            continue
        if recurrence.Recurrence.of_schedule(sc).between(instant, instant, limit=1):
            ok.add(key)
    if bcast:
        ids = set(bcast.values())
        with_rows = set(
            session.scalars(select(Delivery.broadcast_id).where(Delivery.broadcast_id.in_(ids)).distinct())
        )
        found = {b.id: b for b in session.scalars(select(Broadcast).where(Broadcast.id.in_(ids - with_rows)))}
        for key, bc_id in bcast.items():
            bc, device = found.get(bc_id), devices.get(key[0])
            if (
                bc is not None
                and device is not None
                and schedule_horizon.targets_match(bc.targets or {}, device, groups_of)
            ):
                ok.add(key)
    return ok
